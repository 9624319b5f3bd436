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
    /// The connection to the source failed in a way that may pass (dropped, reset, timed
    /// out, `* BYE`, throttled): the mailbox is retried with a fresh connection.
    #[error(
        "{context}: {message}; the connection to the source failed, the next attempt or run resumes where this one stopped"
    )]
    SourceConnection {
        /// Where (mailbox, folder, command).
        context: String,
        /// What happened.
        message: String,
    },
    /// The pipeline failed talking to the source, the target or the credentials.
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

pub(crate) fn target_err(context: &str, e: &o365_migrate_target::Error) -> Error {
    Error::Pipeline {
        context: context.to_owned(),
        message: e.to_string(),
        hint: None,
    }
}

pub(crate) fn source_err(context: &str, e: &o365_migrate_imap::Error) -> Error {
    if e.is_retryable() {
        return Error::SourceConnection {
            context: context.to_owned(),
            message: e.to_string(),
        };
    }
    Error::Pipeline {
        context: context.to_owned(),
        message: e.to_string(),
        hint: None,
    }
}
