//! The crate's one error type.

use std::time::Duration;

/// How far an [`Error`] reaches: what the engine should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorScope {
    /// Only this message failed: record it with the reason and go on.
    Item,
    /// The folder cannot be used (cannot be created or found).
    Folder,
    /// The mailbox cannot be written (missing, not licensed, access denied).
    Mailbox,
    /// Nothing can be written to this target (credentials, permissions, configuration).
    Target,
}

/// Errors from this crate. Messages never contain secrets (passwords, client secrets, tokens,
/// private keys); they end with a hint where one helps.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Configuration is unusable (bad URL, unreadable key file, ...).
    #[error("configuration: {0}")]
    Config(String),
    /// Obtaining a token failed (wrong secret, unknown app, expired device code, ...).
    #[error("sign-in failed: {message}{}", hint_suffix(.hint))]
    Auth {
        /// What the identity platform said (its error code and description; never the secret).
        message: String,
        /// What to do.
        hint: Option<String>,
    },
    /// The token lacks permissions the job needs.
    #[error("the app lacks the application permission(s) {}; fix: {fix}", .missing.join(", "))]
    MissingPermissions {
        /// The missing roles, e.g. `Mail.ReadWrite`.
        missing: Vec<String>,
        /// The exact steps to grant them.
        fix: String,
    },
    /// The mailbox does not exist or is not provisioned (no licence yet, still being created).
    #[error("mailbox {mailbox} is not available: {reason}{}", hint_suffix(.hint))]
    MailboxUnavailable {
        /// The mailbox.
        mailbox: String,
        /// What the server said.
        reason: String,
        /// What to do.
        hint: Option<String>,
    },
    /// A folder could not be found or created.
    #[error("folder {path} in mailbox {mailbox}: {reason}")]
    Folder {
        /// The mailbox.
        mailbox: String,
        /// The folder path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The message is larger than the target accepts.
    #[error(
        "message of {size} bytes exceeds the target's limit of {limit} bytes; hint: export it with the EML writer or raise the mailbox's MaxReceiveSize"
    )]
    TooLarge {
        /// The message size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The message could not be converted for this target.
    #[error("message could not be converted: {0}")]
    Conversion(String),
    /// The server refused this message or request.
    #[error("{method} {path}: HTTP {status} {code}: {message}")]
    Rejected {
        /// HTTP method.
        method: String,
        /// Request path (without query secrets; Graph has none).
        path: String,
        /// HTTP status.
        status: u16,
        /// The service's error code (`ErrorInvalidRequest`, ...).
        code: String,
        /// The service's error message.
        message: String,
    },
    /// A server refused one operation (IMAP `NO`, an EWS error response code) and said why.
    #[error("{operation} {context}: {code}: {message}")]
    Refused {
        /// The operation (`APPEND`, `CreateItem`, ...).
        operation: String,
        /// What it was about (folder, mailbox).
        context: String,
        /// The server's code (`ErrorItemSave`, an IMAP response code, or `NO`).
        code: String,
        /// The server's own text.
        message: String,
    },
    /// The server kept throttling or failing; the bounded retries are used up.
    #[error("gave up after {attempts} attempts over {:.1}s: {last}; hint: lower the number of mailboxes at once or run again later, the item will be retried by rescan", .elapsed.as_secs_f64())]
    RetriesExhausted {
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
        /// The last failure.
        last: String,
    },
    /// A network or protocol failure talking to the server.
    #[error("transport: {0}")]
    Transport(String),
    /// The server answered something this crate cannot understand.
    #[error("unexpected reply from {context}: {message}")]
    Protocol {
        /// Which request.
        context: String,
        /// What was wrong.
        message: String,
    },
    /// Local I/O (reading a certificate, writing EML).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn hint_suffix(hint: &Option<String>) -> String {
    match hint {
        Some(h) => format!("; hint: {h}"),
        None => String::new(),
    }
}

impl Error {
    /// How far this error reaches (see [`ErrorScope`]).
    pub fn scope(&self) -> ErrorScope {
        match self {
            Error::Config(_) | Error::Auth { .. } | Error::MissingPermissions { .. } => {
                ErrorScope::Target
            }
            Error::MailboxUnavailable { .. } => ErrorScope::Mailbox,
            Error::Folder { .. } => ErrorScope::Folder,
            Error::Rejected {
                status: 401 | 403, ..
            } => ErrorScope::Mailbox,
            Error::TooLarge { .. }
            | Error::Conversion(_)
            | Error::Rejected { .. }
            | Error::Refused { .. }
            | Error::RetriesExhausted { .. }
            | Error::Transport(_)
            | Error::Protocol { .. }
            | Error::Io { .. } => ErrorScope::Item,
        }
    }

    /// The same error again, for each of several items one failure stopped (a `$batch` that
    /// failed as a whole); keeps the variant, so the scope and transience too. Local I/O errors,
    /// whose source cannot be copied, become [`Error::Protocol`] with the same text.
    pub(crate) fn for_each_item(&self) -> Error {
        match self {
            Error::Config(m) => Error::Config(m.clone()),
            Error::Auth { message, hint } => Error::Auth {
                message: message.clone(),
                hint: hint.clone(),
            },
            Error::MissingPermissions { missing, fix } => Error::MissingPermissions {
                missing: missing.clone(),
                fix: fix.clone(),
            },
            Error::MailboxUnavailable {
                mailbox,
                reason,
                hint,
            } => Error::MailboxUnavailable {
                mailbox: mailbox.clone(),
                reason: reason.clone(),
                hint: hint.clone(),
            },
            Error::Folder {
                mailbox,
                path,
                reason,
            } => Error::Folder {
                mailbox: mailbox.clone(),
                path: path.clone(),
                reason: reason.clone(),
            },
            Error::TooLarge { size, limit } => Error::TooLarge {
                size: *size,
                limit: *limit,
            },
            Error::Conversion(m) => Error::Conversion(m.clone()),
            Error::Rejected {
                method,
                path,
                status,
                code,
                message,
            } => Error::Rejected {
                method: method.clone(),
                path: path.clone(),
                status: *status,
                code: code.clone(),
                message: message.clone(),
            },
            Error::Refused {
                operation,
                context,
                code,
                message,
            } => Error::Refused {
                operation: operation.clone(),
                context: context.clone(),
                code: code.clone(),
                message: message.clone(),
            },
            Error::RetriesExhausted {
                attempts,
                elapsed,
                last,
            } => Error::RetriesExhausted {
                attempts: *attempts,
                elapsed: *elapsed,
                last: last.clone(),
            },
            Error::Transport(m) => Error::Transport(m.clone()),
            Error::Protocol { context, message } => Error::Protocol {
                context: context.clone(),
                message: message.clone(),
            },
            e @ Error::Io { .. } => Error::Protocol {
                context: "local I/O".into(),
                message: e.to_string(),
            },
        }
    }

    /// Whether running the same item again later may succeed (throttling, network trouble).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::RetriesExhausted { .. } | Error::Transport(_))
    }
}
