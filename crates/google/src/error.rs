//! The crate's one error type. No variant ever holds a key, a token or an assertion.

/// What went wrong signing in to Google, each with the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The service account key file is not usable.
    #[error(
        "service account key file: `{field}` {problem}; download a new JSON key in Google Cloud console → IAM → Service accounts → Keys and use the file as downloaded"
    )]
    KeyFile {
        /// The JSON field at fault (`(file)` for the file as a whole).
        field: String,
        /// What is wrong with it (never its value when the value is secret).
        problem: String,
    },
    /// The token endpoint URL cannot be used.
    #[error(
        "token endpoint {url:?} {problem}; use https://oauth2.googleapis.com/token (or the key file's token_uri)"
    )]
    TokenEndpoint {
        /// The URL as given.
        url: String,
        /// Why it is refused.
        problem: String,
    },
    /// The request to the token endpoint did not get an answer.
    #[error(
        "token request to {endpoint} failed; check the network path (proxy, firewall, DNS) to the endpoint"
    )]
    Http {
        /// The token endpoint.
        endpoint: String,
        /// The transport error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Domain-wide delegation is missing for the service account, or lacks the scope.
    #[error(
        "Google refused a token for {user} ({code}: {description}): domain-wide delegation is missing or lacks the scope; fix: Admin console → Security → Access and data control → API controls → Domain-wide delegation → add client ID {client_id} with scope {scope}"
    )]
    DelegationMissing {
        /// The user the token was for.
        user: String,
        /// The service account's client ID (numeric) to authorize.
        client_id: String,
        /// The scope to authorize.
        scope: String,
        /// Google's error code (`unauthorized_client`, `access_denied`).
        code: String,
        /// Google's description.
        description: String,
    },
    /// The key signing the assertion is not (or no longer) one of the service account's keys.
    #[error(
        "Google refused the signature of {client_email} (key id {private_key_id}): the key file is not (or no longer) the service account's: create a new key in Google Cloud console → IAM → Service accounts → Keys"
    )]
    WrongKey {
        /// The service account.
        client_email: String,
        /// The key's id from the key file (not secret).
        private_key_id: String,
    },
    /// The user does not exist in the Workspace domain.
    #[error(
        "Google does not know the user {user} (Invalid email or User ID); check the address (the primary address, not an alias) and that the user exists in the Workspace domain"
    )]
    UnknownUser {
        /// The user asked for.
        user: String,
    },
    /// The assertion's times were refused: this machine's clock is off.
    #[error(
        "Google refused the assertion's times ({description}); set this machine's clock right (NTP)"
    )]
    ClockSkew {
        /// Google's description.
        description: String,
    },
    /// The refresh token was revoked or has expired.
    #[error(
        "the refresh token of {user} (client ID {client_id}) has been expired or revoked; sign the user in again to get a new refresh token"
    )]
    RefreshRevoked {
        /// The account.
        user: String,
        /// The OAuth client the token belongs to.
        client_id: String,
    },
    /// Google refused the request for another reason.
    #[error(
        "Google refused a token for {user} (HTTP {status}, {code}: {description}); check the service account or OAuth client, its scopes and the user's account"
    )]
    Rejected {
        /// The user the token was for.
        user: String,
        /// The HTTP status.
        status: u16,
        /// Google's error code.
        code: String,
        /// Google's description.
        description: String,
    },
    /// The token endpoint answered something that is not a token answer.
    #[error(
        "the token endpoint {endpoint} answered HTTP {status} with {problem}; check that the URL is Google's token endpoint"
    )]
    BadResponse {
        /// The token endpoint.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// What is wrong with the answer.
        problem: String,
    },
    /// The installed-app sign-in (browser, redirect, code) did not give a refresh token.
    #[error("Google sign-in in the browser failed: {problem}")]
    Authorization {
        /// What went wrong and what to do (never a code or token).
        problem: String,
    },
    /// Signing the assertion failed.
    #[error("signing the assertion failed; download a new JSON key for the service account")]
    Signing,
    /// The TLS setup for the HTTP client failed.
    #[error("cannot set up TLS ({detail}); check the system trust store")]
    Tls {
        /// What failed.
        detail: String,
    },
}
