//! Secret values and password references.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use crate::error::Error;
use crate::report::Location;

/// A secret string (a password). It never prints: `Debug` shows `Secret(********)`, there is no
/// `Display` and no `Serialize`, and the memory is zeroed when dropped.
///
/// Read the value only where it is sent to a server, with [`Secret::expose`].
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a value as a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(SecretString::from(value.into()))
    }

    /// The secret value. Call it only at the point of use (e.g. building an IMAP LOGIN).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.expose_secret().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(********)")
    }
}

/// Where a row's password comes from.
///
/// A password cell may hold the password itself, or a reference so that plaintext need not live in
/// the CSV file:
/// - `env:NAME` — the value of environment variable `NAME`;
/// - `file:/path/to/file` — the file's content without one trailing newline (a relative path is
///   taken relative to the CSV file's folder);
/// - `literal:VALUE` — the text `VALUE` as written (use it for a password that itself starts
///   with `env:`, `file:` or `literal:`).
///
/// References are resolved on demand by [`PasswordSource::resolve`], so a CSV can be checked
/// without the secrets being present; `ReadOptions::resolve_secrets` resolves them during the check.
#[derive(Clone)]
pub struct PasswordSource {
    kind: SourceKind,
    at: CellAt,
}

/// A cell's place, cheap to keep per row (the file name and column label are shared).
#[derive(Clone, Default)]
pub(crate) struct CellAt {
    pub(crate) file: Arc<str>,
    pub(crate) line: usize,
    pub(crate) column: usize,
    pub(crate) cell: Option<Arc<str>>,
}

impl CellAt {
    pub(crate) fn location(&self) -> Location {
        Location {
            file: self.file.to_string(),
            line: self.line,
            column: self.column,
            cell: self.cell.as_deref().map(str::to_owned),
        }
    }
}

#[derive(Clone)]
enum SourceKind {
    Inline(Secret),
    Env(String),
    File { written: String, resolved: PathBuf },
}

/// What a password cell holds, for display (never the password itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordKind {
    /// The password is written in the file.
    Inline,
    /// The password comes from the named environment variable.
    Env(String),
    /// The password comes from this file (as written in the CSV cell).
    File(String),
}

impl PasswordSource {
    /// Interprets a password cell. `base_dir` is the CSV file's folder (for relative `file:` paths).
    /// Returns an error message and hint when the cell is a malformed reference.
    pub(crate) fn from_cell(
        cell: &str,
        at: CellAt,
        base_dir: Option<&Path>,
        references: bool,
    ) -> Result<Self, (String, String)> {
        let kind = if !references {
            SourceKind::Inline(Secret::new(cell))
        } else if let Some(rest) = cell.strip_prefix("literal:") {
            SourceKind::Inline(Secret::new(rest))
        } else if let Some(name) = cell.strip_prefix("env:") {
            if !valid_env_name(name) {
                return Err((
                    "the password cell starts with `env:` but what follows is not an environment variable name".into(),
                    "write env:NAME with letters, digits and `_` (e.g. env:ALICE_PW); if this is the password itself, write it as literal:<password>".into(),
                ));
            }
            SourceKind::Env(name.to_owned())
        } else if let Some(path) = cell.strip_prefix("file:") {
            if path.trim().is_empty() {
                return Err((
                    "the password cell is `file:` without a path".into(),
                    "write file:/path/to/secret; if this is the password itself, write it as literal:<password>".into(),
                ));
            }
            let p = Path::new(path);
            let resolved = match base_dir {
                Some(dir) if p.is_relative() => dir.join(p),
                _ => p.to_path_buf(),
            };
            SourceKind::File {
                written: path.to_owned(),
                resolved,
            }
        } else {
            SourceKind::Inline(Secret::new(cell))
        };
        Ok(PasswordSource { kind, at })
    }

