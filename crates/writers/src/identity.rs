//! Identity: app-only tokens (client secret or certificate), the device code flow, a token cache
//! that refreshes before expiry, and reading the token's permissions.
//!
//! Why not `azure_identity`: its certificate credential needs OpenSSL (we keep TLS and crypto on
//! `ring`, no C toolchain), it has no device code credential, and its types would appear in our
//! API. The three flows are small, documented OAuth 2.0 exchanges, implemented here by hand on
//! `reqwest` + `ring`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::cloud::Endpoints;
use crate::{Error, SecretString};

/// How the app proves who it is.
#[derive(Clone)]
#[non_exhaustive]
pub enum Credential {
    /// Client credentials with a client secret (app-only).
    ClientSecret(SecretString),
    /// Client credentials with a certificate: a signed client assertion (app-only).
    Certificate(Arc<CertificateCredential>),
    /// The device code flow: an admin signs in on another device (delegated).
    DeviceCode(DeviceCodeOptions),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientSecret(_) => f.write_str("ClientSecret([redacted])"),
            Self::Certificate(c) => write!(f, "Certificate(x5t#S256={})", c.thumbprint_sha256()),
            Self::DeviceCode(_) => f.write_str("DeviceCode"),
        }
    }
}

/// The signature algorithm of client assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AssertionAlgorithm {
    /// RSASSA-PSS with SHA-256, certificate named by `x5t#S256` (Microsoft's current advice).
    #[default]
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, certificate named by the SHA-1 `x5t`.
    Rs256,
}

/// A certificate with its RSA private key, for client assertions.
pub struct CertificateCredential {
    cert_der: Vec<u8>,
    key: ring::signature::RsaKeyPair,
    algorithm: AssertionAlgorithm,
}

