//! Access tokens per user: the two grants, the cache and the IMAP adapter.

use crate::{Error, Secret, ServiceAccountKey};
use o365_migrate_imap::{Auth, TokenFuture, TokenProvider};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The scope for Gmail over IMAP, POP and SMTP.
/// <https://developers.google.com/gmail/imap/xoauth2-protocol> ("OAuth 2.0 Scopes"). With
/// domain-wide delegation, `https://www.googleapis.com/auth/gmail.imap_admin` (same page) shows
/// every label and message regardless of the user's IMAP settings; pass it with
/// [`TokenOptions::scope`] when the delegation grants it.
pub const DEFAULT_SCOPE: &str = "https://mail.google.com/";

/// Google's token endpoint, the `aud` of every assertion.
/// <https://developers.google.com/identity/protocols/oauth2/service-account> ("Forming the JWT
/// claim set": `aud` is always this URL).
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// The JWT-bearer grant type.
/// <https://developers.google.com/identity/protocols/oauth2/service-account> ("Making the access
/// token request").
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The largest token answer read (Google's are well under 2 KiB).
const MAX_ANSWER: usize = 64 * 1024;

/// An installed app's refresh token for one consumer account.
/// Grant: <https://developers.google.com/identity/protocols/oauth2/native-app> ("Refreshing an
/// access token": `grant_type=refresh_token`, `client_id`, `client_secret`, `refresh_token`).
/// `Debug` shows the client ID only.
#[derive(Clone, Debug)]
pub struct RefreshTokenCredentials {
    /// The OAuth client's ID.
    pub client_id: String,
    /// The OAuth client's secret.
    pub client_secret: Secret,
    /// The user's refresh token.
    pub refresh_token: Secret,
}

/// Settings of a [`GoogleTokens`]. Start from `TokenOptions::default()`.
#[derive(Clone, Debug)]
pub struct TokenOptions {
    scope: String,
    token_endpoint: Option<String>,
    renew_before: Duration,
}

impl Default for TokenOptions {
    fn default() -> Self {
        TokenOptions {
            scope: DEFAULT_SCOPE.to_owned(),
            token_endpoint: None,
            renew_before: Duration::from_secs(300),
        }
    }
}

impl TokenOptions {
    /// The scope to ask for (service accounts only; a refresh token keeps the scopes it was
    /// granted). Default [`DEFAULT_SCOPE`].
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// The token endpoint: `https://…`, or `http://127.0.0.1…` for a local stand-in. Default:
    /// the key file's `token_uri`, or [`GOOGLE_TOKEN_URI`] for refresh tokens.
    pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
        self.token_endpoint = Some(url.into());
        self
    }

    pub(crate) fn scope_str(&self) -> &str {
        &self.scope
    }

    pub(crate) fn endpoint(&self) -> Option<&str> {
        self.token_endpoint.as_deref()
    }

    /// How long before its expiry a cached token is renewed. Default 5 minutes.
    pub fn renew_before(mut self, early: Duration) -> Self {
        self.renew_before = early;
        self
    }
}

/// Refuses a token endpoint that is neither `https` nor a `127.0.0.1` stand-in.
pub(crate) fn check_endpoint(url: &str) -> Result<(), Error> {
    let refuse = |problem: &str| Error::TokenEndpoint {
        url: url.to_owned(),
        problem: problem.to_owned(),
    };
    let parsed = reqwest::Url::parse(url).map_err(|_| refuse("is not a URL"))?;
    match parsed.scheme() {
        "https" if parsed.host_str().is_some() => Ok(()),
        "http" if parsed.host_str() == Some("127.0.0.1") => Ok(()),
        _ => Err(refuse(
            "is not https (only http://127.0.0.1 is allowed without TLS)",
        )),
    }
}

enum Grant {
    ServiceAccount { key: ServiceAccountKey },
    Refresh(RefreshTokenCredentials),
}

#[derive(Clone)]
struct Cached {
    token: Secret,
    /// When to get a new one: `renew_before` ahead of expiry, or halfway for a short-lived token.
    renew_at: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

struct Inner {
    grant: Grant,
    scope: String,
    endpoint: String,
    renew_before: Duration,
    http: reqwest::Client,
    users: Mutex<HashMap<String, Slot>>,
}

/// Access tokens per user, cached and renewed before they expire. Cheap to clone (shared).
/// `Debug` never shows a key or token.
#[derive(Clone)]
pub struct GoogleTokens {
    inner: Arc<Inner>,
}

impl fmt::Debug for GoogleTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("GoogleTokens");
        match &self.inner.grant {
            Grant::ServiceAccount { key } => d.field("service_account", &key.client_email()),
            Grant::Refresh(c) => d.field("refresh_token_client", &c.client_id),
        };
        d.field("scope", &self.inner.scope)
            .field("endpoint", &self.inner.endpoint)
            .finish_non_exhaustive()
    }
}

