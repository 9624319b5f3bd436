//! Login methods and the OAuth token provider.

use crate::{Error, Secret};
use base64::Engine as _;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed future returned by [`TokenProvider::token`].
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Secret, Error>> + Send + 'a>>;

/// Supplies OAuth 2.0 access tokens. Called on every login, so a reconnect gets a fresh token.
pub trait TokenProvider: Send + Sync {
    /// Returns a currently valid access token.
    fn token(&self) -> TokenFuture<'_>;
}

/// A provider that always returns the same token (tests, short jobs).
#[derive(Clone, Debug)]
pub struct StaticToken(pub Secret);

impl TokenProvider for StaticToken {
    fn token(&self) -> TokenFuture<'_> {
        let t = self.0.clone();
        Box::pin(async move { Ok(t) })
    }
}

/// How to log in. `Debug` never shows secrets.
#[derive(Clone)]
#[non_exhaustive]
pub enum Auth {
    /// `LOGIN user password`.
    Login {
        /// User name (for a Dovecot master login: `user*master`).
        user: String,
        /// Password.
        password: Secret,
    },
    /// `AUTHENTICATE PLAIN` (RFC 4616).
    Plain {
        /// Authorization identity: the mailbox to open when logging in as an admin/master user
        /// (`None` = the same as `user`).
        authorize_as: Option<String>,
        /// Authentication identity (the admin/master user when `authorize_as` is set).
        user: String,
        /// Password of `user`.
        password: Secret,
    },
    /// `AUTHENTICATE XOAUTH2` (Google, Microsoft).
    XOAuth2 {
        /// Mailbox address.
        user: String,
        /// Token source.
        tokens: Arc<dyn TokenProvider>,
    },
    /// `AUTHENTICATE OAUTHBEARER` (RFC 7628).
    OAuthBearer {
        /// Mailbox address.
        user: String,
        /// Token source.
        tokens: Arc<dyn TokenProvider>,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Login { user, .. } => f
                .debug_struct("Login")
                .field("user", user)
                .finish_non_exhaustive(),
            Auth::Plain {
                authorize_as, user, ..
            } => f
                .debug_struct("Plain")
                .field("authorize_as", authorize_as)
                .field("user", user)
                .finish_non_exhaustive(),
            Auth::XOAuth2 { user, .. } => f
                .debug_struct("XOAuth2")
                .field("user", user)
                .finish_non_exhaustive(),
            Auth::OAuthBearer { user, .. } => f
                .debug_struct("OAuthBearer")
                .field("user", user)
                .finish_non_exhaustive(),
        }
    }
}

impl Auth {
    /// The identity to name in errors and logs (never a secret).
    pub fn display_user(&self) -> String {
        match self {
            Auth::Login { user, .. }
            | Auth::XOAuth2 { user, .. }
            | Auth::OAuthBearer { user, .. } => user.clone(),
            Auth::Plain {
                authorize_as: Some(a),
                user,
                ..
            } => format!("{a} (as {user})"),
            Auth::Plain { user, .. } => user.clone(),
        }
    }
}

pub(crate) fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// SASL PLAIN message: authzid NUL authcid NUL password, base64.
pub(crate) fn plain_response(authz: Option<&str>, user: &str, password: &Secret) -> Secret {
    let mut v = Vec::new();
    v.extend_from_slice(authz.unwrap_or("").as_bytes());
    v.push(0);
    v.extend_from_slice(user.as_bytes());
    v.push(0);
    v.extend_from_slice(password.expose().as_bytes());
    Secret::new(b64(&v))
}

/// XOAUTH2: base64("user=" user "\x01auth=Bearer " token "\x01\x01").
pub(crate) fn xoauth2_response(user: &str, token: &Secret) -> Secret {
    Secret::new(b64(format!(
        "user={user}\x01auth=Bearer {}\x01\x01",
        token.expose()
    )
    .as_bytes()))
}

/// OAUTHBEARER (RFC 7628): gs2 header "n,a=user," then "\x01auth=Bearer token\x01\x01".
pub(crate) fn oauthbearer_response(user: &str, token: &Secret) -> Secret {
    let user = user.replace('=', "=3D").replace(',', "=2C");
    Secret::new(b64(format!(
        "n,a={user},\x01auth=Bearer {}\x01\x01",
        token.expose()
    )
    .as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_messages() {
        // RFC 4616 example: authcid "tim", password "tanstaaftanstaaf"
        assert_eq!(
            plain_response(None, "tim", &"tanstaaftanstaaf".into()).expose(),
            "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
        );
        let x = xoauth2_response(
            "someuser@example.com",
            &"ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg".into(),
        );
        // Google's documented example
        assert_eq!(
            x.expose(),
            "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
        );
        let o = oauthbearer_response(
            "user@example.com",
            &"vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==".into(),
        );
        let raw = base64::engine::general_purpose::STANDARD
            .decode(o.expose())
            .unwrap();
        assert_eq!(raw, b"n,a=user@example.com,\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01");
        let a = Auth::Plain {
            authorize_as: Some("alice".into()),
            user: "admin".into(),
            password: "pw-secret".into(),
        };
        assert!(!format!("{a:?}").contains("pw-secret"));
    }
}