impl fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateCredential")
            .field("x5t#S256", &self.thumbprint_sha256())
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl CertificateCredential {
    /// From PEM text holding the certificate and its private key (PKCS#8 `PRIVATE KEY` or
    /// PKCS#1 `RSA PRIVATE KEY`), in one file or concatenated. `what` names the source in errors.
    pub fn from_pem(pem: &[u8], what: &str) -> Result<Self, Error> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let cert = CertificateDer::from_pem_slice(pem)
            .map_err(|e| Error::Config(format!("{what}: no PEM certificate found ({e}); hint: the file needs a -----BEGIN CERTIFICATE----- block")))?;
        let key = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|e| Error::Config(format!("{what}: no PEM private key found ({e}); hint: append the unencrypted RSA key (openssl pkcs8 -topk8 -nocrypt) to the file")))?;
        Self::from_der(cert.to_vec(), &key, what)
    }

    /// From a DER certificate and a private key.
    fn from_der(
        cert_der: Vec<u8>,
        key: &rustls_pki_types::PrivateKeyDer<'_>,
        what: &str,
    ) -> Result<Self, Error> {
        use rustls_pki_types::PrivateKeyDer;
        let key = match key {
            PrivateKeyDer::Pkcs8(k) => ring::signature::RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => ring::signature::RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => {
                return Err(Error::Config(format!("{what}: the private key is not an RSA key; hint: Microsoft Entra client assertions need an RSA certificate")));
            }
        }
        .map_err(|e| Error::Config(format!("{what}: unusable RSA private key ({e})")))?;
        Ok(Self {
            cert_der,
            key,
            algorithm: AssertionAlgorithm::default(),
        })
    }

    /// From a PKCS#12 (`.pfx`) file protected by `password`.
    pub fn from_pfx(pfx: &[u8], password: &SecretString, what: &str) -> Result<Self, Error> {
        let store = p12_keystore::KeyStore::from_pkcs12(
            pfx,
            password.expose(),
            p12_keystore::Pkcs12ImportPolicy::Strict,
        )
        .map_err(|e| {
            Error::Config(format!(
                "{what}: cannot open the PFX ({e}); hint: check the password"
            ))
        })?;
        let (_, chain) = store
            .private_key_chain()
            .ok_or_else(|| Error::Config(format!("{what}: the PFX holds no private key")))?;
        let cert = chain
            .certs()
            .first()
            .ok_or_else(|| Error::Config(format!("{what}: the PFX holds no certificate")))?;
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(chain.key().as_der().to_vec().into());
        Self::from_der(cert.as_der().to_vec(), &key, what)
    }

    /// Uses `algorithm` for assertions (default PS256).
    pub fn with_algorithm(mut self, algorithm: AssertionAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Base64url SHA-256 of the certificate (`x5t#S256`).
    pub fn thumbprint_sha256(&self) -> String {
        URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &self.cert_der))
    }

    /// Base64url SHA-1 of the certificate (`x5t`; the thumbprint the Entra portal shows, in hex).
    pub fn thumbprint_sha1(&self) -> String {
        URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            &self.cert_der,
        ))
    }

    /// A signed client assertion for `token_url` (valid 10 minutes).
    pub fn assertion(&self, client_id: &str, token_url: &str) -> Result<SecretString, Error> {
        let rng = ring::rand::SystemRandom::new();
        let mut jti = [0u8; 16];
        ring::rand::SecureRandom::fill(&rng, &mut jti)
            .map_err(|_| Error::Config("no system randomness".into()))?;
        let header = match self.algorithm {
            AssertionAlgorithm::Ps256 => {
                serde_json::json!({"alg": "PS256", "typ": "JWT", "x5t#S256": self.thumbprint_sha256()})
            }
            AssertionAlgorithm::Rs256 => {
                serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t": self.thumbprint_sha1()})
            }
        };
        let now = unix_now();
        let claims = serde_json::json!({
            "aud": token_url, "iss": client_id, "sub": client_id,
            "jti": jti.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "nbf": now, "iat": now, "exp": now + 600,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        let padding: &dyn ring::signature::RsaEncoding = match self.algorithm {
            AssertionAlgorithm::Ps256 => &ring::signature::RSA_PSS_SHA256,
            AssertionAlgorithm::Rs256 => &ring::signature::RSA_PKCS1_SHA256,
        };
        self.key
            .sign(padding, &rng, input.as_bytes(), &mut sig)
            .map_err(|_| Error::Config("signing the client assertion failed".into()))?;
        Ok(SecretString::new(format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(sig)
        )))
    }
}

/// What the user must do to finish a device code sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCodePrompt {
    /// The code to enter.
    pub user_code: String,
    /// Where to enter it.
    pub verification_uri: String,
    /// Microsoft's ready-made instruction text.
    pub message: String,
    /// How long the code is valid.
    pub expires_in: Duration,
}

/// Options of the device code flow.
#[derive(Clone)]
pub struct DeviceCodeOptions {
    /// Called once with the prompt to show the user.
    pub on_prompt: Arc<dyn Fn(&DeviceCodePrompt) + Send + Sync>,
    /// Delegated scopes; default `{graph}/.default offline_access`.
    pub scopes: Option<String>,
    /// How much to slow down on `slow_down` (RFC 8628: 5 seconds).
    pub slow_down_step: Duration,
}

impl DeviceCodeOptions {
    /// Options that print the prompt with `on_prompt`.
    pub fn new(on_prompt: impl Fn(&DeviceCodePrompt) + Send + Sync + 'static) -> Self {
        Self {
            on_prompt: Arc::new(on_prompt),
            scopes: None,
            slow_down_step: Duration::from_secs(5),
        }
    }
}

/// The permissions a token carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenClaims {
    /// Application permissions (`roles`, app-only tokens).
    pub roles: Vec<String>,
    /// Delegated scopes (`scp`, device code tokens).
    pub scopes: Vec<String>,
    /// The app id (`appid`).
    pub app_id: Option<String>,
    /// The tenant id (`tid`).
    pub tenant_id: Option<String>,
}

