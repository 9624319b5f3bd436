//! The page, its script and styles, compiled in (no CDN: the dashboard works offline), and the
//! headers every answer carries.

use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

/// `GET /`.
pub(crate) async fn index() -> Html<&'static str> {
    Html(INDEX)
}

/// `GET /assets/{name}`.
pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "app.js" => (
            [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
            APP_JS,
        )
            .into_response(),
        "app.css" => ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS).into_response(),
        _ => not_found().await,
    }
}

/// Anything else.
pub(crate) async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(
            serde_json::json!({"error": "no such page", "hint": "start at / or see docs/api.md"}),
        ),
    )
        .into_response()
}

/// The login page, with `message` above the form.
pub(crate) fn login_page(message: &str) -> String {
    let message = o365_migrate_engine::report::esc(message);
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>o365-migrate — sign in</title>
<link rel="stylesheet" href="/assets/app.css"></head><body><main class="login">
<h1>o365-migrate dashboard</h1><p class="message">{message}</p>
<form method="post" action="/login"><label>Dashboard token <input name="token" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form>
<p class="hint">The token was printed once by <code>o365-migrate serve</code>; <code>o365-migrate serve --new-token</code> makes a new one.</p>
</main></body></html>"#
    )
}

/// Security headers on every answer: a strict content security policy (only this server's own
/// script and styles), no framing, no sniffing, no referrer, and no caching of API answers.
pub(crate) async fn security_headers(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if api {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}
