//! The installed-app flow that gives a refresh token for a personal Gmail account: the user
//! signs in at Google in a browser, Google redirects to a listener of ours on 127.0.0.1 with a
//! one-time code, and the code (with the PKCE verifier) is exchanged for tokens.
//!
//! <https://developers.google.com/identity/protocols/oauth2/native-app>: a Desktop-app client,
//! the loopback IP redirect `http://127.0.0.1:PORT/` (any port), PKCE with S256, `state`
//! against forgery, `login_hint` for the account. Google's device flow would not do: it offers
//! a limited set of scopes, without `https://mail.google.com/`
//! (<https://developers.google.com/identity/protocols/oauth2/limited-input-device>).

use std::time::Duration;

use base64::Engine as _;
use ring::rand::SecureRandom as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::tokens::{GOOGLE_TOKEN_URI, TokenOptions};
use crate::{Error, Secret};

/// Google's authorization endpoint for installed apps.
pub const GOOGLE_AUTH_URI: &str = "https://accounts.google.com/o/oauth2/v2/auth";

/// The largest request head read from the browser.
const MAX_REQUEST: usize = 16 * 1024;

/// An installed app's OAuth client (type "Desktop app") and the endpoints it talks to.
#[derive(Debug, Clone)]
pub struct InstalledAppFlow {
    client_id: String,
    client_secret: Secret,
    scope: String,
    auth_endpoint: String,
    token_endpoint: String,
}

/// A started authorization: the address to open in a browser, and the listener that waits for
/// Google's redirect. `Debug` shows the address only.
pub struct PendingAuthorization {
    listener: TcpListener,
    url: String,
    redirect_uri: String,
    state: String,
    verifier: Secret,
}

impl std::fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

fn random_b64(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| Error::Signing)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

/// `application/x-www-form-urlencoded` value encoding.
fn encode(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// Decoding of one query name or value (`+` is a space; a malformed `%` escape stays as it is).
fn decode(v: &str) -> String {
    form_urlencoded::parse(format!("v={v}").as_bytes())
        .next()
        .map(|(_, d)| d.into_owned())
        .unwrap_or_default()
}

impl InstalledAppFlow {
    /// The flow for a Desktop-app client; `options` gives the scope and the token endpoint.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: Secret,
        options: &TokenOptions,
    ) -> InstalledAppFlow {
        InstalledAppFlow {
            client_id: client_id.into(),
            client_secret,
            scope: options.scope_str().to_owned(),
            auth_endpoint: GOOGLE_AUTH_URI.to_owned(),
            token_endpoint: options.endpoint().unwrap_or(GOOGLE_TOKEN_URI).to_owned(),
        }
    }

    /// Another authorization endpoint (a test stand-in).
    pub fn auth_endpoint(mut self, url: impl Into<String>) -> Self {
        self.auth_endpoint = url.into();
        self
    }

    /// Listens on 127.0.0.1 (a free port) and builds the address the user opens, signed in
    /// as `login` (Google's `login_hint`).
    pub async fn start(&self, login: &str) -> Result<PendingAuthorization, Error> {
        let listener =
            TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| Error::Authorization {
                    problem: format!("cannot listen on 127.0.0.1 for Google's redirect: {e}"),
                })?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::Authorization {
                problem: format!("no local address: {e}"),
            })?
            .port();
        let redirect_uri = format!("http://127.0.0.1:{port}/");
        let state = random_b64(16)?;
        let verifier = random_b64(48)?;
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()),
        );
        let url = format!(
            "{}?client_id={}&redirect_uri={}&response_type=code&scope={}&code_challenge={}&code_challenge_method=S256&state={}&login_hint={}&access_type=offline&prompt=consent",
            self.auth_endpoint,
            encode(&self.client_id),
            encode(&redirect_uri),
            encode(&self.scope),
            challenge,
            state,
            encode(login),
        );
        Ok(PendingAuthorization {
            listener,
            url,
            redirect_uri,
            state,
            verifier: Secret::new(verifier),
        })
    }

    /// Waits (at most `timeout`) for Google's redirect, checks its `state`, and exchanges the
    /// code for the user's refresh token.
    pub async fn finish(
        &self,
        pending: PendingAuthorization,
        timeout: Duration,
    ) -> Result<Secret, Error> {
        let code = tokio::time::timeout(timeout, pending.wait_for_code())
            .await
            .map_err(|_| Error::Authorization {
                problem: format!(
                    "no answer from the browser within {} s; open the address again and sign in",
                    timeout.as_secs()
                ),
            })??;
        self.exchange(&code, &pending).await
    }

    async fn exchange(&self, code: &Secret, p: &PendingAuthorization) -> Result<Secret, Error> {
        crate::tokens::check_endpoint(&self.token_endpoint)?;
        let http = crate::tokens::http_client()?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.expose()),
            ("code_verifier", p.verifier.expose()),
            ("client_id", &self.client_id),
            ("client_secret", self.client_secret.expose()),
            ("redirect_uri", &p.redirect_uri),
        ];
        let (status, json) = crate::tokens::post_form(&http, &self.token_endpoint, &form).await?;
        if !(200..300).contains(&status) {
            return Err(Error::Rejected {
                user: "(sign-in)".into(),
                status,
                code: json["error"].as_str().unwrap_or("").to_owned(),
                description: json["error_description"].as_str().unwrap_or("").to_owned(),
            });
        }
        json["refresh_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(Secret::new)
            .ok_or_else(|| Error::Authorization {
                problem: "Google gave no refresh token; remove the app's access at \
                          https://myaccount.google.com/permissions and sign in again"
                    .into(),
            })
    }
}

