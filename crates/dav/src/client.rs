//! `DavClient`: HTTP over reqwest and rustls, discovery, listing, sync and multiget.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{BoxError, Error, excerpt, status_hint};
use crate::href::{Href, display_url};
use crate::model::{Collection, Discovery, Fetched, Item, ItemRef, SyncChanges};
use crate::secret::Credentials;
use crate::xml;

/// Hrefs per multiget REPORT.
pub const MULTIGET_BATCH: usize = 100;

/// Redirects followed per request.
const MAX_REDIRECTS: usize = 10;

/// Settings of a [`DavClient`].
#[derive(Clone, Debug)]
pub struct DavClientOptions {
    /// Limit for a whole request, answer included. Default 120 s.
    pub timeout: Duration,
    /// Limit for the TCP connect and TLS handshake. Default 20 s.
    pub connect_timeout: Duration,
    /// Extra trust anchors (PEM, one or more CA certificates) added to the operating system's
    /// trust store, e.g. a private CA.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Accept any certificate (expired, self-signed, wrong host). Logs a warning. Only for
    /// servers you control.
    pub danger_accept_invalid_certs: bool,
    /// The `User-Agent`. Default `o365-migrate/<version>`.
    pub user_agent: String,
    /// Hrefs per multiget REPORT. Default [`MULTIGET_BATCH`].
    pub multiget_batch: usize,
}

impl Default for DavClientOptions {
    fn default() -> Self {
        DavClientOptions {
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(20),
            extra_ca_pem: None,
            danger_accept_invalid_certs: false,
            user_agent: concat!("o365-migrate/", env!("CARGO_PKG_VERSION")).to_owned(),
            multiget_batch: MULTIGET_BATCH,
        }
    }
}

/// A CardDAV / CalDAV client for one account.
///
/// Cheap to clone (the connection pool is shared). Certificates are verified unless
/// [`DavClientOptions::danger_accept_invalid_certs`] says otherwise.
#[derive(Clone)]
pub struct DavClient {
    http: reqwest::Client,
    credentials: Credentials,
    multiget_batch: usize,
}

impl std::fmt::Debug for DavClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DavClient")
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// An HTTP answer read in full.
struct Answer {
    status: u16,
    etag: Option<String>,
    body: Vec<u8>,
    /// The URL that answered (after redirects).
    url: Href,
}

