//! The crate's error type.

use std::path::PathBuf;

use crate::report::{Location, Problem};

/// Errors from this crate. None of them ever contains a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The credentials file could not be read.
    #[error("cannot read credentials file {}: {source} (hint: check the path and permissions)", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but has errors; every problem is listed with its location.
    #[error("{}", rejected_message(problems))]
    Rejected {
        /// All problems found (errors and warnings), in file order.
        problems: Vec<Problem>,
    },
    /// An option is invalid (delimiter, column mapping, admin login).
    #[error("{message} (hint: {hint})")]
    Options {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: String,
    },
    /// A password reference (`env:NAME`, `file:PATH`) could not be resolved.
    #[error("{location}: {message} (hint: {hint})")]
    Secret {
        /// Where the password cell is.
        location: Location,
        /// What is wrong.
        message: String,
        /// What to do.
        hint: String,
    },
}

fn rejected_message(problems: &[Problem]) -> String {
    let errors: Vec<&Problem> = problems.iter().filter(|p| p.is_error()).collect();
    match errors.first() {
        None => "credentials file rejected".to_owned(),
        Some(first) if errors.len() == 1 => format!("credentials file rejected: {first}"),
        Some(first) => format!(
            "credentials file rejected with {} errors; first: {first}",
            errors.len()
        ),
    }
}

impl Error {
    pub(crate) fn options(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Options {
            message: message.into(),
            hint: hint.into(),
        }
    }
}
