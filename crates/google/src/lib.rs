//! Google sign-in for Gmail and Google Workspace sources.
//!
//! Two ways to get an OAuth 2.0 access token for Gmail's IMAP `XOAUTH2`:
//!
//! - **Workspace, app-only:** a service account with domain-wide delegation. Load its JSON key
//!   with [`ServiceAccountKey::from_json`] and build [`GoogleTokens::service_account`]; every
//!   user (`sub`) gets their own token.
//! - **Consumer accounts:** an installed-app refresh token ([`RefreshTokenCredentials`]) with
//!   [`GoogleTokens::refresh_token`].
//!
//! Tokens are cached per user and renewed before they expire ([`TokenOptions::renew_before`]);
//! concurrent callers for one user share one exchange; [`GoogleTokens::invalidate`] drops a
//! token the server refused. [`GoogleTokens::for_user`] adapts the cache to the IMAP client's
//! [`o365_migrate_imap::TokenProvider`], and [`GoogleTokens::imap_auth`] builds the
//! [`o365_migrate_imap::Auth::XOAuth2`] login directly.
//!
//! No key, token or assertion ever appears in a `Debug` or `Display` output, an error or a log.

mod error;
mod installed;
mod key;
mod tokens;

pub use error::Error;
pub use installed::{GOOGLE_AUTH_URI, InstalledAppFlow, PendingAuthorization};
pub use key::ServiceAccountKey;
pub use o365_migrate_imap::Secret;
pub use tokens::{
    DEFAULT_SCOPE, GOOGLE_TOKEN_URI, GoogleTokens, RefreshTokenCredentials, TokenOptions,
    UserTokens,
};
