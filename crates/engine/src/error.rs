//! The crate's single error type.

use std::path::PathBuf;

/// Where in a job file something was found: file, 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The job file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Errors from this crate. Every message names what failed and where, and ends with a hint where
/// one helps. No variant ever carries a secret value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The job file could not be read.
    #[error("cannot read job file {}: {source}; check the path given with --config", file.display())]
    ConfigRead {
        /// The job file.
        file: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The job file is invalid.
    #[error("{message} at {location}{}", hint_suffix(hint))]
    Config {
        /// What is wrong.
        message: String,
        /// Where.
        location: Location,
        /// How to fix it, when known.
        hint: Option<String>,
    },
    /// A secret reference could not be resolved. Names the reference (`env:NAME` / `file:PATH`),
    /// never the value.
    #[error(
        "cannot resolve secret {reference} ({origin}): {message}{}",
        hint_suffix(hint)
    )]
    Secret {
        /// The reference as written (`env:NAME` or `file:PATH`).
        reference: String,
        /// Which key of which job file it came from.
        origin: String,
        /// What went wrong.
        message: String,
        /// How to fix it.
        hint: Option<String>,
    },
    /// The state store failed.
    #[error(
        "state store {path}: {operation} failed: {message}{}",
        hint_suffix(hint)
    )]
    State {
        /// The store's location (file path or URL without credentials).
        path: String,
        /// What was being done.
        operation: &'static str,
        /// The underlying error as text.
        message: String,
        /// How to fix it, when known.
        hint: Option<String>,
    },
    /// Writing a report or event stream failed.
    #[error("cannot write {what} to {}: {source}; check that the directory exists and is writable", path.display())]
    Output {
        /// What was being written.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The source IMAP server failed. When [`Error::is_retryable`] (dropped, reset, timed out,
    /// `* BYE`, throttled) the mailbox is retried with a fresh connection. The IMAP client's
    /// error is kept as the source, so `is_retryable` and its details stay reachable.
    #[error("{context}: {source}{}", source_suffix(source))]
    Source {
        /// Where (mailbox, folder, command).
        context: String,
        /// The IMAP client's error.
        #[source]
        source: Box<o365_migrate_imap::Error>,
    },
    /// The target failed. The writer's error is kept as the source: ask it for
    /// [`o365_migrate_target::Error::scope`] and `is_transient`, or use
    /// [`Error::target_scope`] and [`Error::is_retryable`].
    #[error("{context}: {source}")]
    Target {
        /// What was being done (mailbox, folder, directory call).
        context: String,
        /// The target writer's error.
        #[source]
        source: Box<o365_migrate_target::Error>,
    },
    /// The CardDAV / CalDAV source failed (discovery, listing, fetching). The DAV client's
    /// error is kept as the source.
    #[error("{context}: {source}")]
    Dav {
        /// Where (mailbox, collection, request).
        context: String,
        /// The DAV client's error (never a password or token).
        #[source]
        source: Box<o365_migrate_dav::Error>,
    },
    /// Google sign-in for a Gmail source failed (`[source.google]`); the Google crate's error
    /// names the fix (delegation, key, revoked refresh token, unknown user).
    #[error("{context}: {source}")]
    Google {
        /// Which user or setting.
        context: String,
        /// The Google sign-in error (never a key or token).
        #[source]
        source: Box<o365_migrate_google::Error>,
    },
    /// A Gmail mailbox used its download allowance for the window (`[gmail] daily_download`,
    /// or Google's own alert); it resumes by itself once the window reopens.
    #[error(
        "{mailbox}: paused until {until} (Unix seconds) — {reason}; run again after that time, the copy resumes where it stopped"
    )]
    Paused {
        /// The source login.
        mailbox: String,
        /// When the window reopens (Unix seconds).
        until: i64,
        /// Why (our budget, or Google's alert text).
        reason: String,
    },
    /// The credentials file, or a login built from it, is not usable.
    #[error("{context}: {source}{}", hint_suffix(hint))]
    Credentials {
        /// Which file or login.
        context: String,
        /// The credentials crate's error (never a password).
        #[source]
        source: Box<o365_migrate_credentials::Error>,
        /// How to fix it, when known.
        hint: Option<String>,
    },
    /// Automatch or the mapping file failed.
    #[error("{context}: {source}{}", hint_suffix(hint))]
    Matching {
        /// Which file or step.
        context: String,
        /// The automatch crate's error.
        #[source]
        source: Box<o365_migrate_automatch::Error>,
        /// How to fix it, when known.
        hint: Option<String>,
    },
    /// Reading or writing a file the job names (mapping file, certificate, CA file) failed.
    #[error("{context}: {source}{}", hint_suffix(hint))]
    Io {
        /// Which file, doing what.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
        /// How to fix it, when known.
        hint: Option<String>,
    },
    /// A step of the pipeline failed for a reason of its own (no lower error to keep): a
    /// missing job table, a server answer without a value the engine needs.
    #[error("{context}: {message}{}", hint_suffix(hint))]
    Pipeline {
        /// What was being done (mailbox, folder, server).
        context: String,
        /// What went wrong (never a secret).
        message: String,
        /// How to fix it, when known.
        hint: Option<String>,
    },
}

fn hint_suffix(hint: &Option<String>) -> String {
    match hint {
        Some(h) => format!("; {h}"),
        None => String::new(),
    }
}

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn source_suffix(source: &o365_migrate_imap::Error) -> &'static str {
    if source.is_retryable() {
        "; the connection to the source failed, the next attempt or run resumes where this one stopped"
    } else {
        ""
    }
}

impl Error {
    /// A target error with what was being done.
    pub(crate) fn target(context: impl Into<String>, source: o365_migrate_target::Error) -> Error {
        Error::Target {
            context: context.into(),
            source: Box::new(source),
        }
    }

    /// A source (IMAP) error with where it happened.
    pub(crate) fn source(context: impl Into<String>, source: o365_migrate_imap::Error) -> Error {
        Error::Source {
            context: context.into(),
            source: Box::new(source),
        }
    }

    /// Whether trying again may succeed: a source connection that dropped, stalled or was
    /// throttled, or a transient target error (429, 503, a reset). Everything else needs a
    /// change first (configuration, credentials, the data).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Source { source, .. } => source.is_retryable(),
            Error::Target { source, .. } => source.is_transient(),
            _ => false,
        }
    }

    /// For a target error, how far it reaches: one item, a folder, the mailbox or the whole
    /// target; `None` for every other error.
    pub fn target_scope(&self) -> Option<o365_migrate_target::ErrorScope> {
        match self {
            Error::Target { source, .. } => Some(source.scope()),
            _ => None,
        }
    }
}
