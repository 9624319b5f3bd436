//! [`GoogleTokenStandIn`]: a stand-in for Google's OAuth 2.0 token endpoint on 127.0.0.1.
//!
//! It serves `POST /token` with the two grants the Google sign-in library uses:
//!
//! - the JWT-bearer grant (service account with domain-wide delegation): the RS256 signature is
//!   checked against the service account's public key, and the header's `kid`, the claims
//!   `iss`, `aud`, `iat`/`exp` (at most an hour), the delegated scopes of [`CLIENT_ID`] and the
//!   user in `sub` are checked as Google does;
//! - the refresh-token grant, with the client ID and secret, revocation and the user the
//!   refresh token belongs to.
//!
//! Refusals carry Google's error JSON (`{"error": …, "error_description": …}`) and status.
//! Every access token issued is remembered with its user, scopes and expiry, so an IMAP
//! stand-in ([`GmailServer`](crate::GmailServer)) can accept exactly the tokens Google would:
//! see [`TokenRegistry`]. It runs on its own thread, so it answers while a test blocks on the
//! `o365-migrate` binary; stopped on drop.

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::{Json, Router, routing::get, routing::post};
use base64::Engine as _;
use ring::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey};
use serde_json::{Value, json};
use sha2::Digest as _;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::background::{Background, bind_loopback};
use crate::error::{Error, Result};

/// The scope for IMAP, POP and SMTP (<https://developers.google.com/gmail/imap/xoauth2-protocol>).
pub const MAIL_SCOPE: &str = "https://mail.google.com/";
/// The service account's e-mail in [`key_file`] (the JWT's `iss`).
pub const CLIENT_EMAIL: &str = "migrator@proj-1.iam.gserviceaccount.com";
/// The service account's client ID in [`key_file`] (what domain-wide delegation names).
pub const CLIENT_ID: &str = "103456789012345678901";
/// The key ID in [`key_file`] (the JWT header's `kid`).
pub const KEY_ID: &str = "0123456789abcdef0123456789abcdef01234567";