impl DavClient {
    /// A client signing in with `credentials`.
    pub fn new(credentials: Credentials, options: DavClientOptions) -> Result<DavClient, Error> {
        let tls = rustls_config(&options)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            .user_agent(options.user_agent.clone())
            // Redirects are followed here, keeping the method (PROPFIND, REPORT) and body.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(DavClient {
            http,
            credentials,
            multiget_batch: options.multiget_batch.max(1),
        })
    }

    /// Sends one request, following redirects (same method and body). Credentials go along
    /// to the same origin, or to another `https` origin; never from `https` to `http`.
    async fn send(
        &self,
        method: &str,
        url: &Href,
        depth: Option<&str>,
        body: Option<String>,
    ) -> Result<Answer, Error> {
        let start = url.clone();
        let mut url = url.clone();
        let http_method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| Error::Config(format!("method {method}: {e}")))?;
        for _ in 0..=MAX_REDIRECTS {
            let mut req = self.http.request(http_method.clone(), url.url());
            if let Some(d) = depth {
                req = req.header("Depth", d);
            }
            if let Some(b) = &body {
                req = req
                    .header("Content-Type", "application/xml; charset=utf-8")
                    .body(b.clone());
            }
            let send_credentials =
                url.origin() == start.origin() || url.origin().starts_with("https://");
            if send_credentials {
                req = match &self.credentials {
                    Credentials::None => req,
                    Credentials::Basic { user, password } => {
                        req.basic_auth(user, Some(password.expose()))
                    }
                    Credentials::Bearer(token) => req.bearer_auth(token.expose()),
                };
            }
            let resp = req
                .send()
                .await
                .map_err(|e| transport_error(method, &url, e))?;
            let status = resp.status().as_u16();
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                let location = resp
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| Error::Http {
                        method: method.to_owned(),
                        url: url.url(),
                        status,
                        detail: "a redirect without Location".into(),
                        hint: status_hint(status),
                    })?;
                let next = Href::resolve(&url, location).ok_or_else(|| Error::Http {
                    method: method.to_owned(),
                    url: url.url(),
                    status,
                    detail: format!("a redirect to an unusable URL {}", display_url(location)),
                    hint: status_hint(status),
                })?;
                if url.origin().starts_with("https://") && next.origin().starts_with("http://") {
                    return Err(Error::Http {
                        method: method.to_owned(),
                        url: url.url(),
                        status,
                        detail: format!("a redirect from https to {}", next.url()),
                        hint: "refusing to leave TLS; use the https address the server should offer",
                    });
                }
                tracing::debug!(from = %url, to = %next, status, "following a redirect");
                url = next;
                continue;
            }
            let etag = resp
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = resp
                .bytes()
                .await
                .map_err(|e| transport_error(method, &url, e))?
                .to_vec();
            if status == 401 {
                return Err(Error::Unauthorized { url: url.url() });
            }
            return Ok(Answer {
                status,
                etag,
                body,
                url,
            });
        }
        Err(Error::Http {
            method: method.to_owned(),
            url: start.url(),
            status: 310,
            detail: format!("more than {MAX_REDIRECTS} redirects"),
            hint: "the server redirects in a loop; give the final URL",
        })
    }

    /// PROPFIND or REPORT answered with a multistatus (207), parsed.
    async fn multistatus(
        &self,
        method: &str,
        url: &Href,
        depth: &str,
        body: String,
    ) -> Result<xml::Multistatus, Error> {
        let answer = self.send(method, url, Some(depth), Some(body)).await?;
        if answer.status != 207 {
            return Err(http_error(method, &answer));
        }
        xml::parse_multistatus(&answer.body, &answer.url).map_err(|detail| Error::Xml {
            url: answer.url.url(),
            detail,
        })
    }

    /// Finds the account's principal, home sets and collections (RFC 6764 section 6).
    ///
    /// `start` is a URL (`https://dav.example.com/`, a principal or a home set) or a host
    /// name (`dav.example.com`, taken as `https://`). For each of CardDAV and CalDAV,
    /// `/.well-known/carddav` or `/.well-known/caldav` on that host is asked for
    /// `current-user-principal` (redirects followed); when that gives none, `start` itself is.
    pub async fn discover(&self, start: &str) -> Result<Discovery, Error> {
        let start_href = parse_start(start)?;
        let mut principals: Vec<Href> = Vec::new();
        for service in ["carddav", "caldav"] {
            let mut candidates = vec![
                Href::resolve(&start_href, &format!("/.well-known/{service}"))
                    .ok_or_else(|| Error::Config(format!("cannot build a URL from {start:?}")))?,
            ];
            candidates.push(start_href.clone());
            for candidate in candidates {
                match self
                    .multistatus("PROPFIND", &candidate, "0", xml::propfind_principal())
                    .await
                {
                    Ok(ms) => {
                        if let Some(p) = xml::principal(&ms) {
                            if !principals.contains(&p) {
                                principals.push(p);
                            }
                            break;
                        }
                    }
                    // Wrong credentials and TLS problems do not get better elsewhere.
                    Err(e @ (Error::Unauthorized { .. } | Error::Tls { .. })) => return Err(e),
                    Err(e) => {
                        tracing::debug!(url = %candidate, error = %e, "no principal here");
                    }
                }
            }
        }
        if principals.is_empty() {
            return Err(Error::Discovery {
                url: start_href.url(),
                detail: "no current-user-principal at /.well-known/carddav, /.well-known/caldav or the URL given".into(),
            });
        }
        let mut discovery = Discovery {
            principals: principals.clone(),
            ..Discovery::default()
        };
        for principal in &principals {
            let ms = self
                .multistatus("PROPFIND", principal, "0", xml::propfind_home_sets())
                .await?;
            let (books, cals) = xml::home_sets(&ms);
            for h in books {
                if !discovery.addressbook_homes.contains(&h) {
                    discovery.addressbook_homes.push(h);
                }
            }
            for h in cals {
                if !discovery.calendar_homes.contains(&h) {
                    discovery.calendar_homes.push(h);
                }
            }
        }
        if discovery.addressbook_homes.is_empty() && discovery.calendar_homes.is_empty() {
            return Err(Error::Discovery {
                url: start_href.url(),
                detail: format!(
                    "the principal {} has neither addressbook-home-set nor calendar-home-set",
                    principals[0]
                ),
            });
        }
        let mut homes: Vec<Href> = Vec::new();
        for h in discovery
            .addressbook_homes
            .iter()
            .chain(&discovery.calendar_homes)
        {
            if !homes.contains(h) {
                homes.push(h.clone());
            }
        }
        for home in &homes {
            for c in self.list_collections(home).await? {
                if !discovery.collections.iter().any(|x| x.href == c.href) {
                    discovery.collections.push(c);
                }
            }
        }
        discovery.collections.sort_by(|a, b| a.href.cmp(&b.href));
        Ok(discovery)
    }

    /// The address books and calendars in a home set (PROPFIND Depth 1).
    pub async fn list_collections(&self, home: &Href) -> Result<Vec<Collection>, Error> {
        let ms = self
            .multistatus("PROPFIND", home, "1", xml::propfind_collections())
            .await?;
        Ok(xml::collections(&ms))
    }

    /// Every item of a collection with its etag (PROPFIND Depth 1 `getetag`), sorted by href.
    pub async fn list_items(&self, collection: &Href) -> Result<Vec<ItemRef>, Error> {
        let ms = self
            .multistatus("PROPFIND", collection, "1", xml::propfind_etags())
            .await?;
        Ok(xml::item_refs(&ms, collection))
    }

    /// What changed since `token` (RFC 6578 `sync-collection`); `None` asks for everything
    /// and a first token.
    ///
    /// A token the server no longer accepts gives [`Error::InvalidSyncToken`]: list the
    /// collection with [`DavClient::list_items`] and start again from the token this method
    /// returns for `None`.
    pub async fn sync_changes(
        &self,
        collection: &Href,
        token: Option<&str>,
    ) -> Result<SyncChanges, Error> {
        let body = xml::sync_collection(token.unwrap_or(""));
        let answer = self
            .send("REPORT", collection, Some("0"), Some(body))
            .await?;
        if matches!(answer.status, 400 | 403 | 409)
            && token.is_some()
            && xml::is_valid_sync_token_error(&answer.body)
        {
            return Err(Error::InvalidSyncToken {
                url: answer.url.url(),
            });
        }
        if answer.status != 207 {
            return Err(http_error("REPORT", &answer));
        }
        let ms =
            xml::parse_multistatus(&answer.body, &answer.url).map_err(|detail| Error::Xml {
                url: answer.url.url(),
                detail,
            })?;
        xml::sync_changes(&ms, collection).ok_or_else(|| Error::Xml {
            url: answer.url.url(),
            detail: "the sync-collection answer has no sync-token".into(),
        })
    }

    /// Fetches items by href: `addressbook-multiget` / `calendar-multiget` in batches, and
    /// GET for any the REPORT did not return (or for all, when the server refuses the
    /// REPORT). Items come back in the order of `hrefs`; those the server says are gone are
    /// in [`Fetched::missing`].
    pub async fn fetch(&self, collection: &Collection, hrefs: &[Href]) -> Result<Fetched, Error> {
        let mut found: Vec<Item> = Vec::new();
        let mut missing: Vec<Href> = Vec::new();
        for batch in hrefs.chunks(self.multiget_batch) {
            let body = xml::multiget(collection.kind, batch);
            let answer = self
                .send("REPORT", &collection.href, Some("1"), Some(body))
                .await?;
            let mut pending: Vec<&Href> = batch.iter().collect();
            if answer.status == 207 {
                let ms = xml::parse_multistatus(&answer.body, &answer.url).map_err(|detail| {
                    Error::Xml {
                        url: answer.url.url(),
                        detail,
                    }
                })?;
                let (items, gone) = xml::multiget_items(&ms, collection.kind);
                for item in items {
                    if let Some(i) = pending.iter().position(|h| **h == item.href) {
                        pending.swap_remove(i);
                        found.push(item);
                    }
                }
                for g in gone {
                    if let Some(i) = pending.iter().position(|h| **h == g) {
                        pending.swap_remove(i);
                        missing.push(g);
                    }
                }
            } else if !matches!(answer.status, 400 | 403 | 405 | 415 | 501) {
                return Err(http_error("REPORT", &answer));
            } else {
                tracing::debug!(url = %collection.href, status = answer.status, "multiget refused; GET per item");
            }
            for href in pending {
                let got = self.send("GET", href, None, None).await?;
                match got.status {
                    200 => found.push(Item {
                        href: href.clone(),
                        etag: got.etag,
                        data: got.body,
                    }),
                    404 | 410 => missing.push(href.clone()),
                    _ => return Err(http_error("GET", &got)),
                }
            }
        }
        let order = |h: &Href| hrefs.iter().position(|x| x == h).unwrap_or(usize::MAX);
        found.sort_by_key(|i| order(&i.href));
        missing.sort_by_key(order);
        Ok(Fetched {
            items: found,
            missing,
        })
    }
}

