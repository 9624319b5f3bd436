//! A stand-in for Google's token endpoint (tests only): 127.0.0.1, the JWT-bearer grant with
//! the RS256 signature verified against the service account's public key, the refresh-token
//! grant with revocation, Google's error answers, and a request counter.

#![allow(dead_code, unreachable_pub)]

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::{Json, Router, routing::post};
use base64::Engine as _;
use ring::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A fresh 2048-bit RSA key, PKCS#8 PEM (`openssl genpkey`).
pub fn new_rsa_pem() -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("openssl is installed");
    assert!(out.status.success(), "openssl genpkey failed");
    String::from_utf8(out.stdout).unwrap()
}

pub const CLIENT_EMAIL: &str = "migrator@proj-1.iam.gserviceaccount.com";
pub const CLIENT_ID: &str = "103456789012345678901";
pub const KEY_ID: &str = "0123456789abcdef0123456789abcdef01234567";

/// A service account key file as Google gives it.
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
pub struct RefreshGrant {
    pub client_id: String,
    pub client_secret: String,
    pub revoked: bool,
}

#[derive(Default)]
pub struct Config {
    /// Users that exist.
    pub users: HashSet<String>,
    /// Client ID → scopes authorized for domain-wide delegation.
    pub delegation: HashMap<String, Vec<String>>,
    /// Refresh token → its grant.
    pub refresh: HashMap<String, RefreshGrant>,
}

pub struct StandIn {
    pub url: String,
    pub state: Arc<Shared>,
}

pub struct Shared {
    public_key: Vec<u8>,
    url: String,
    pub config: Mutex<Config>,
    pub expires_in: AtomicU64,
    pub delay_ms: AtomicU64,
    pub requests: AtomicUsize,
    pub issued: AtomicUsize,
    /// The claims of the last verified assertion.
    pub last_claims: Mutex<Option<Value>>,
}

impl StandIn {
    /// Starts on 127.0.0.1 with the service account whose key is `pem`.
    pub async fn start(pem: &str, config: Config) -> StandIn {
        let der = base64::engine::general_purpose::STANDARD
            .decode(
                pem.lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect::<String>(),
            )
            .unwrap();
        let public_key = RsaKeyPair::from_pkcs8(&der)
            .unwrap()
            .public_key()
            .as_ref()
            .to_vec();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let state = Arc::new(Shared {
            public_key,
            url: url.clone(),
            config: Mutex::new(config),
            expires_in: AtomicU64::new(3599),
            delay_ms: AtomicU64::new(0),
            requests: AtomicUsize::new(0),
            issued: AtomicUsize::new(0),
            last_claims: Mutex::new(None),
        });
        let app = Router::new()
            .route("/token", post(token))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        StandIn { url, state }
    }

    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
}

type Answer = (StatusCode, Json<Value>);

fn refuse(status: StatusCode, error: &str, description: &str) -> Answer {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
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
        _ => Err(refuse(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Invalid grant_type: ",
        )),
    };
    match result {
        Ok(()) => {
            let n = s.issued.fetch_add(1, Ordering::SeqCst) + 1;
            (
                StatusCode::OK,
                Json(json!({
                    "access_token": format!("ya29.standin-token-{n}"),
                    "expires_in": s.expires_in.load(Ordering::SeqCst),
                    "token_type": "Bearer",
                })),
            )
        }
        Err(answer) => answer,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jwt_bearer(s: &Shared, form: &HashMap<String, String>) -> Result<(), Answer> {
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
    let signed = &jwt[..jwt.rfind('.').unwrap()];
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
    let config = s.config.lock().unwrap();
    let granted = config
        .delegation
        .get(CLIENT_ID)
        .cloned()
        .unwrap_or_default();
    let scopes: Vec<&str> = claims["scope"].as_str().unwrap_or("").split(' ').collect();
    if scopes.is_empty() || !scopes.iter().all(|sc| granted.iter().any(|g| g == sc)) {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
        ));
    }
    let sub = claims["sub"].as_str().unwrap_or("");
    if !config.users.contains(sub) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid email or User ID",
        ));
    }
    *s.last_claims.lock().unwrap() = Some(claims);
    Ok(())
}

fn refresh(s: &Shared, form: &HashMap<String, String>) -> Result<(), Answer> {
    let config = s.config.lock().unwrap();
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
    Ok(())
}