impl TokenClaims {
    /// Reads the claims of a JWT access token (without verifying it; the service does).
    pub fn from_jwt(token: &str) -> Option<Self> {
        let payload = token.split('.').nth(1)?;
        let raw = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
        Some(Self {
            roles: v["roles"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|r| r.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            scopes: v["scp"]
                .as_str()
                .map(|s| s.split(' ').map(String::from).collect())
                .unwrap_or_default(),
            app_id: v["appid"].as_str().map(String::from),
            tenant_id: v["tid"].as_str().map(String::from),
        })
    }

    /// Whether the token carries `permission` as a role or a scope (case-insensitive).
    pub fn has(&self, permission: &str) -> bool {
        self.roles
            .iter()
            .chain(&self.scopes)
            .any(|p| p.eq_ignore_ascii_case(permission))
    }

    /// Checks that every permission in `needed` is present; names the missing ones and the fix.
    pub fn require(&self, needed: &[&str]) -> Result<(), Error> {
        let missing: Vec<String> = needed
            .iter()
            .filter(|p| !self.has(p))
            .map(|p| p.to_string())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let delegated = self.roles.is_empty() && !self.scopes.is_empty();
        let kind = if delegated {
            "Delegated permissions"
        } else {
            "Application permissions"
        };
        let app = self.app_id.clone().unwrap_or_else(|| "<client id>".into());
        Err(Error::MissingPermissions {
            fix: format!(
                "Microsoft Entra admin center → App registrations → the app {app} → API permissions → Add a permission → Microsoft Graph → {kind} → tick {} → Add permissions → Grant admin consent for the tenant (or: az ad app permission add --id {app} --api 00000003-0000-0000-c000-000000000000 --api-permissions <id>=Role, then az ad app permission admin-consent --id {app}); then run again (new tokens carry the new roles)",
                missing.join(", ")
            ),
            missing,
        })
    }
}

/// A bearer token with its expiry and claims.
#[derive(Clone)]
pub struct AccessToken {
    /// The token (never printed).
    pub secret: SecretString,
    /// When it stops working.
    pub expires_at: Instant,
    /// Its permissions.
    pub claims: TokenClaims,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"[redacted]")
            .field("claims", &self.claims)
            .finish()
    }
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize, Default)]
struct OAuthError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

#[derive(Deserialize)]
struct DeviceCodeReply {
    device_code: String,
    user_code: String,
    verification_uri: String,
    #[serde(default)]
    message: String,
    expires_in: u64,
    #[serde(default)]
    interval: Option<u64>,
}

struct Cached {
    token: AccessToken,
    lifetime: Duration,
    refresh: Option<SecretString>,
}

/// Gets and caches tokens for one app in one tenant; refreshes them before they expire.
pub struct TokenProvider {
    http: reqwest::Client,
    endpoints: Endpoints,
    tenant: String,
    client_id: String,
    credential: Credential,
    cache: tokio::sync::Mutex<Option<Cached>>,
    refresh_margin: Duration,
    scope: Option<String>,
}

impl fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenProvider")
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn auth_error(status: u16, body: &[u8], context: &str) -> Error {
    let e: OAuthError = serde_json::from_slice(body).unwrap_or_default();
    let code = e
        .error_description
        .split(':')
        .next()
        .unwrap_or_default()
        .to_string();
    let hint = match code.as_str() {
        "AADSTS7000215" => Some(
            "the client secret is wrong or expired: use the secret's Value (not its ID) from Certificates & secrets",
        ),
        "AADSTS700016" => Some(
            "the client id is not registered in this tenant: check tenant and client_id, and that admin consent was given in this tenant",
        ),
        "AADSTS700027" | "AADSTS700024" => Some(
            "the certificate is not registered for the app or the assertion is invalid: upload the public certificate under Certificates & secrets and check the machine clock",
        ),
        "AADSTS90002" => Some(
            "the tenant is unknown: use the tenant id (GUID) or a verified domain, and the right cloud",
        ),
        "AADSTS1002012" => Some("app-only tokens need a scope ending in /.default"),
        "AADSTS7000218" => Some("give a client secret or a certificate"),
        _ => None,
    };
    let first_line = e.error_description.lines().next().unwrap_or_default();
    Error::Auth {
        message: if e.error.is_empty() {
            format!("{context}: HTTP {status}")
        } else {
            format!("{context}: {} ({first_line})", e.error)
        },
        hint: hint.map(String::from),
    }
}