impl GoogleTokens {
    /// Tokens from a service account with domain-wide delegation: one per user (`sub`).
    pub fn service_account(key: ServiceAccountKey, options: TokenOptions) -> Result<Self, Error> {
        let endpoint = options
            .token_endpoint
            .clone()
            .unwrap_or_else(|| key.token_uri().to_owned());
        Self::build(Grant::ServiceAccount { key }, endpoint, options)
    }

    /// Tokens from an installed app's refresh token (a consumer account). The `user` passed to
    /// [`access_token`](Self::access_token) only keys the cache and names errors.
    pub fn refresh_token(
        credentials: RefreshTokenCredentials,
        options: TokenOptions,
    ) -> Result<Self, Error> {
        let endpoint = options
            .token_endpoint
            .clone()
            .unwrap_or_else(|| GOOGLE_TOKEN_URI.to_owned());
        Self::build(Grant::Refresh(credentials), endpoint, options)
    }

    fn build(grant: Grant, endpoint: String, options: TokenOptions) -> Result<Self, Error> {
        check_endpoint(&endpoint)?;
        let http = http_client()?;
        Ok(GoogleTokens {
            inner: Arc::new(Inner {
                grant,
                scope: options.scope,
                endpoint,
                renew_before: options.renew_before,
                http,
                users: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// A valid access token for `user`: the cached one unless it expires within
    /// [`TokenOptions::renew_before`] (or is past half its lifetime, for tokens shorter than
    /// twice that), else a new one. Concurrent callers for one user share
    /// one exchange.
    pub async fn access_token(&self, user: &str) -> Result<Secret, Error> {
        let slot = {
            let mut users = self.inner.users.lock().unwrap_or_else(|p| p.into_inner());
            users.entry(user.to_owned()).or_default().clone()
        };
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.renew_at
        {
            return Ok(c.token.clone());
        }
        let fresh = self.exchange(user).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Forgets `user`'s cached token, so the next call gets a new one (after the server
    /// refused a token, before reconnecting).
    pub fn invalidate(&self, user: &str) {
        let mut users = self.inner.users.lock().unwrap_or_else(|p| p.into_inner());
        users.remove(user);
    }

    /// A [`TokenProvider`] for `user`, for the IMAP client's XOAUTH2 login.
    pub fn for_user(&self, user: impl Into<String>) -> UserTokens {
        UserTokens {
            tokens: self.clone(),
            user: user.into(),
        }
    }

    /// The IMAP login for `user`: `AUTHENTICATE XOAUTH2` with this cache's tokens
    /// (<https://developers.google.com/gmail/imap/xoauth2-protocol>).
    pub fn imap_auth(&self, user: impl Into<String>) -> Auth {
        let user = user.into();
        Auth::XOAuth2 {
            tokens: Arc::new(self.for_user(user.clone())),
            user,
        }
    }

    async fn exchange(&self, user: &str) -> Result<Cached, Error> {
        let inner = &*self.inner;
        let form: Vec<(&str, String)> = match &inner.grant {
            Grant::ServiceAccount { key } => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                // aud is the endpoint the assertion is sent to (Google's token_uri).
                let assertion = key.assertion(user, &inner.scope, &inner.endpoint, now)?;
                vec![
                    ("grant_type", JWT_BEARER.to_owned()),
                    ("assertion", assertion.expose().to_owned()),
                ]
            }
            Grant::Refresh(c) => vec![
                ("grant_type", "refresh_token".to_owned()),
                ("client_id", c.client_id.clone()),
                ("client_secret", c.client_secret.expose().to_owned()),
                ("refresh_token", c.refresh_token.expose().to_owned()),
            ],
        };
        tracing::debug!(user, endpoint = %inner.endpoint, "requesting a Google access token");
        let started = Instant::now();
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, json) = post_form(&inner.http, &inner.endpoint, &form).await?;
        let bad = |problem: &str| Error::BadResponse {
            endpoint: inner.endpoint.clone(),
            status,
            problem: problem.to_owned(),
        };
        if (200..300).contains(&status) {
            let token = json
                .get("access_token")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| bad("no access_token"))?;
            let expires_in = json
                .get("expires_in")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad("no expires_in"))?;
            tracing::debug!(user, expires_in, "got a Google access token");
            // Clamped to a day, so a hostile answer cannot overflow the clock.
            let lifetime = Duration::from_secs(expires_in.min(86_400));
            return Ok(Cached {
                token: Secret::new(token),
                renew_at: started + lifetime - inner.renew_before.min(lifetime / 2),
            });
        }
        let code = json.get("error").and_then(Value::as_str).unwrap_or("");
        let description = json
            .get("error_description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        Err(self.refusal(user, status, code, description))
    }

    /// Google's refusal → the error naming its fix.
    /// Codes and texts: <https://developers.google.com/identity/protocols/oauth2/service-account>
    /// ("Error codes") and, for refresh tokens,
    /// <https://developers.google.com/identity/protocols/oauth2#expiration>.
    fn refusal(&self, user: &str, status: u16, code: &str, description: String) -> Error {
        let user = user.to_owned();
        match (&self.inner.grant, code) {
            (Grant::ServiceAccount { key }, "unauthorized_client" | "access_denied") => {
                Error::DelegationMissing {
                    user,
                    client_id: key.client_id().to_owned(),
                    scope: self.inner.scope.clone(),
                    code: code.to_owned(),
                    description,
                }
            }
            (Grant::ServiceAccount { key }, "invalid_grant")
                if description.contains("Invalid JWT Signature") =>
            {
                Error::WrongKey {
                    client_email: key.client_email().to_owned(),
                    private_key_id: key.private_key_id().to_owned(),
                }
            }
            (Grant::ServiceAccount { .. }, "invalid_grant")
                if description.contains("Invalid email or User ID") =>
            {
                Error::UnknownUser { user }
            }
            (Grant::ServiceAccount { .. }, "invalid_grant")
                if description.contains("short-lived token")
                    || description.contains("reasonable timeframe") =>
            {
                Error::ClockSkew { description }
            }
            (Grant::Refresh(c), "invalid_grant") if description.contains("expired or revoked") => {
                Error::RefreshRevoked {
                    user,
                    client_id: c.client_id.clone(),
                }
            }
            _ => Error::Rejected {
                user,
                status,
                code: code.to_owned(),
                description,
            },
        }
    }
}

/// [`GoogleTokens`] for one user, as the IMAP client's [`TokenProvider`].
#[derive(Clone, Debug)]
pub struct UserTokens {
    tokens: GoogleTokens,
    user: String,
}

impl UserTokens {
    /// The user the tokens are for.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Forgets the cached token (after the server refused it).
    pub fn invalidate(&self) {
        self.tokens.invalidate(&self.user);
    }
}

impl TokenProvider for UserTokens {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            self.tokens.access_token(&self.user).await.map_err(|e| {
                // The IMAP error keeps text only: the whole chain, no secret in any link.
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    text.push_str(": ");
                    text.push_str(&s.to_string());
                    source = s.source();
                }
                o365_migrate_imap::Error::LoginFailed {
                    user: self.user.clone(),
                    text,
                }
            })
        })
    }
}

