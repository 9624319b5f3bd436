//! The crate's single error type. Every message says what to do next; none holds a password,
//! a token, or a URL's user information or query.

/// A boxed underlying error (kept as the `source`, never a type of another crate in the API).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong talking CardDAV or CalDAV.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting given to the client is not usable (a URL that is not `http(s)`, a CA file
    /// without certificates).
    #[error("invalid setting: {0}")]
    Config(String),

    /// The server was not reached, or the connection broke.
    #[error("{method} {url}: {detail}; check the URL, the network and that the server runs")]
    Transport {
        /// The request method.
        method: String,
        /// The URL (without user information or query).
        url: String,
        /// What failed.
        detail: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },

    /// TLS failed, typically the server's certificate is not trusted.
    #[error(
        "TLS with {url} failed: {detail}; if the server uses a private CA, give its certificate (extra CA PEM); only for a server you control, turn certificate checks off by name (danger_accept_invalid_certs)"
    )]
    Tls {
        /// The URL (without user information or query).
        url: String,
        /// What failed.
        detail: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },

    /// The server refused the credentials (HTTP 401).
    #[error(
        "{url} refused the credentials (HTTP 401); check the user name and password (or app password / token) for this account"
    )]
    Unauthorized {
        /// The URL (without user information or query).
        url: String,
    },

    /// The server refused a sync token (RFC 6578 `DAV:valid-sync-token`): list the
    /// collection in full instead and keep the new token.
    #[error(
        "{url} no longer accepts the sync token (valid-sync-token); list the collection in full and use the token that comes with it"
    )]
    InvalidSyncToken {
        /// The collection's URL.
        url: String,
    },

    /// The server answered with an unexpected HTTP status.
    #[error("{method} {url} answered HTTP {status}{}; {hint}", detail_suffix(.detail))]
    Http {
        /// The request method.
        method: String,
        /// The URL (without user information or query).
        url: String,
        /// The status code.
        status: u16,
        /// A short excerpt of the body, if any.
        detail: String,
        /// What to do.
        hint: &'static str,
    },

    /// The answer was not the WebDAV XML expected.
    #[error(
        "{url} sent an answer that is not valid WebDAV XML: {detail}; check that the URL points at a CardDAV/CalDAV server (not a login page or proxy)"
    )]
    Xml {
        /// The URL (without user information or query).
        url: String,
        /// What was wrong.
        detail: String,
    },

    /// Discovery found no principal or no home set.
    #[error("discovery at {url} failed: {detail}; give the principal or the home set URL directly")]
    Discovery {
        /// Where discovery started.
        url: String,
        /// What was missing.
        detail: String,
    },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

/// Hint for an unexpected HTTP status.
pub(crate) fn status_hint(status: u16) -> &'static str {
    match status {
        403 => "the account may not read this resource; check its rights on the server",
        404 => "the resource does not exist; run discovery again",
        405 | 501 => {
            "the server does not support this method here; check the URL points at a DAV collection"
        }
        429 | 503 => "the server is busy or throttling; try again later",
        500..=599 => "the server failed; try again later and check its logs",
        _ => "check the URL and the server's logs",
    }
}

/// A short, single-line excerpt of a body for an error message.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = flat.chars().take(200).collect();
    if flat.chars().count() > 200 {
        out.push('…');
    }
    out
}
