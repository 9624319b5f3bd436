//! A private Radicale CardDAV/CalDAV server per test, on a free 127.0.0.1 port, stopped on
//! drop.
//!
//! Each [`Radicale`] owns a temporary directory with its configuration (no
//! `/etc/radicale/config` is read), an htpasswd file of its users (`plain`: Debian's Radicale
//! needs `passlib[bcrypt]` for bcrypt, which is not a dependency of the package), its storage
//! folder, its log and (with [`RadicaleOptions::tls`]) a fresh CA and server certificate.
//!
//! - **Binary**: `/usr/bin/radicale` (Debian package `radicale`), or the path in
//!   `O365_MIGRATE_RADICALE`.
//! - **User**: when the tests run as root, Radicale runs as `nobody` through `setpriv`, like
//!   [`Postgres`](crate::Postgres); its storage folder belongs to that user.
//! - **Rights**: `owner_only`: a user sees only the collections under `/<user>/`.
//! - **Speed**: failed logins are not delayed (`[auth] delay = 0`). (Radicale's
//!   `_filesystem_fsync` cannot be set from a config file.)
//! - **Ready**: [`Radicale::start`] returns once the log says `Radicale server ready` and the
//!   port accepts connections (bounded by 20 s; polled, no fixed sleep).
//! - **Stopping**: a small `sh` supervisor SIGTERMs Radicale when the [`Radicale`] drops *or
//!   when the test process dies*; drop waits for it (SIGKILL after 10 s).
//!
//! The helpers ([`Radicale::create_address_book`], [`Radicale::create_calendar`],
//! [`Radicale::put`], [`Radicale::delete`], [`Radicale::request`]) speak HTTP/1.1 themselves
//! (one connection per request), so loading data needs no DAV client.
//!
//! ```
//! # fn main() -> o365_migrate_testkit::Result<()> {
//! use o365_migrate_testkit::{Radicale, RadicaleOptions};
//!
//! let dav = Radicale::start(RadicaleOptions {
//!     users: vec![("alice".into(), "secret".into())],
//!     tls: false,
//! })?;
//! dav.create_address_book("alice", "contacts", "Contacts")?;
//! let card = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:1\r\nFN:Ann\r\nN:;Ann;;;\r\nEND:VCARD\r\n";
//! let etag = dav.put("alice", "contacts/1.vcf", card)?;
//! assert!(etag.starts_with('"'));
//! # Ok(()) }
//! ```

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::certs;
use crate::error::{Error, Result};
use crate::postgres::{Runner, free_port, make_dir, tail, write_file};

/// Default path of the Radicale launcher (Debian package `radicale`).
pub const DEFAULT_RADICALE_BINARY: &str = "/usr/bin/radicale";

/// Environment variable that overrides [`DEFAULT_RADICALE_BINARY`].
pub const RADICALE_BINARY_ENV: &str = "O365_MIGRATE_RADICALE";

/// The loopback address the server listens on.
const HOST: &str = "127.0.0.1";

/// Attempts with fresh ports when the chosen port was taken in between.
const START_ATTEMPTS: u32 = 5;

/// How long to wait for the server to be ready.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Lines of the log shown in start errors.
const TAIL_LINES: usize = 30;

/// How to start a [`Radicale`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RadicaleOptions {
    /// Users as (name, password). Names: letters, digits, `.`, `_`, `-`; passwords without
    /// `:` or line breaks.
    pub users: Vec<(String, String)>,
    /// Serve HTTPS only, with a certificate for `127.0.0.1` and `localhost` signed by a fresh
    /// CA ([`Radicale::ca_path`]). Default: plain HTTP.
    pub tls: bool,
}

impl fmt::Debug for RadicaleOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let users: Vec<&str> = self.users.iter().map(|(u, _)| u.as_str()).collect();
        f.debug_struct("RadicaleOptions")
            .field("users", &users)
            .field("tls", &self.tls)
            .finish()
    }
}

/// An HTTP answer from [`Radicale::request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// Headers, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpAnswer {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A running private Radicale. Stopped on drop; see the [module docs](self).
pub struct Radicale {
    child: Option<Child>,
    watchdog: Option<ChildStdin>,
    port: u16,
    users: Vec<(String, String)>,
    ca_path: Option<PathBuf>,
    tls: Option<Arc<rustls::ClientConfig>>,
    log: PathBuf,
    config: PathBuf,
    dir: tempfile::TempDir,
}