impl TokenProvider {
    /// A provider for `client_id` in `tenant` (id or verified domain).
    pub fn new(
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        credential: Credential,
        endpoints: Endpoints,
    ) -> Result<Self, Error> {
        Ok(Self {
            http: crate::http::http_client(Duration::from_secs(60))?,
            endpoints,
            tenant: tenant.into(),
            client_id: client_id.into(),
            credential,
            cache: tokio::sync::Mutex::new(None),
            refresh_margin: Duration::from_secs(300),
            scope: None,
        })
    }

    /// Renew tokens when less than `margin` of their life is left (default 5 minutes, or half
    /// the lifetime for short-lived tokens).
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// Asks for tokens for `scope` instead of the Graph scope, e.g.
    /// [`Endpoints::exchange_scope`] for IMAP to Exchange Online (`IMAP.AccessAsApp`).
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The scope tokens are requested for (`{graph}/.default` unless set by
    /// [`TokenProvider::with_scope`]).
    pub fn scope(&self) -> String {
        self.scope
            .clone()
            .unwrap_or_else(|| self.endpoints.graph_scope())
    }

    /// The endpoints in use.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// A valid token, from the cache or freshly obtained.
    pub async fn token(&self) -> Result<AccessToken, Error> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref()
            && c.token.expires_at > Instant::now() + self.refresh_margin.min(c.lifetime / 2)
        {
            return Ok(c.token.clone());
        }
        let refresh = cache.as_ref().and_then(|c| c.refresh.clone());
        let fresh = match (&self.credential, refresh) {
            (Credential::DeviceCode(_), Some(rt)) => match self.refresh(&rt).await {
                Ok(c) => c,
                Err(_) => self.fetch().await?,
            },
            _ => self.fetch().await?,
        };
        let token = fresh.token.clone();
        *cache = Some(fresh);
        Ok(token)
    }

    /// Forgets the cached token (after a 401).
    pub async fn invalidate(&self) {
        if let Some(c) = self.cache.lock().await.as_mut() {
            c.token.expires_at = Instant::now();
        }
    }