    /// Interprets a password given outside a CSV file (e.g. the admin password on the command
    /// line or in a config file) with the same rules as a cell: `env:NAME`, `file:PATH`,
    /// `literal:VALUE`, or the password itself. `what` names the setting in errors.
    ///
    /// ```
    /// use o365_migrate_credentials::{PasswordKind, PasswordSource};
    /// let src = PasswordSource::from_spec("env:ADMIN_PW", "--admin-password").unwrap();
    /// assert_eq!(src.kind(), PasswordKind::Env("ADMIN_PW".into()));
    /// assert!(PasswordSource::from_spec("env:not valid", "--admin-password").is_err());
    /// ```
    pub fn from_spec(spec: &str, what: &str) -> Result<Self, Error> {
        if spec.is_empty() {
            return Err(Error::options(
                format!("{what} is empty"),
                "give the password, env:NAME or file:PATH",
            ));
        }
        let at = CellAt {
            file: Arc::from(what),
            line: 0,
            column: 0,
            cell: None,
        };
        PasswordSource::from_cell(spec, at, None, true)
            .map_err(|(message, hint)| Error::options(format!("{what}: {message}"), hint))
    }

    /// A password given directly (not read from a file).
    pub fn inline(secret: Secret) -> Self {
        PasswordSource {
            kind: SourceKind::Inline(secret),
            at: CellAt::default(),
        }
    }

    /// What the cell holds, without the secret.
    pub fn kind(&self) -> PasswordKind {
        match &self.kind {
            SourceKind::Inline(_) => PasswordKind::Inline,
            SourceKind::Env(n) => PasswordKind::Env(n.clone()),
            SourceKind::File { written, .. } => PasswordKind::File(written.clone()),
        }
    }

    /// Where the cell is in the CSV file.
    pub fn location(&self) -> Location {
        self.at.location()
    }

    /// The masked form shown in reports: `********` for an inline password, otherwise the
    /// reference (`env:NAME`, `file:PATH`), which is not secret.
    pub fn masked(&self) -> String {
        match &self.kind {
            SourceKind::Inline(_) => crate::report::MASK.to_owned(),
            SourceKind::Env(n) => format!("env:{n}"),
            SourceKind::File { written, .. } => format!("file:{written}"),
        }
    }

    /// Resolves the password: returns the inline value, reads the environment variable or the
    /// file. Errors name the CSV location of the cell and what to do; they never contain the value.
    pub fn resolve(&self) -> Result<Secret, Error> {
        match &self.kind {
            SourceKind::Inline(s) => Ok(s.clone()),
            SourceKind::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
                Ok(_) => Err(self.err(
                    format!("environment variable {name} is empty"),
                    format!("set {name} to the password before running"),
                )),
                Err(std::env::VarError::NotPresent) => Err(self.err(
                    format!("environment variable {name} is not set"),
                    format!("export {name}=... before running, or put the password in the cell"),
                )),
                Err(std::env::VarError::NotUnicode(_)) => Err(self.err(
                    format!("environment variable {name} is not valid UTF-8"),
                    "store the password as UTF-8 text".to_owned(),
                )),
            },
            SourceKind::File { resolved, .. } => match std::fs::read(resolved) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(mut text) => {
                        if text.ends_with('\n') {
                            text.pop();
                            if text.ends_with('\r') {
                                text.pop();
                            }
                        }
                        if text.is_empty() {
                            return Err(self.err(
                                format!("password file {} is empty", resolved.display()),
                                "write the password into the file".to_owned(),
                            ));
                        }
                        Ok(Secret::new(text))
                    }
                    Err(_) => Err(self.err(
                        format!("password file {} is not UTF-8 text", resolved.display()),
                        "save the password file as UTF-8".to_owned(),
                    )),
                },
                Err(e) => Err(self.err(
                    format!("cannot read password file {}: {e}", resolved.display()),
                    "check the path and that this user may read it".to_owned(),
                )),
            },
        }
    }

    fn err(&self, message: String, hint: String) -> Error {
        Error::Secret {
            location: self.at.location(),
            message,
            hint,
        }
    }
}

impl fmt::Debug for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordSource({})", self.masked())
    }
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
