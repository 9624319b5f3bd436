//! Who may do what.
//!
//! - A request is *from this machine* when the dashboard listens on a loopback address and the
//!   request's source address is the very address it arrived at (a browser on the host opening
//!   `http://127.0.0.1:8465`), and its `Host` header names that address (`127.0.0.1`,
//!   `localhost`, `[::1]`): a page from elsewhere that rebinds a DNS name to 127.0.0.1 is
//!   refused. Such requests need no token.
//! - Every other request needs the dashboard token: `Authorization: Bearer <token>` (scripts)
//!   or the cookie the login page sets (browsers). Without it: 403.
//! - The token is generated on first start (or with `--new-token`), shown once, and only its
//!   SHA-256 is kept, in the state store (record `dashboard_token`).
//! - A state-changing request (POST) also needs, unless it carries the bearer token, the page's
//!   CSRF token in `X-CSRF-Token` and, when the browser sends one, an `Origin` naming this
//!   server. In read-only mode every POST is refused.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use o365_migrate_engine::state::StateStore;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::listener::Peer;

/// The state-store record with the dashboard token's SHA-256.
pub const TOKEN_RECORD: &str = "dashboard_token";

/// The cookie the login page sets.
pub(crate) const COOKIE: &str = "o365m_token";

#[derive(Serialize, Deserialize)]
struct KeptToken {
    sha256: String,
    created_at: String,
}

/// Random bytes, base64url without padding.
pub(crate) fn random_token(bytes: usize) -> String {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; bytes];
    // SystemRandom only fails when the OS has no randomness at all.
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        panic!("the operating system gave no random bytes for the dashboard token");
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// Loads the token's hash, or makes a token (also when `renew`): returns the hash and, when
/// a new token was made, the token itself (to show once).
pub(crate) async fn load_or_make_token(
    store: &dyn StateStore,
    renew: bool,
) -> o365_migrate_engine::Result<(String, Option<String>)> {
    if !renew
        && let Some(r) = store.record(TOKEN_RECORD).await?
        && let Ok(k) = serde_json::from_str::<KeptToken>(&r.value)
        && k.sha256.len() == 64
    {
        return Ok((k.sha256, None));
    }
    let token = random_token(32);
    let kept = KeptToken {
        sha256: sha256_hex(&token),
        created_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    };
    let doc = serde_json::to_string(&kept).unwrap_or_default();
    store.put_record(TOKEN_RECORD, Some(&doc)).await?;
    Ok((kept.sha256, Some(token)))
}

/// The access rules of one server.
pub(crate) struct Access {
    /// SHA-256 (hex) of the token.
    pub(crate) token_sha256: String,
    /// The CSRF token pages carry (new at each start).
    pub(crate) csrf: String,
    /// Whether the server listens on a loopback address.
    pub(crate) loopback: bool,
    /// Read-only mode.
    pub(crate) read_only: bool,
    /// Whether connections are TLS (cookies get `Secure`).
    pub(crate) tls: bool,
}

/// How a request was let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// From this machine, no token.
    Local,
    /// The login cookie.
    Cookie,
    /// `Authorization: Bearer`.
    Bearer,
}

impl Access {
    /// Whether `token` is the dashboard token (constant time).
    pub(crate) fn token_ok(&self, token: &str) -> bool {
        let a = sha256_hex(token);
        let b = self.token_sha256.as_bytes();
        a.len() == b.len() && a.bytes().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    fn via(&self, peer: &Peer, headers: &HeaderMap) -> Option<Via> {
        if let Some(t) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            && self.token_ok(t.trim())
        {
            return Some(Via::Bearer);
        }
        if let Some(t) = cookie(headers, COOKIE)
            && self.token_ok(&t)
        {
            return Some(Via::Cookie);
        }
        if self.loopback && peer.remote.ip() == peer.local.ip() && host_is_local(headers, peer) {
            return Some(Via::Local);
        }
        None
    }
}

/// The value of cookie `name`.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Whether `Host` names the loopback address the request arrived at.
fn host_is_local(headers: &HeaderMap, peer: &Peer) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let port = peer.local.port();
    let ip = peer.local.ip();
    let ip_text = match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
    };
    [ip_text.as_str(), "localhost"]
        .iter()
        .any(|h| host == format!("{h}:{port}") || (port == 80 && host == *h))
}

/// Whether `Origin`, when present, names this server as the `Host` header does.
fn origin_ok(headers: &HeaderMap, tls: bool) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let scheme = if tls { "https" } else { "http" };
    origin == format!("{scheme}://{host}")
}

/// A 403: JSON for `/api/`, the login page otherwise.
pub(crate) fn forbidden(api: bool, why: &str, hint: &str) -> Response {
    if api {
        (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({"error": why, "hint": hint})),
        )
            .into_response()
    } else {
        (
            StatusCode::FORBIDDEN,
            Html(crate::assets::login_page(&format!("{why}. {hint}"))),
        )
            .into_response()
    }
}