    async fn fetch(&self) -> Result<Cached, Error> {
        let token_url = self.endpoints.token_url(&self.tenant);
        let scope = self.scope();
        match &self.credential {
            Credential::ClientSecret(secret) => {
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", self.client_id.as_str()),
                    ("scope", scope.as_str()),
                    ("client_secret", secret.expose()),
                ];
                self.post_token(&token_url, &form, "client credentials (secret)")
                    .await
            }
            Credential::Certificate(cert) => {
                let assertion = cert.assertion(&self.client_id, &token_url)?;
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", self.client_id.as_str()),
                    ("scope", scope.as_str()),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", assertion.expose()),
                ];
                self.post_token(&token_url, &form, "client credentials (certificate)")
                    .await
            }
            Credential::DeviceCode(opts) => self.device_code(opts).await,
        }
    }

    async fn refresh(&self, refresh_token: &SecretString) -> Result<Cached, Error> {
        let token_url = self.endpoints.token_url(&self.tenant);
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", self.client_id.as_str()),
            ("refresh_token", refresh_token.expose()),
        ];
        self.post_token(&token_url, &form, "refresh token").await
    }

    async fn post_token(
        &self,
        url: &str,
        form: &[(&str, &str)],
        context: &str,
    ) -> Result<Cached, Error> {
        let (status, body) = self.post_form(url, form, context).await?;
        if status != 200 {
            return Err(auth_error(status, &body, context));
        }
        Self::parse_token(&body, context)
    }

    async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        context: &str,
    ) -> Result<(u16, bytes::Bytes), Error> {
        let resp = self.http.post(url).form(form).send().await.map_err(|e| {
            Error::Transport(format!("{context}: {}", crate::http::describe_reqwest(&e)))
        })?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| {
            Error::Transport(format!("{context}: {}", crate::http::describe_reqwest(&e)))
        })?;
        Ok((status, body))
    }

    fn parse_token(body: &[u8], context: &str) -> Result<Cached, Error> {
        let reply: TokenReply = serde_json::from_slice(body).map_err(|e| Error::Protocol {
            context: context.into(),
            message: format!("token reply: {e}"),
        })?;
        let secs = match &reply.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(3600),
            Some(serde_json::Value::String(s)) => s.parse().unwrap_or(3600),
            _ => 3600,
        };
        let claims = TokenClaims::from_jwt(&reply.access_token).unwrap_or_default();
        Ok(Cached {
            lifetime: Duration::from_secs(secs),
            token: AccessToken {
                secret: SecretString::new(reply.access_token),
                expires_at: Instant::now() + Duration::from_secs(secs),
                claims,
            },
            refresh: reply.refresh_token.map(SecretString::new),
        })
    }

    async fn device_code(&self, opts: &DeviceCodeOptions) -> Result<Cached, Error> {
        let scope = opts
            .scopes
            .clone()
            .unwrap_or_else(|| format!("{} offline_access", self.scope()));
        let url = self.endpoints.devicecode_url(&self.tenant);
        let (status, body) = self
            .post_form(
                &url,
                &[
                    ("client_id", self.client_id.as_str()),
                    ("scope", scope.as_str()),
                ],
                "device code",
            )
            .await?;
        if status != 200 {
            return Err(auth_error(status, &body, "device code"));
        }
        let dc: DeviceCodeReply = serde_json::from_slice(&body).map_err(|e| Error::Protocol {
            context: "device code".into(),
            message: e.to_string(),
        })?;
        (opts.on_prompt)(&DeviceCodePrompt {
            user_code: dc.user_code.clone(),
            verification_uri: dc.verification_uri.clone(),
            message: dc.message.clone(),
            expires_in: Duration::from_secs(dc.expires_in),
        });
        let deadline = Instant::now() + Duration::from_secs(dc.expires_in);
        let mut interval = Duration::from_secs(dc.interval.unwrap_or(5).max(1));
        let token_url = self.endpoints.token_url(&self.tenant);
        let device_code = SecretString::new(dc.device_code);
        loop {
            tokio::time::sleep(interval).await;
            let form = [
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", self.client_id.as_str()),
                ("device_code", device_code.expose()),
            ];
            let (status, body) = self.post_form(&token_url, &form, "device code").await?;
            if status == 200 {
                return Self::parse_token(&body, "device code");
            }
            let e: OAuthError = serde_json::from_slice(&body).unwrap_or_default();
            match e.error.as_str() {
                "authorization_pending" => {}
                "slow_down" => interval += opts.slow_down_step,
                "authorization_declined" => {
                    return Err(Error::Auth {
                        message: "device code: the user declined the sign-in".into(),
                        hint: Some("run again and accept the consent prompt".into()),
                    });
                }
                "expired_token" => {
                    return Err(Error::Auth {
                        message: "device code: the code expired before sign-in finished".into(),
                        hint: Some(format!(
                            "run again and enter the code within {} seconds",
                            dc.expires_in
                        )),
                    });
                }
                _ => return Err(auth_error(status, &body, "device code")),
            }
            if Instant::now() >= deadline {
                return Err(Error::Auth {
                    message: "device code: the code expired before sign-in finished".into(),
                    hint: Some("run again and sign in sooner".into()),
                });
            }
        }
    }
}