/// A fresh 2048-bit RSA key, PKCS#8 PEM, from `openssl genpkey` (takes a fraction of a second).
pub fn new_rsa_pem() -> Result<String> {
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .map_err(|source| Error::Io {
            context: "running `openssl genpkey` (Debian package `openssl`)".into(),
            source,
        })?;
    if !out.status.success() {
        return Err(Error::Certificate(format!(
            "openssl genpkey failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    String::from_utf8(out.stdout).map_err(|_| Error::Certificate("openssl wrote no PEM".into()))
}

/// A service account key file as Google gives it, for the key `pem` and token endpoint
/// `token_uri` (with [`CLIENT_EMAIL`], [`CLIENT_ID`] and [`KEY_ID`]).
pub fn key_file(pem: &str, token_uri: &str) -> Vec<u8> {
    json!({
        "type": "service_account",
        "project_id": "proj-1",
        "private_key_id": KEY_ID,
        "private_key": pem,
        "client_email": CLIENT_EMAIL,
        "client_id": CLIENT_ID,
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    })
    .to_string()
    .into_bytes()
}

/// A refresh token the stand-in knows.
#[derive(Debug, Clone, Default)]
pub struct RefreshGrant {
    /// The OAuth client it was issued to.
    pub client_id: String,
    /// That client's secret.
    pub client_secret: String,
    /// The user who signed in (the access tokens are theirs).
    pub user: String,
    /// The scopes the user consented to (access tokens carry these; IMAP needs [`MAIL_SCOPE`]).
    pub scopes: Vec<String>,
    /// Revoked by the user or an admin: the grant answers `invalid_grant`.
    pub revoked: bool,
}

/// What the stand-in knows: users, delegation and refresh tokens.
#[derive(Debug, Clone, Default)]
pub struct TokenConfig {
    /// Users that exist.
    pub users: HashSet<String>,
    /// Client ID → scopes authorized for domain-wide delegation.
    pub delegation: HashMap<String, Vec<String>>,
    /// Refresh token → its grant.
    pub refresh: HashMap<String, RefreshGrant>,
    /// Installed-app (Desktop) OAuth clients: client ID → client secret. Their users sign in at
    /// [`GoogleTokenStandIn::auth_url`], which consents at once for the `login_hint` user.
    pub desktop_clients: HashMap<String, String>,
}

/// An access token the stand-in issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The token (`ya29.standin-token-N`).
    pub token: String,
    /// The user it acts for.
    pub user: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// When it expires (`None`: a lifetime too long to represent).
    pub expires_at: Option<SystemTime>,
    /// Revoked by [`TokenRegistry::revoke`].
    pub revoked: bool,
}

impl IssuedToken {
    fn valid_now(&self) -> bool {
        !self.revoked && self.expires_at.is_none_or(|t| SystemTime::now() < t)
    }
}

/// The access tokens a [`GoogleTokenStandIn`] issued; cheap to clone, shared with it.
#[derive(Debug, Clone, Default)]
pub struct TokenRegistry {
    tokens: Arc<Mutex<HashMap<String, IssuedToken>>>,
}

impl TokenRegistry {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, IssuedToken>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, token: IssuedToken) {
        self.lock().insert(token.token.clone(), token);
    }

    /// True if `token` was issued for `user` (case-insensitive), carries `scope`, has not
    /// expired and was not revoked.
    pub fn valid_for(&self, user: &str, token: &str, scope: &str) -> bool {
        self.lock().get(token).is_some_and(|t| {
            t.user.eq_ignore_ascii_case(user)
                && t.scopes.iter().any(|s| s == scope)
                && t.valid_now()
        })
    }

    /// Every token issued so far, oldest first.
    pub fn issued(&self) -> Vec<IssuedToken> {
        let mut v: Vec<IssuedToken> = self.lock().values().cloned().collect();
        v.sort_by_key(|t| token_number(&t.token));
        v
    }

    /// Makes `token` expired now. Returns false if it is unknown.
    pub fn expire(&self, token: &str) -> bool {
        self.lock()
            .get_mut(token)
            .map(|t| t.expires_at = Some(SystemTime::now() - Duration::from_secs(1)))
            .is_some()
    }

    /// Revokes `token`. Returns false if it is unknown.
    pub fn revoke(&self, token: &str) -> bool {
        self.lock()
            .get_mut(token)
            .map(|t| t.revoked = true)
            .is_some()
    }

    /// Expires every token of `user`; returns how many.
    pub fn expire_user(&self, user: &str) -> usize {
        let past = SystemTime::now() - Duration::from_secs(1);
        let mut n = 0;
        for t in self.lock().values_mut() {
            if t.user.eq_ignore_ascii_case(user) {
                t.expires_at = Some(past);
                n += 1;
            }
        }
        n
    }
}

fn token_number(token: &str) -> u64 {
    token
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The token endpoint stand-in; see the [module docs](self). Stopped on drop.
#[derive(Debug)]
pub struct GoogleTokenStandIn {
    url: String,
    shared: Arc<Shared>,
    _runtime: Background,
}

#[derive(Debug)]
struct Shared {
    public_key: Vec<u8>,
    url: String,
    config: Mutex<TokenConfig>,
    expires_in: AtomicU64,
    delay_ms: AtomicU64,
    requests: AtomicUsize,
    issued: AtomicUsize,
    last_claims: Mutex<Option<Value>>,
    registry: TokenRegistry,
    /// Authorization code → what it was issued for.
    codes: Mutex<HashMap<String, PendingCode>>,
}

/// An authorization code the consent page gave out, not yet exchanged.
#[derive(Debug)]
struct PendingCode {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    user: String,
    scopes: Vec<String>,
}

impl GoogleTokenStandIn {
    /// Starts on 127.0.0.1 (ephemeral port) for the service account whose private key is `pem`
    /// (PKCS#8 PEM, e.g. from [`new_rsa_pem`]). Tokens live 3,599 s unless
    /// [`set_expires_in`](Self::set_expires_in) says otherwise.
    pub fn start(pem: &str, config: TokenConfig) -> Result<GoogleTokenStandIn> {
        let der = base64::engine::general_purpose::STANDARD
            .decode(
                pem.lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect::<String>(),
            )
            .map_err(|_| Error::InvalidOption("the service account key is not PEM".into()))?;
        let public_key = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| Error::InvalidOption(format!("the service account key: {e}")))?
            .public_key()
            .as_ref()
            .to_vec();
        let (listener, addr) = bind_loopback("the token endpoint stand-in")?;
        let url = format!("http://{addr}/token");
        let shared = Arc::new(Shared {
            public_key,
            url: url.clone(),
            config: Mutex::new(config),
            expires_in: AtomicU64::new(3599),
            delay_ms: AtomicU64::new(0),
            requests: AtomicUsize::new(0),
            issued: AtomicUsize::new(0),
            last_claims: Mutex::new(None),
            registry: TokenRegistry::default(),
            codes: Mutex::new(HashMap::new()),
        });
        let app = Router::new()
            .route("/token", post(token))
            .route("/auth", get(consent))
            .with_state(shared.clone());
        let runtime = Background::start("google-token-stand-in")?;
        runtime.spawn(async move {
            if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
                let _ = axum::serve(listener, app).await;
            }
        });
        Ok(GoogleTokenStandIn {
            url,
            shared,
            _runtime: runtime,
        })
    }

    /// The token endpoint (`http://127.0.0.1:PORT/token`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The authorization (consent) endpoint for installed apps (`http://127.0.0.1:PORT/auth`):
    /// for a known desktop client it consents at once for the `login_hint` user and redirects
    /// to the `redirect_uri` with a code and the `state`, as Google does after the user agrees.
    pub fn auth_url(&self) -> String {
        self.url.replace("/token", "/auth")
    }

    /// Requests received (any grant, any outcome).
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Access tokens issued.
    pub fn issued(&self) -> usize {
        self.shared.issued.load(Ordering::SeqCst)
    }

    /// The lifetime (`expires_in`, seconds) of tokens issued from now on.
    pub fn set_expires_in(&self, seconds: u64) {
        self.shared.expires_in.store(seconds, Ordering::SeqCst);
    }

    /// A delay before every answer (to test concurrent callers).
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// The claims of the last verified JWT assertion, as JSON text.
    pub fn last_claims(&self) -> Option<String> {
        lock(&self.shared.last_claims)
            .as_ref()
            .map(Value::to_string)
    }

    /// Changes the configuration (users, delegation, refresh tokens) in place.
    pub fn update_config(&self, edit: impl FnOnce(&mut TokenConfig)) {
        edit(&mut lock(&self.shared.config));
    }

    /// The tokens issued, shared: give it to [`GmailServer`](crate::GmailServer) so it
    /// accepts them for XOAUTH2, and use it to expire or revoke tokens.
    pub fn registry(&self) -> TokenRegistry {
        self.shared.registry.clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

type Answer = (StatusCode, Json<Value>);

fn refuse(status: StatusCode, error: &str, description: &str) -> Answer {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
}

/// Who a granted request acts for (and the refresh token the authorization-code grant gave).
struct Grant {
    user: String,
    scopes: Vec<String>,
    refresh_token: Option<String>,
}

async fn token(State(s): State<Arc<Shared>>, Form(form): Form<HashMap<String, String>>) -> Answer {
    s.requests.fetch_add(1, Ordering::SeqCst);
    let delay = s.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let result = match form.get("grant_type").map(String::as_str) {
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => jwt_bearer(&s, &form),
        Some("refresh_token") => refresh(&s, &form),
        Some("authorization_code") => authorization_code(&s, &form),
        _ => Err(refuse(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Invalid grant_type: ",
        )),
    };
    match result {
        Ok(grant) => {
            let n = s.issued.fetch_add(1, Ordering::SeqCst) + 1;
            let expires_in = s.expires_in.load(Ordering::SeqCst);
            let token = format!("ya29.standin-token-{n}");
            s.registry.insert(IssuedToken {
                token: token.clone(),
                user: grant.user,
                scopes: grant.scopes,
                expires_at: SystemTime::now().checked_add(Duration::from_secs(expires_in)),
                revoked: false,
            });
            let mut answer = json!({
                "access_token": token,
                "expires_in": expires_in,
                "token_type": "Bearer",
            });
            if let Some(r) = grant.refresh_token {
                answer["refresh_token"] = Value::String(r);
            }
            (StatusCode::OK, Json(answer))
        }
        Err(answer) => answer,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn jwt_bearer(s: &Shared, form: &HashMap<String, String>) -> Result<Grant, Answer> {
    let bad_request = || refuse(StatusCode::BAD_REQUEST, "invalid_request", "Invalid JWT.");
    let jwt = form.get("assertion").ok_or_else(bad_request)?;
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, sig] = parts[..] else {
        return Err(bad_request());
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let decode_json = |p: &str| -> Result<Value, Answer> {
        let bytes = b64.decode(p).map_err(|_| bad_request())?;
        serde_json::from_slice(&bytes).map_err(|_| bad_request())
    };
    let header = decode_json(header)?;
    let claims = decode_json(claims)?;
    if header["alg"] != "RS256" || header["typ"] != "JWT" || header["kid"] != KEY_ID {
        return Err(bad_request());
    }
    let sig = b64.decode(sig).map_err(|_| bad_request())?;
    let signed = jwt.rsplit_once('.').map_or("", |(signed, _)| signed);
    if UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &s.public_key)
        .verify(signed.as_bytes(), &sig)
        .is_err()
    {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid JWT Signature.",
        ));
    }
    if claims["iss"] != CLIENT_EMAIL {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.",
        ));
    }
    if claims["aud"] != s.url.as_str() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid JWT: Failed audience check.",
        ));
    }
    let (Some(iat), Some(exp)) = (claims["iat"].as_u64(), claims["exp"].as_u64()) else {
        return Err(bad_request());
    };
    let t = now();
    if exp <= iat || exp - iat > 3600 || iat > t + 60 || exp < t {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
        ));
    }
    let config = lock(&s.config);
    let granted = config
        .delegation
        .get(CLIENT_ID)
        .cloned()
        .unwrap_or_default();
    let scopes: Vec<String> = claims["scope"]
        .as_str()
        .unwrap_or("")
        .split(' ')
        .map(str::to_owned)
        .collect();
    if !scopes.iter().all(|sc| granted.contains(sc)) {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
        ));
    }
    let sub = claims["sub"].as_str().unwrap_or("").to_owned();
    if !config.users.contains(&sub) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid email or User ID",
        ));
    }
    *lock(&s.last_claims) = Some(claims);
    Ok(Grant {
        user: sub,
        scopes,
        refresh_token: None,
    })
}