impl PendingAuthorization {
    /// The address the user opens in a browser.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Answers browser requests until one carries Google's redirect: the code, or the refusal.
    async fn wait_for_code(&self) -> Result<Secret, Error> {
        loop {
            let (mut conn, _) = self
                .listener
                .accept()
                .await
                .map_err(|e| Error::Authorization {
                    problem: format!("the redirect listener failed: {e}"),
                })?;
            let mut head = Vec::new();
            let mut buf = [0u8; 2048];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&head);
            let target = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("GET "))
                .and_then(|l| l.split(' ').next())
                .unwrap_or("");
            let query = target.split_once('?').map_or("", |(_, q)| q);
            let mut params = std::collections::HashMap::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                params.insert(decode(k), decode(v));
            }
            let reply = |body: &str, status: &str| {
                format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            };
            let outcome = if params.get("state").map(String::as_str) != Some(self.state.as_str()) {
                // A favicon request, or a forged redirect: not ours, keep waiting.
                let _ = conn
                    .write_all(reply("Not found", "404 Not Found").as_bytes())
                    .await;
                continue;
            } else if let Some(e) = params.get("error") {
                Err(Error::Authorization {
                    problem: format!(
                        "Google answered {e}: the user did not allow access, or signed in as \
                         another account; run the command again and allow access"
                    ),
                })
            } else if let Some(code) = params.get("code").filter(|c| !c.is_empty()) {
                Ok(Secret::new(code.as_str()))
            } else {
                Err(Error::Authorization {
                    problem: "Google's redirect carried no code".into(),
                })
            };
            let page = match &outcome {
                Ok(_) => {
                    "<!doctype html><title>o365-migrate</title><p>Signed in. You can close this window.</p>"
                }
                Err(_) => {
                    "<!doctype html><title>o365-migrate</title><p>Sign-in failed; see the terminal.</p>"
                }
            };
            let _ = conn.write_all(reply(page, "200 OK").as_bytes()).await;
            let _ = conn.shutdown().await;
            return outcome;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_round_trip() {
        let v = "https://mail.google.com/ a+b&c=d/é";
        assert_eq!(decode(&encode(v)), v);
        assert_eq!(decode("a+b%2Fc%zz"), "a b/c%zz");
        assert_eq!(decode("%4"), "%4");
    }
}
