//! Secrets in the job file: only by reference ([`SecretRef`]: `env:NAME` or `file:/path`),
//! resolved into a [`Secret`] that never prints its value.

use super::*;

/// A secret value resolved from a [`SecretRef`]. Debug prints `Secret([REDACTED])`; there is no
/// Display. The memory is zeroed on drop.
#[derive(Clone)]
pub struct Secret(secrecy::SecretString);

impl Secret {
    /// Wraps a value.
    pub fn new(value: String) -> Secret {
        Secret(secrecy::SecretString::from(value))
    }
    /// The value, for handing to a login or token request. Never log it.
    pub fn expose(&self) -> &str {
        use secrecy::ExposeSecret;
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

/// Where a secret lives: an environment variable or a file. Printing it shows the reference
/// (`env:NAME`), never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `env:NAME`.
    Env(String),
    /// `file:/path` (trailing newline stripped when read).
    File(PathBuf),
}

/// A reference to a secret written in the job file as `env:NAME` or `file:/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// Where the secret lives.
    pub source: SecretSource,
    /// Which key in which file it came from, e.g. `[target.graph] client_secret at job.toml:9:17`.
    pub origin: String,
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            SecretSource::Env(n) => write!(f, "env:{n}"),
            SecretSource::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

impl SecretRef {
    /// Parses `env:NAME` / `file:PATH`. The error never contains the input.
    pub fn parse(s: &str) -> std::result::Result<SecretRef, String> {
        let literal = "a literal secret is not allowed in the job file (its value is not shown); \
                       give a reference instead: `env:VARIABLE` and export the variable before \
                       running, or `file:/path/to/secret` with a file only you can read (chmod 600)";
        if let Some(name) = s.strip_prefix("env:") {
            let ok = !name.is_empty()
                && name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err("`env:` needs a variable name of letters, digits and `_`, e.g. `env:O365_CLIENT_SECRET`".to_owned());
            }
            Ok(SecretRef {
                source: SecretSource::Env(name.to_owned()),
                origin: String::new(),
            })
        } else if let Some(path) = s.strip_prefix("file:") {
            if path.trim().is_empty() {
                return Err(
                    "`file:` needs a path, e.g. `file:/etc/o365-migrate/client-secret`".to_owned(),
                );
            }
            Ok(SecretRef {
                source: SecretSource::File(PathBuf::from(path)),
                origin: String::new(),
            })
        } else {
            Err(literal.to_owned())
        }
    }

    /// Reads the secret. Errors name the reference and its origin, never a value.
    pub fn resolve(&self) -> Result<Secret> {
        let err = |message: String, hint: &str| Error::Secret {
            reference: self.to_string(),
            origin: self.origin.clone(),
            message,
            hint: Some(hint.to_owned()),
        };
        match &self.source {
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
                Ok(_) => Err(err(
                    "the environment variable is empty".to_owned(),
                    "export it with the secret before running",
                )),
                Err(std::env::VarError::NotPresent) => Err(err(
                    "the environment variable is not set".to_owned(),
                    "export it before running, e.g. from a systemd EnvironmentFile",
                )),
                Err(std::env::VarError::NotUnicode(_)) => Err(err(
                    "the environment variable is not valid UTF-8".to_owned(),
                    "set it to the secret as text",
                )),
            },
            SecretSource::File(path) => {
                let mut v = std::fs::read_to_string(path).map_err(|e| {
                    err(
                        format!("cannot read the file: {}", e.kind()),
                        "check the path and that this user may read it",
                    )
                })?;
                while v.ends_with('\n') || v.ends_with('\r') {
                    v.pop();
                }
                if v.is_empty() {
                    return Err(err(
                        "the file is empty".to_owned(),
                        "write the secret into it (one line)",
                    ));
                }
                Ok(Secret::new(v))
            }
        }
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SecretRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret reference `env:NAME` or `file:/path`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<SecretRef, E> {
                SecretRef::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}