/// The middleware that applies the rules above to every request.
pub(crate) async fn guard(
    State(access): State<Arc<Access>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_owned();
    let api = path.starts_with("/api/");
    if path == "/login" || path.starts_with("/assets/") {
        return next.run(req).await;
    }
    let Some(via) = access.via(&peer, req.headers()) else {
        tracing::info!(remote = %peer.remote, %path, "dashboard: refused a request without the token");
        return forbidden(
            api,
            "this dashboard needs its token for requests from other addresses",
            "sign in at /login with the token `o365-migrate serve` printed, or send `Authorization: Bearer <token>`; `o365-migrate serve --new-token` makes a new one",
        );
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        if access.read_only {
            return forbidden(
                api,
                "the dashboard runs read-only",
                "start `o365-migrate serve` without --read-only to allow actions",
            );
        }
        if via != Via::Bearer {
            let csrf_ok = req
                .headers()
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v == access.csrf);
            if !csrf_ok || !origin_ok(req.headers(), access.tls) {
                return forbidden(
                    api,
                    "a state-changing request without this page's CSRF token",
                    "use the dashboard's buttons, or send `Authorization: Bearer <token>` from scripts",
                );
            }
        }
    }
    next.run(req).await
}

/// The login form's fields.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    token: String,
}

/// `GET /login`.
pub(crate) async fn login_page() -> Html<String> {
    Html(crate::assets::login_page(""))
}

/// `POST /login`: sets the cookie when the token is right.
pub(crate) async fn login(
    State(access): State<Arc<Access>>,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    if !access.token_ok(form.token.trim()) {
        return (
            StatusCode::FORBIDDEN,
            Html(crate::assets::login_page(
                "That is not the dashboard token. Use the one `o365-migrate serve` printed, or make a new one with --new-token.",
            )),
        )
            .into_response();
    }
    let secure = if access.tls { "; Secure" } else { "" };
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                format!(
                    "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
                    form.token.trim()
                ),
            ),
            (header::LOCATION, "/".to_owned()),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn peer(remote: &str, local: &str) -> Peer {
        Peer {
            remote: remote.parse().unwrap(),
            local: local.parse().unwrap(),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn access(loopback: bool) -> Access {
        Access {
            token_sha256: sha256_hex("s3cret-token"),
            csrf: "c".into(),
            loopback,
            read_only: false,
            tls: false,
        }
    }

    #[test]
    fn this_machine_needs_its_own_address_and_host() {
        let a = access(true);
        let local = headers(&[("host", "127.0.0.1:8465")]);
        assert_eq!(
            a.via(&peer("127.0.0.1:5000", "127.0.0.1:8465"), &local),
            Some(Via::Local)
        );
        let named = headers(&[("host", "localhost:8465")]);
        assert_eq!(
            a.via(&peer("127.0.0.1:5000", "127.0.0.1:8465"), &named),
            Some(Via::Local)
        );
        // Another source address, another Host (DNS rebinding), another port in Host.
        assert_eq!(
            a.via(&peer("127.0.0.2:5000", "127.0.0.1:8465"), &local),
            None
        );
        let rebound = headers(&[("host", "evil.example:8465")]);
        assert_eq!(
            a.via(&peer("127.0.0.1:5000", "127.0.0.1:8465"), &rebound),
            None
        );
        let port = headers(&[("host", "127.0.0.1:9999")]);
        assert_eq!(
            a.via(&peer("127.0.0.1:5000", "127.0.0.1:8465"), &port),
            None
        );
        // Listening on another address: nobody is trusted by address.
        let b = access(false);
        let h = headers(&[("host", "10.0.0.5:8465")]);
        assert_eq!(b.via(&peer("10.0.0.5:5000", "10.0.0.5:8465"), &h), None);
    }

    #[test]
    fn the_token_lets_in_by_header_or_cookie_and_nothing_else_does() {
        let a = access(false);
        let p = peer("192.0.2.7:5000", "10.0.0.5:8465");
        let ok = headers(&[("authorization", "Bearer s3cret-token")]);
        assert_eq!(a.via(&p, &ok), Some(Via::Bearer));
        let cookie = headers(&[("cookie", "a=b; o365m_token=s3cret-token; c=d")]);
        assert_eq!(a.via(&p, &cookie), Some(Via::Cookie));
        for bad in [
            headers(&[("authorization", "Bearer s3cret-tokenX")]),
            headers(&[("authorization", "Basic s3cret-token")]),
            headers(&[("cookie", "o365m_token=")]),
            headers(&[("cookie", "other=s3cret-token")]),
            HeaderMap::new(),
        ] {
            assert_eq!(a.via(&p, &bad), None, "{bad:?}");
        }
    }

    #[test]
    fn origin_must_name_this_server_when_sent() {
        let h = headers(&[("host", "127.0.0.1:8465")]);
        assert!(
            origin_ok(&h, false),
            "no Origin: a script, or a same-origin GET"
        );
        let same = headers(&[
            ("host", "127.0.0.1:8465"),
            ("origin", "http://127.0.0.1:8465"),
        ]);
        assert!(origin_ok(&same, false));
        assert!(!origin_ok(&same, true), "https page, http origin");
        let cross = headers(&[
            ("host", "127.0.0.1:8465"),
            ("origin", "http://evil.example"),
        ]);
        assert!(!origin_ok(&cross, false));
    }

    #[test]
    fn tokens_are_random_and_long() {
        let a = random_token(32);
        let b = random_token(32);
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "32 bytes, base64url without padding");
    }
}