impl fmt::Debug for Radicale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let users: Vec<&str> = self.users.iter().map(|(u, _)| u.as_str()).collect();
        f.debug_struct("Radicale")
            .field("port", &self.port)
            .field("users", &users)
            .field("dir", &self.dir.path())
            .field("tls", &self.ca_path.is_some())
            .finish_non_exhaustive()
    }
}

fn binary() -> PathBuf {
    std::env::var_os(RADICALE_BINARY_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_RADICALE_BINARY))
}

/// The message shown when Radicale is not installed.
pub fn missing_radicale_message(binary: &Path) -> String {
    format!(
        "Radicale is not installed: {} does not exist.\nhint: install it with `sudo apt-get install radicale` (Debian/Ubuntu), or set {RADICALE_BINARY_ENV} to the path of the `radicale` launcher",
        binary.display()
    )
}

impl Radicale {
    /// Starts a private Radicale with `options` and waits (up to 20 s) until it is ready.
    ///
    /// Blocking; fine to call from an async test. Retries with a fresh port when another
    /// process took the port in between. On failure the error holds the tail of the log.
    pub fn start(options: RadicaleOptions) -> Result<Radicale> {
        let binary = binary();
        if !binary.exists() {
            return Err(Error::io(
                "Radicale is not installed",
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    missing_radicale_message(&binary),
                ),
            ));
        }
        for (user, password) in &options.users {
            let name_ok = !user.is_empty()
                && user
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !name_ok || password.contains([':', '\n', '\r']) {
                return Err(Error::InvalidOption(format!(
                    "Radicale user {user:?}: use letters, digits, '.', '_' or '-', and a password without ':' or line breaks"
                )));
            }
        }
        let runner = Runner::current()?;
        let pki = if options.tls {
            Some(certs::generate(false)?)
        } else {
            None
        };
        let mut last_err = None;
        for _ in 0..START_ATTEMPTS {
            match Self::try_start(&options, &binary, &runner, pki.as_ref()) {
                Ok(r) => return Ok(r),
                Err((true, e)) => last_err = Some(e),
                Err((false, e)) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| Error::InvalidOption("no start attempt made".into())))
    }

    fn try_start(
        options: &RadicaleOptions,
        binary: &Path,
        runner: &Runner,
        pki: Option<&certs::TestPki>,
    ) -> std::result::Result<Radicale, (bool, Error)> {
        let fatal = |e: Error| (false, e);
        let dir = tempfile::Builder::new()
            .prefix("o365mt-radicale-")
            .tempdir()
            .map_err(|e| fatal(Error::io("creating a temporary directory", e)))?;
        let root = dir.path().to_path_buf();
        crate::postgres::set_mode(&root, 0o755).map_err(fatal)?;
        let storage = root.join("collections");
        make_dir(&storage, 0o700).map_err(fatal)?;
        runner.chown(&storage).map_err(fatal)?;
        let htpasswd = root.join("users");
        let users: String = options
            .users
            .iter()
            .map(|(u, p)| format!("{u}:{p}\n"))
            .collect();
        write_file(&htpasswd, &users, 0o644).map_err(fatal)?;
        let port = free_port().map_err(fatal)?;
        let mut server = format!("[server]\nhosts = {HOST}:{port}\n");
        let mut ca_path = None;
        let mut tls = None;
        if let Some(pki) = pki {
            let dir_tls = root.join("tls");
            make_dir(&dir_tls, 0o755).map_err(fatal)?;
            let ca = dir_tls.join("ca.pem");
            let cert = dir_tls.join("server.crt");
            let key = dir_tls.join("server.key");
            write_file(&ca, &pki.ca_pem, 0o644).map_err(fatal)?;
            write_file(&cert, &pki.server_cert_pem, 0o644).map_err(fatal)?;
            write_file(&key, &pki.server_key_pem, 0o600).map_err(fatal)?;
            runner.chown(&key).map_err(fatal)?;
            server.push_str(&format!(
                "ssl = True\ncertificate = {}\nkey = {}\n",
                cert.display(),
                key.display()
            ));
            tls = Some(client_tls(&pki.ca_pem).map_err(fatal)?);
            ca_path = Some(ca);
        }
        let config_text = format!(
            "# Generated by o365-migrate-testkit.\n{server}\
             [auth]\ntype = htpasswd\nhtpasswd_filename = {}\nhtpasswd_encryption = plain\ndelay = 0\n\
             [rights]\ntype = owner_only\n\
             [storage]\nfilesystem_folder = {}\n\
             [web]\ntype = none\n\
             [logging]\nlevel = info\nmask_passwords = True\n",
            htpasswd.display(),
            storage.display()
        );
        let config = root.join("config");
        write_file(&config, &config_text, 0o644).map_err(fatal)?;
        let log = root.join("radicale.log");
        let stderr = fs::File::create(&log)
            .map_err(|e| fatal(Error::io(format!("creating {}", log.display()), e)))?;
        let stdout = stderr
            .try_clone()
            .map_err(|e| fatal(Error::io("duplicating a file handle", e)))?;
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("o365m-radicale-watchdog")
            .args(runner.prefix())
            .arg(binary)
            .arg("--config")
            .arg(&config)
            .current_dir(&root)
            // Radicale reads RADICALE_CONFIG; keep the harness's config only.
            .env_remove("RADICALE_CONFIG")
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| fatal(Error::io("starting /bin/sh to supervise radicale", e)))?;
        let watchdog = child.stdin.take();
        let mut r = Radicale {
            child: Some(child),
            watchdog,
            port,
            users: options.users.clone(),
            ca_path,
            tls,
            log,
            config,
            dir,
        };
        match r.wait_ready() {
            Ok(()) => Ok(r),
            Err(reason) => {
                r.shutdown();
                let tail = tail(&r.log, TAIL_LINES);
                let retry = tail.contains("Address already in use");
                Err((
                    retry,
                    Error::io(
                        "Radicale did not start",
                        std::io::Error::other(format!(
                            "{reason} (port {port})\n--- last lines of {} ---\n{tail}\n---\nhint: the config is {}",
                            r.log.display(),
                            r.config.display()
                        )),
                    ),
                ))
            }
        }
    }

    fn wait_ready(&mut self) -> std::result::Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        loop {
            if let Some(child) = self.child.as_mut() {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        self.child = None;
                        return Err(format!("radicale exited with {status}"));
                    }
                    Ok(None) => {}
                    Err(e) => return Err(format!("cannot watch the radicale process: {e}")),
                }
            }
            let logged = fs::read_to_string(&self.log)
                .is_ok_and(|text| text.contains("Radicale server ready"));
            if logged && TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("not ready within {} s", START_TIMEOUT.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The base URL: `http://127.0.0.1:<port>/` (`https://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{HOST}:{}/", self.port)
    }

    /// The URL of `path` under the base URL (`path` not percent-encoded: that is done here).
    pub fn url_of(&self, path: &str) -> String {
        format!(
            "{}{}",
            self.url(),
            encode_path(path.trim_start_matches('/'))
        )
    }

    /// Path of the CA certificate (PEM) that signed the server certificate, with
    /// [`RadicaleOptions::tls`].
    pub fn ca_path(&self) -> Option<&Path> {
        self.ca_path.as_deref()
    }

    /// The CA certificate (PEM), with [`RadicaleOptions::tls`].
    pub fn ca_pem(&self) -> Option<Vec<u8>> {
        self.ca_path.as_ref().and_then(|p| fs::read(p).ok())
    }

    /// The log (Radicale's stderr).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    fn password(&self, user: &str) -> Result<&str> {
        self.users
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, p)| p.as_str())
            .ok_or_else(|| Error::InvalidOption(format!("no Radicale user {user:?}")))
    }

    /// Creates the address book `/<user>/<name>/` (extended MKCOL, RFC 5689).
    pub fn create_address_book(&self, user: &str, name: &str, display_name: &str) -> Result<()> {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<d:mkcol xmlns:d=\"DAV:\" xmlns:c=\"urn:ietf:params:xml:ns:carddav\"><d:set><d:prop><d:resourcetype><d:collection/><c:addressbook/></d:resourcetype><d:displayname>{}</d:displayname></d:prop></d:set></d:mkcol>",
            xml_escape(display_name)
        );
        self.expect(user, "MKCOL", &format!("{user}/{name}/"), &body, &[201])
            .map(drop)
    }

    /// Creates the calendar `/<user>/<name>/` (MKCALENDAR, RFC 4791) accepting `components`
    /// (`VEVENT`, `VTODO`, ...).
    pub fn create_calendar(
        &self,
        user: &str,
        name: &str,
        display_name: &str,
        components: &[&str],
    ) -> Result<()> {
        let comps: String = components
            .iter()
            .map(|c| format!("<c:comp name=\"{}\"/>", xml_escape(c)))
            .collect();
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<c:mkcalendar xmlns:d=\"DAV:\" xmlns:c=\"urn:ietf:params:xml:ns:caldav\"><d:set><d:prop><d:displayname>{}</d:displayname><c:supported-calendar-component-set>{comps}</c:supported-calendar-component-set></d:prop></d:set></c:mkcalendar>",
            xml_escape(display_name)
        );
        self.expect(
            user,
            "MKCALENDAR",
            &format!("{user}/{name}/"),
            &body,
            &[201],
        )
        .map(drop)
    }

    /// PUTs `data` (a vCard for `*.vcf`, else iCalendar) at `/<user>/<path>` and returns the
    /// new ETag.
    pub fn put(&self, user: &str, path: &str, data: &str) -> Result<String> {
        let answer = self.expect(user, "PUT", &format!("{user}/{path}"), data, &[201, 204])?;
        answer
            .header("etag")
            .map(str::to_owned)
            .ok_or_else(|| Error::protocol(format!("PUT {user}/{path}"), "no ETag in the answer"))
    }

    /// DELETEs `/<user>/<path>`.
    pub fn delete(&self, user: &str, path: &str) -> Result<()> {
        self.expect(user, "DELETE", &format!("{user}/{path}"), "", &[200, 204])
            .map(drop)
    }

    fn expect(
        &self,
        user: &str,
        method: &str,
        path: &str,
        body: &str,
        ok: &[u16],
    ) -> Result<HttpAnswer> {
        let content_type = if method == "PUT" {
            if path.ends_with(".vcf") {
                "text/vcard; charset=utf-8"
            } else {
                "text/calendar; charset=utf-8"
            }
        } else {
            "application/xml; charset=utf-8"
        };
        let answer = self.request(
            Some(user),
            method,
            path,
            &[("Content-Type", content_type)],
            body.as_bytes(),
        )?;
        if ok.contains(&answer.status) {
            Ok(answer)
        } else {
            Err(Error::protocol(
                format!("{method} /{path} as {user}"),
                format!(
                    "HTTP {}: {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                ),
            ))
        }
    }

    /// Sends one HTTP/1.1 request to `/<path>` (as `user` with Basic auth, or anonymous) on
    /// a new connection and reads the whole answer. `path` is not percent-encoded: that is
    /// done here.
    pub fn request(
        &self,
        user: Option<&str>,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<HttpAnswer> {
        let what = format!("{method} /{}", path.trim_start_matches('/'));
        let mut head = format!(
            "{method} /{} HTTP/1.1\r\nHost: {HOST}:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
            encode_path(path.trim_start_matches('/')),
            self.port,
            body.len()
        );
        if let Some(user) = user {
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{user}:{}", self.password(user)?));
            head.push_str(&format!("Authorization: Basic {token}\r\n"));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let tcp = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_secs(5),
        )
        .map_err(|e| Error::io(format!("connecting for {what}"), e))?;
        tcp.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| Error::io("setting a read timeout", e))?;
        let mut raw = Vec::new();
        let io = |e| Error::io(what.clone(), e);
        match &self.tls {
            None => {
                let mut s = tcp;
                s.write_all(head.as_bytes()).map_err(io)?;
                s.write_all(body).map_err(io)?;
                s.read_to_end(&mut raw).map_err(io)?;
            }
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(HOST)
                    .map_err(|e| Error::Certificate(e.to_string()))?;
                let conn = rustls::ClientConnection::new(config.clone(), name).map_err(|e| {
                    Error::Tls {
                        server: HOST.into(),
                        detail: e.to_string(),
                    }
                })?;
                let mut s = rustls::StreamOwned::new(conn, tcp);
                s.write_all(head.as_bytes()).map_err(io)?;
                s.write_all(body).map_err(io)?;
                // Python's ssl module closes without close_notify: take what came.
                match s.read_to_end(&mut raw) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
                    Err(e) => return Err(io(e)),
                }
            }
        }
        parse_answer(&raw).ok_or_else(|| {
            Error::protocol(
                what,
                format!(
                    "not an HTTP answer: {:?}",
                    String::from_utf8_lossy(&raw[..raw.len().min(200)])
                ),
            )
        })
    }

    /// Closes the watchdog pipe (the supervisor then SIGTERMs Radicale), waits up to 10 s,
    /// then SIGKILLs.
    fn shutdown(&mut self) {
        drop(self.watchdog.take());
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
            }
        }
    }
}

impl Drop for Radicale {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Supervisor script run by `/bin/sh -c` with Radicale's command line as `"$@"`: Radicale
/// runs in a background job; a second job SIGTERMs it at EOF on our stdin (drop, or death of
/// the test process). Exits with Radicale's status.
const WATCHDOG: &str = r#"exec 3<&0
"$@" </dev/null 3<&- &
pid=$!
( cat <&3 >/dev/null; kill -TERM "$pid" 2>/dev/null ) &
exec 3<&-
wait "$pid"
"#;

/// Percent-encodes a path: unreserved characters, sub-delimiters, `:`, `@` and `/` stay.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A rustls client trusting only `ca_pem`.
fn client_tls(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| Error::Certificate(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| Error::Certificate(e.to_string()))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Certificate(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Splits a whole HTTP/1.x answer (read to EOF) into status, headers and body.
fn parse_answer(raw: &[u8]) -> Option<HttpAnswer> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if let Some(len) = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(len);
    }
    Some(HttpAnswer {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> RadicaleOptions {
        RadicaleOptions {
            users: vec![
                ("alice".into(), "alice-pw".into()),
                ("bob".into(), "bob-pw".into()),
            ],
            tls: false,
        }
    }

    #[test]
    fn collections_items_and_owner_only_rights() {
        let dav = Radicale::start(alice()).expect("start Radicale");
        assert_eq!(dav.url(), format!("http://127.0.0.1:{}/", dav.port()));
        dav.create_address_book("alice", "contacts", "Contacts & Co")
            .unwrap();
        dav.create_calendar("alice", "work", "Work", &["VEVENT"])
            .unwrap();
        let card = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c1\r\nFN:Ann\r\nN:;Ann;;;\r\nEND:VCARD\r\n";
        let etag = dav.put("alice", "contacts/c1.vcf", card).unwrap();
        let got = dav
            .request(Some("alice"), "GET", "alice/contacts/c1.vcf", &[], b"")
            .unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(got.body, card.as_bytes());
        assert_eq!(got.header("etag"), Some(etag.as_str()));
        // Bob may not read Alice's collections; nobody may without a password.
        let bob = dav
            .request(Some("bob"), "GET", "alice/contacts/c1.vcf", &[], b"")
            .unwrap();
        assert_eq!(bob.status, 403, "{bob:?}");
        let anonymous = dav
            .request(None, "GET", "alice/contacts/c1.vcf", &[], b"")
            .unwrap();
        assert_eq!(anonymous.status, 401);
        dav.delete("alice", "contacts/c1.vcf").unwrap();
        let gone = dav
            .request(Some("alice"), "GET", "alice/contacts/c1.vcf", &[], b"")
            .unwrap();
        assert_eq!(gone.status, 404);
        assert!(
            dav.create_calendar("alice", "work", "Again", &["VEVENT"])
                .is_err()
        );

        let dir = dav.dir.path().to_path_buf();
        drop(dav);
        assert!(!dir.exists(), "{} still exists", dir.display());
    }

    #[test]
    fn tls_with_the_harness_ca() {
        let mut options = alice();
        options.tls = true;
        let dav = Radicale::start(options).expect("start Radicale with TLS");
        assert!(dav.url().starts_with("https://127.0.0.1:"));
        assert!(dav.ca_path().is_some_and(Path::exists));
        dav.create_address_book("alice", "contacts", "Contacts")
            .unwrap();
        let answer = dav
            .request(Some("alice"), "PROPFIND", "alice/", &[("Depth", "1")], b"")
            .unwrap();
        assert_eq!(answer.status, 207);
        assert!(String::from_utf8_lossy(&answer.body).contains("/alice/contacts/"));
    }
}