/// POSTs `form` to a token endpoint: the HTTP status and the JSON answer (at most
/// `MAX_ANSWER` bytes).
pub(crate) async fn post_form(
    http: &reqwest::Client,
    endpoint: &str,
    form: &[(&str, &str)],
) -> Result<(u16, Value), Error> {
    let http_err = |e: reqwest::Error| Error::Http {
        endpoint: endpoint.to_owned(),
        source: Box::new(e.without_url()),
    };
    let response = http
        .post(endpoint)
        .form(form)
        .send()
        .await
        .map_err(http_err)?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(http_err)?;
    let bad = |problem: &str| Error::BadResponse {
        endpoint: endpoint.to_owned(),
        status,
        problem: problem.to_owned(),
    };
    if body.len() > MAX_ANSWER {
        return Err(bad("an answer too large"));
    }
    let json = serde_json::from_slice(&body).map_err(|_| bad("no JSON"))?;
    Ok((status, json))
}

/// The HTTP client for Google's endpoints: TLS verified by the platform's trust store.
pub(crate) fn http_client() -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config()?)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| Error::Tls {
            detail: e.to_string(),
        })
}

fn tls_config() -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls {
            detail: e.to_string(),
        })?;
    let verifier = rustls_platform_verifier::Verifier::new(provider).map_err(|e| Error::Tls {
        detail: e.to_string(),
    })?;
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
