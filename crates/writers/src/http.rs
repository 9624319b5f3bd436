//! The HTTP client the Graph, identity and EWS code share: rustls on ring, certificates
//! verified by the platform verifier, and reqwest errors described without their URLs.

use std::time::Duration;

/// Installs `ring` as the process's rustls provider if none is installed yet.
fn ensure_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider is already installed: that one is used, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The shared reqwest client: rustls on ring, certificates verified by the platform verifier.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, crate::Error> {
    ensure_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(64)
        .user_agent(concat!("o365-migrate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| crate::Error::Config(format!("HTTP client: {e}")))
}

/// A reqwest error described without its URL (URLs may carry upload tokens).
pub(crate) fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "connection broke while reading the answer"
    } else if e.is_request() {
        "request failed"
    } else {
        "HTTP error"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}