/// `start` as an href: a URL, or a host name taken as `https://<host>/`.
fn parse_start(start: &str) -> Result<Href, Error> {
    let trimmed = start.trim();
    let url = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("https://{trimmed}/")
    };
    Href::parse(&url).ok_or_else(|| {
        Error::Config(format!(
            "{:?} is neither an http(s) URL nor a host name",
            display_url(trimmed)
        ))
    })
}

fn http_error(method: &str, answer: &Answer) -> Error {
    Error::Http {
        method: method.to_owned(),
        url: answer.url.url(),
        status: answer.status,
        detail: excerpt(&answer.body),
        hint: status_hint(answer.status),
    }
}

/// A reqwest error as [`Error::Tls`] (certificate problems) or [`Error::Transport`].
fn transport_error(method: &str, url: &Href, e: reqwest::Error) -> Error {
    let mut chain = Vec::new();
    let mut tls = false;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if s.downcast_ref::<rustls::Error>().is_some() {
            tls = true;
        }
        chain.push(s.to_string());
        source = s.source();
    }
    // reqwest's own text names the URL (which may hold a query); the innermost cause does not.
    let detail = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        chain.last().cloned().unwrap_or_default()
    };
    let text = chain.join(" ").to_ascii_lowercase();
    tls = tls || text.contains("certificate") || text.contains("tls handshake");
    let source: BoxError = Box::new(e.without_url());
    if tls {
        Error::Tls {
            url: url.url(),
            detail,
            source,
        }
    } else {
        Error::Transport {
            method: method.to_owned(),
            url: url.url(),
            detail,
            source,
        }
    }
}

fn rustls_config(options: &DavClientOptions) -> Result<rustls::ClientConfig, Error> {
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?;
    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = if options
        .danger_accept_invalid_certs
    {
        tracing::warn!(
            "certificate verification is OFF (danger_accept_invalid_certs): the connection can be intercepted"
        );
        Arc::new(AcceptAnything(provider))
    } else {
        let mut extra = Vec::new();
        if let Some(pem) = &options.extra_ca_pem {
            for c in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
                extra.push(
                    c.map_err(|e| Error::Config(format!("the extra CA PEM is not valid: {e}")))?,
                );
            }
            if extra.is_empty() {
                return Err(Error::Config(
                    "the extra CA PEM contains no certificate".into(),
                ));
            }
        }
        Arc::new(
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider)
                .map_err(|e| Error::Config(format!("cannot load the system trust store: {e}")))?,
        )
    };
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[derive(Debug)]
struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