fn refresh(s: &Shared, form: &HashMap<String, String>) -> Result<Grant, Answer> {
    let config = lock(&s.config);
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let Some(grant) = config.refresh.get(field("refresh_token")) else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Bad Request",
        ));
    };
    if grant.client_id != field("client_id") || grant.client_secret != field("client_secret") {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Unauthorized",
        ));
    }
    if grant.revoked {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Token has been expired or revoked.",
        ));
    }
    Ok(Grant {
        user: grant.user.clone(),
        scopes: grant.scopes.clone(),
        refresh_token: None,
    })
}

/// The consent page: a known desktop client, a loopback `redirect_uri`, PKCE S256 and a user
/// that exists → a redirect with a one-time code (the user agreed at once).
/// Parameters: <https://developers.google.com/identity/protocols/oauth2/native-app> (Step 2).
async fn consent(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let field = |k: &str| q.get(k).cloned().unwrap_or_default();
    let client_id = field("client_id");
    let redirect_uri = field("redirect_uri");
    let bad = |why: &str| (StatusCode::BAD_REQUEST, format!("Error 400: {why}")).into_response();
    let config = lock(&s.config).clone();
    if !config.desktop_clients.contains_key(&client_id) {
        return bad("invalid_client");
    }
    if !redirect_uri.starts_with("http://127.0.0.1:") || field("response_type") != "code" {
        return bad("invalid_request");
    }
    if field("code_challenge_method") != "S256" || field("code_challenge").len() < 43 {
        return bad("invalid_request: PKCE S256 required");
    }
    let user = field("login_hint");
    if !config.users.contains(&user) {
        let to = format!(
            "{redirect_uri}?error=access_denied&state={}",
            field("state")
        );
        return axum::response::Redirect::to(&to).into_response();
    }
    let n = s.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let code = format!("4/standin-code-{n}");
    lock(&s.codes).insert(
        code.clone(),
        PendingCode {
            client_id,
            redirect_uri: redirect_uri.clone(),
            challenge: field("code_challenge"),
            user,
            scopes: field("scope").split(' ').map(str::to_owned).collect(),
        },
    );
    let to = format!(
        "{redirect_uri}?state={}&code={}&scope={}",
        field("state"),
        code.replace('/', "%2F"),
        field("scope").replace(':', "%3A").replace('/', "%2F")
    );
    axum::response::Redirect::to(&to).into_response()
}

