//! The crate's single error type.

use std::path::PathBuf;

/// Result alias used throughout this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the test kit.
///
/// Messages end with a hint where one helps. Passwords never appear in them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Dovecot binary is not installed at the expected path.
    #[error("{}", missing_dovecot_message(binary))]
    DovecotMissing {
        /// The path that was looked for.
        binary: PathBuf,
    },

    /// Dovecot was started but did not come up (or exited).
    #[error(
        "Dovecot did not start: {reason}\n--- last lines of {log} ---\n{log_tail}\n---\nhint: the config is at {config}; run `dovecot -n -c {config}` to check it"
    )]
    DovecotStart {
        /// What went wrong.
        reason: String,
        /// The log file the tail came from.
        log: PathBuf,
        /// The last lines of Dovecot's log and stderr.
        log_tail: String,
        /// The generated configuration file.
        config: PathBuf,
    },

    /// An invalid option was given to the harness or the corpus generator.
    #[error("invalid option: {0}")]
    InvalidOption(String),

    /// A local I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Generating the test certificates failed.
    #[error("generating test certificates failed: {0}")]
    Certificate(String),

    /// The TLS handshake or TLS configuration failed.
    #[error(
        "TLS with {server} failed: {detail}\nhint: trust the harness CA (`Dovecot::ca_pem`) unless the test wants this failure"
    )]
    Tls {
        /// The server address.
        server: String,
        /// The rustls error text.
        detail: String,
    },

    /// The IMAP server answered a command with NO or BAD.
    #[error("IMAP {command} was refused: {response}")]
    Refused {
        /// The command name (never its arguments, which may hold a password).
        command: String,
        /// The server's tagged response line.
        response: String,
    },

    /// The IMAP server sent something this client could not parse.
    #[error("unexpected IMAP response during {context}: {detail}")]
    Protocol {
        /// The command or phase.
        context: String,
        /// What was wrong, with a short excerpt of the response.
        detail: String,
    },

    /// A mailbox name is not valid modified UTF-7 (RFC 3501 section 5.1.3).
    #[error("mailbox name {name:?} is not valid modified UTF-7: {detail}")]
    MailboxName {
        /// The raw name as received.
        name: String,
        /// What was wrong.
        detail: String,
    },

    /// An IMAP date-time could not be parsed.
    #[error("invalid IMAP date-time {input:?}; expected e.g. \"17-Jul-1996 02:44:25 -0700\"")]
    InvalidDate {
        /// The text that was parsed.
        input: String,
    },

    /// Chromium or chromedriver is not installed at the expected path.
    #[error("{}", crate::browser::missing_browser_message(binary))]
    BrowserMissing {
        /// The path that was looked for.
        binary: PathBuf,
    },

    /// A browser (WebDriver) operation failed: starting chromedriver, a command, or a wait
    /// that timed out.
    #[error("browser: {what} failed: {detail}")]
    Browser {
        /// What was being done, with the CSS selector or URL involved.
        what: String,
        /// chromedriver's error (`error: message`), or the last state seen by a wait.
        detail: String,
    },

    /// An operation did not finish in time.
    #[error("timed out after {seconds} s while {what}")]
    Timeout {
        /// What was being waited for.
        what: String,
        /// The limit.
        seconds: u64,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn protocol(context: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Protocol {
            context: context.into(),
            detail: detail.into(),
        }
    }
}

/// The message shown when Dovecot is not installed.
///
/// Public so that tools (xtask, CI scripts) can show the same text.
pub fn missing_dovecot_message(binary: &std::path::Path) -> String {
    format!(
        "Dovecot is not installed: {} does not exist.\nhint: install it with `sudo apt-get install dovecot-imapd` (Debian/Ubuntu), or set O365_MIGRATE_DOVECOT to the path of the `dovecot` binary",
        binary.display()
    )
}
