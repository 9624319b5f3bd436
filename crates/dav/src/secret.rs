//! A redacting wrapper for passwords and bearer tokens.

use std::fmt;

/// A secret string (password, OAuth bearer token). `Debug` and `Display` print `[redacted]`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Only call this to put it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How the client signs in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No `Authorization` header (a server that needs none, or a test).
    #[default]
    None,
    /// HTTP Basic: user name and password (or app password).
    Basic {
        /// The user name.
        user: String,
        /// The password; never shown.
        password: Secret,
    },
    /// `Authorization: Bearer <token>` (OAuth 2.0 access token, e.g. Google's).
    Bearer(Secret),
}

impl Credentials {
    /// HTTP Basic with `user` and `password`.
    pub fn basic(user: impl Into<String>, password: impl Into<Secret>) -> Self {
        Credentials::Basic {
            user: user.into(),
            password: password.into(),
        }
    }

    /// An OAuth 2.0 bearer token.
    pub fn bearer(token: impl Into<Secret>) -> Self {
        Credentials::Bearer(token.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug_and_display() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
        let c = Credentials::basic("alice", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"), "{c:?}");
        assert!(format!("{c:?}").contains("alice"));
        let b = Credentials::bearer("ya29.token");
        assert!(!format!("{b:?}").contains("ya29"), "{b:?}");
    }
}