/// The authorization-code grant with PKCE: the code once, for the client and redirect it was
/// given to, with the verifier whose SHA-256 is the challenge; answers a new refresh token.
fn authorization_code(s: &Shared, form: &HashMap<String, String>) -> Result<Grant, Answer> {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let Some(pending) = lock(&s.codes).remove(field("code")) else {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Malformed auth code.",
        ));
    };
    let mut config = lock(&s.config);
    if config
        .desktop_clients
        .get(field("client_id"))
        .map(String::as_str)
        != Some(field("client_secret"))
        || pending.client_id != field("client_id")
    {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Unauthorized",
        ));
    }
    if pending.redirect_uri != field("redirect_uri") {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "redirect_uri_mismatch",
            "Bad Request",
        ));
    }
    let digest = sha2::Sha256::digest(field("code_verifier").as_bytes());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    if challenge != pending.challenge {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid code verifier.",
        ));
    }
    let refresh_token = format!(
        "1//standin-refresh-{}",
        s.issued.fetch_add(1, Ordering::SeqCst) + 1
    );
    config.refresh.insert(
        refresh_token.clone(),
        RefreshGrant {
            client_id: pending.client_id,
            client_secret: field("client_secret").to_owned(),
            user: pending.user.clone(),
            scopes: pending.scopes.clone(),
            revoked: false,
        },
    );
    Ok(Grant {
        user: pending.user,
        scopes: pending.scopes,
        refresh_token: Some(refresh_token),
    })
}
