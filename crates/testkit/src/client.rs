//! A minimal async IMAP client for loading and checking test mailboxes.
//!
//! Just enough IMAP4rev1 (RFC 3501) for the harness: LOGIN, AUTHENTICATE PLAIN, CAPABILITY,
//! STARTTLS, CREATE, LIST, SELECT/EXAMINE, STATUS, APPEND (one at a time or pipelined with
//! LITERAL+) and UID FETCH. It is deliberately independent of the `o365-migrate-imap` crate,
//! so that crate can be tested against it without testing itself.
//!
//! Mailbox names are passed and returned as UTF-8; the client converts to and from modified
//! UTF-7 on the wire.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::date::ImapDate;
use crate::error::{Error, Result};
use crate::utf7;

mod parse;
#[cfg(test)]
mod tests;
mod wire;

use parse::Parser;
use wire::{append_parts, appenduid, bracket_number, excerpt, quote, status_word};

/// Which certificates a TLS connection trusts.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum TlsTrust<'a> {
    /// Trust exactly the CA certificates in this PEM (e.g. [`crate::Dovecot::ca_pem`]).
    Pem(&'a [u8]),
}

impl fmt::Debug for TlsTrust<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsTrust::Pem(p) => write!(f, "TlsTrust::Pem({} bytes)", p.len()),
        }
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    async fn read_buf(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read_buf(buf).await,
            Stream::Tls(s) => s.read_buf(buf).await,
        }
    }

    async fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(buf).await,
            Stream::Tls(s) => s.write_all(buf).await,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush().await,
            Stream::Tls(s) => s.flush().await,
        }
    }
}

/// What SELECT or EXAMINE reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Selected {
    /// `* n EXISTS`.
    pub exists: u32,
    /// `[UIDVALIDITY n]`.
    pub uid_validity: Option<u32>,
    /// `[UIDNEXT n]`.
    pub uid_next: Option<u32>,
    /// `* FLAGS (...)`.
    pub flags: Vec<String>,
    /// Whether the tagged response said `[READ-ONLY]`.
    pub read_only: bool,
}

/// What STATUS reported (items the server did not send are `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MailboxStatus {
    /// MESSAGES.
    pub messages: Option<u32>,
    /// UIDNEXT.
    pub uid_next: Option<u32>,
    /// UIDVALIDITY.
    pub uid_validity: Option<u32>,
    /// UNSEEN.
    pub unseen: Option<u32>,
}

/// One `* LIST` line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListEntry {
    /// Decoded (UTF-8) mailbox name.
    pub name: String,
    /// The name as sent on the wire (modified UTF-7).
    pub raw_name: String,
    /// Hierarchy delimiter, `None` for NIL.
    pub delimiter: Option<char>,
    /// Attributes such as `\HasNoChildren`, `\Sent`.
    pub attributes: Vec<String>,
}

/// One message from a FETCH response. Items not requested are `None`/empty.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchedMessage {
    /// Sequence number.
    pub seq: u32,
    /// UID.
    pub uid: Option<u32>,
    /// FLAGS (without `\Recent`).
    pub flags: Vec<String>,
    /// INTERNALDATE.
    pub internal_date: Option<ImapDate>,
    /// RFC822.SIZE.
    pub size: Option<u64>,
    /// `BODY[]` bytes.
    pub body: Option<Vec<u8>>,
}

impl fmt::Debug for FetchedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchedMessage")
            .field("seq", &self.seq)
            .field("uid", &self.uid)
            .field("flags", &self.flags)
            .field("internal_date", &self.internal_date)
            .field("size", &self.size)
            .field("body_len", &self.body.as_ref().map(Vec::len))
            .finish()
    }
}

/// One message to APPEND.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct AppendRequest {
    /// Flags and keywords, e.g. `\Seen`, `$Label1`.
    pub flags: Vec<String>,
    /// INTERNALDATE to set; the server's clock when `None`.
    pub internal_date: Option<ImapDate>,
    /// The full message (CRLF line endings).
    pub message: Vec<u8>,
}

impl AppendRequest {
    /// A request for `message` with `flags` and an optional INTERNALDATE.
    pub fn new(message: Vec<u8>, flags: Vec<String>, internal_date: Option<ImapDate>) -> Self {
        AppendRequest {
            flags,
            internal_date,
            message,
        }
    }
}

impl fmt::Debug for AppendRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppendRequest")
            .field("flags", &self.flags)
            .field("internal_date", &self.internal_date)
            .field("message_len", &self.message.len())
            .finish()
    }
}

/// A connected IMAP client. See the [module docs](self).
pub struct Client {
    stream: Option<Stream>,
    server: String,
    host: String,
    buf: Vec<u8>,
    pos: usize,
    next_tag: u32,
    capabilities: Vec<String>,
    greeting: String,
    timeout: Duration,
    pipeline_window: usize,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.server)
            .field("tls", &matches!(self.stream, Some(Stream::Tls(_))))
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

fn tls_config(trust: TlsTrust<'_>, server: &str) -> Result<Arc<rustls::ClientConfig>> {
    let TlsTrust::Pem(pem) = trust;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| Error::Tls {
            server: server.to_owned(),
            detail: format!("cannot read the trusted CA PEM: {e}"),
        })?;
        roots.add(cert).map_err(|e| Error::Tls {
            server: server.to_owned(),
            detail: format!("cannot use the trusted CA certificate: {e}"),
        })?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Tls {
        server: server.to_owned(),
        detail: e.to_string(),
    })?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn tls_handshake(tcp: TcpStream, host: &str, trust: TlsTrust<'_>) -> Result<Stream> {
    let server = tcp
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| host.to_owned());
    let config = tls_config(trust, &server)?;
    let name = ServerName::try_from(host.to_owned()).map_err(|e| Error::Tls {
        server: server.clone(),
        detail: format!("invalid server name: {e}"),
    })?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| Error::Tls {
            server,
            detail: e.to_string(),
        })?;
    Ok(Stream::Tls(Box::new(tls)))
}

impl Client {
    async fn tcp(host: &str, port: u16) -> Result<TcpStream> {
        let addr = format!("{host}:{port}");
        let s = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&addr))
            .await
            .map_err(|_| Error::Timeout {
                what: format!("connecting to {addr}"),
                seconds: 10,
            })?
            .map_err(|e| Error::io(format!("connecting to {addr}"), e))?;
        let _ = s.set_nodelay(true);
        Ok(s)
    }

    fn new(stream: Stream, host: &str, port: u16) -> Client {
        Client {
            stream: Some(stream),
            server: format!("{host}:{port}"),
            host: host.to_owned(),
            buf: Vec::with_capacity(64 * 1024),
            pos: 0,
            next_tag: 1,
            capabilities: Vec::new(),
            greeting: String::new(),
            timeout: Duration::from_secs(120),
            pipeline_window: 32,
        }
    }

    /// Connects without TLS and reads the greeting.
    pub async fn connect_plain(host: &str, port: u16) -> Result<Client> {
        let tcp = Self::tcp(host, port).await?;
        let mut c = Client::new(Stream::Plain(tcp), host, port);
        c.read_greeting().await?;
        Ok(c)
    }

    /// Connects with implicit TLS (IMAPS), verifying the certificate against `trust`.
    pub async fn connect_tls(host: &str, port: u16, trust: TlsTrust<'_>) -> Result<Client> {
        let tcp = Self::tcp(host, port).await?;
        let stream = tls_handshake(tcp, host, trust).await?;
        let mut c = Client::new(stream, host, port);
        c.read_greeting().await?;
        Ok(c)
    }

    /// Connects without TLS, then upgrades with STARTTLS (fails if the server does not
    /// offer it) and refreshes the capabilities.
    pub async fn connect_starttls(host: &str, port: u16, trust: TlsTrust<'_>) -> Result<Client> {
        let mut c = Self::connect_plain(host, port).await?;
        c.starttls(trust).await?;
        Ok(c)
    }

    /// Upgrades this plain connection with STARTTLS.
    pub async fn starttls(&mut self, trust: TlsTrust<'_>) -> Result<()> {
        if !self.has_capability("STARTTLS") {
            self.capability().await?;
        }
        if !self.has_capability("STARTTLS") {
            return Err(Error::protocol(
                "STARTTLS",
                "the server does not advertise STARTTLS (was it started without TLS?)",
            ));
        }
        self.simple("STARTTLS", b"STARTTLS".to_vec()).await?;
        if self.pos < self.buf.len() {
            return Err(Error::protocol(
                "STARTTLS",
                "the server sent data after its STARTTLS response (possible injection)",
            ));
        }
        let Some(Stream::Plain(tcp)) = self.stream.take() else {
            return Err(Error::protocol("STARTTLS", "connection is already TLS"));
        };
        let host = self.host.clone();
        self.stream = Some(tls_handshake(tcp, &host, trust).await?);
        self.capabilities.clear();
        self.capability().await?;
        Ok(())
    }

    /// Sets the time limit for each wait on the server (default 120 s).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sets how many APPENDs [`Client::append_pipelined`] keeps in flight (default 32, min 1).
    pub fn set_pipeline_window(&mut self, window: usize) {
        self.pipeline_window = window.max(1);
    }

    /// The greeting line, without the `* ` prefix.
    pub fn greeting(&self) -> &str {
        &self.greeting
    }

    /// Whether the connection is TLS (implicit or after STARTTLS).
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Some(Stream::Tls(_)))
    }

    /// The capabilities last seen (upper case).
    pub fn capabilities(&self) -> &[String] {
        &self.capabilities
    }

    /// Whether `cap` (case-insensitive) is among the last seen capabilities.
    pub fn has_capability(&self, cap: &str) -> bool {
        self.capabilities
            .iter()
            .any(|c| c.eq_ignore_ascii_case(cap))
    }

    /// Sends CAPABILITY and returns the list.
    pub async fn capability(&mut self) -> Result<Vec<String>> {
        self.simple("CAPABILITY", b"CAPABILITY".to_vec()).await?;
        Ok(self.capabilities.clone())
    }

    /// LOGIN with a quoted user name and password (the password never appears in errors).
    pub async fn login(&mut self, user: &str, password: &str) -> Result<()> {
        let mut cmd = b"LOGIN ".to_vec();
        cmd.extend_from_slice(&quote(user.as_bytes()));
        cmd.push(b' ');
        cmd.extend_from_slice(&quote(password.as_bytes()));
        self.simple("LOGIN", cmd).await?;
        if !self.has_capability("IMAP4REV1") {
            self.capability().await?;
        }
        Ok(())
    }

    /// AUTHENTICATE PLAIN with an authorization identity (`authzid`, may be empty), the
    /// authentication identity and its password. With a Dovecot master user:
    /// `authenticate_plain("alice", "admin", admin_password)`.
    pub async fn authenticate_plain(
        &mut self,
        authzid: &str,
        authcid: &str,
        password: &str,
    ) -> Result<()> {
        use base64::Engine as _;
        let mut raw = Vec::new();
        raw.extend_from_slice(authzid.as_bytes());
        raw.push(0);
        raw.extend_from_slice(authcid.as_bytes());
        raw.push(0);
        raw.extend_from_slice(password.as_bytes());
        let mut cmd = b"AUTHENTICATE PLAIN ".to_vec();
        cmd.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(raw)
                .as_bytes(),
        );
        self.simple("AUTHENTICATE PLAIN", cmd).await?;
        if !self.has_capability("IMAP4REV1") {
            self.capability().await?;
        }
        Ok(())
    }

    /// CREATE a mailbox (UTF-8 name).
    pub async fn create(&mut self, mailbox: &str) -> Result<()> {
        let mut cmd = b"CREATE ".to_vec();
        cmd.extend_from_slice(&quote(utf7::encode(mailbox).as_bytes()));
        self.simple("CREATE", cmd).await.map(|_| ())
    }

    /// CREATE a mailbox, treating "already exists" as success.
    pub async fn create_if_missing(&mut self, mailbox: &str) -> Result<()> {
        match self.create(mailbox).await {
            Err(Error::Refused { response, .. })
                if response.contains("ALREADYEXISTS") || response.contains("already exists") =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// `LIST "" "*"`: every mailbox, names decoded to UTF-8.
    pub async fn list(&mut self) -> Result<Vec<ListEntry>> {
        let (units, _) = self.simple("LIST", b"LIST \"\" \"*\"".to_vec()).await?;
        let mut out = Vec::new();
        for u in units {
            let mut p = Parser::new(&u);
            if p.untagged_keyword().as_deref() != Some("LIST") {
                continue;
            }
            out.push(p.list_entry().map_err(|d| Error::protocol("LIST", d))?);
        }
        Ok(out)
    }

    /// SELECT a mailbox (read-write).
    pub async fn select(&mut self, mailbox: &str) -> Result<Selected> {
        self.select_or_examine("SELECT", mailbox).await
    }

    /// EXAMINE a mailbox (read-only).
    pub async fn examine(&mut self, mailbox: &str) -> Result<Selected> {
        self.select_or_examine("EXAMINE", mailbox).await
    }

    async fn select_or_examine(&mut self, verb: &str, mailbox: &str) -> Result<Selected> {
        let mut cmd = format!("{verb} ").into_bytes();
        cmd.extend_from_slice(&quote(utf7::encode(mailbox).as_bytes()));
        let (units, tagged) = self.simple(verb, cmd).await?;
        let mut s = Selected {
            read_only: tagged.contains("[READ-ONLY]"),
            ..Selected::default()
        };
        for u in units {
            let mut p = Parser::new(&u);
            let Some(first) = p.untagged_keyword() else {
                continue;
            };
            if let Ok(n) = first.parse::<u32>() {
                if p.atom_upper().as_deref() == Some("EXISTS") {
                    s.exists = n;
                }
            } else if first == "FLAGS" {
                s.flags = p.flag_list().unwrap_or_default();
            } else if first == "OK" {
                let text = String::from_utf8_lossy(&u).into_owned();
                if let Some(v) = bracket_number(&text, "UIDVALIDITY") {
                    s.uid_validity = Some(v);
                }
                if let Some(v) = bracket_number(&text, "UIDNEXT") {
                    s.uid_next = Some(v);
                }
            }
        }
        Ok(s)
    }

    /// STATUS (MESSAGES UIDNEXT UIDVALIDITY UNSEEN) of a mailbox.
    pub async fn status(&mut self, mailbox: &str) -> Result<MailboxStatus> {
        let mut cmd = b"STATUS ".to_vec();
        cmd.extend_from_slice(&quote(utf7::encode(mailbox).as_bytes()));
        cmd.extend_from_slice(b" (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)");
        let (units, _) = self.simple("STATUS", cmd).await?;
        let mut st = MailboxStatus::default();
        for u in units {
            let mut p = Parser::new(&u);
            if p.untagged_keyword().as_deref() != Some("STATUS") {
                continue;
            }
            let items = p.status_items().map_err(|d| Error::protocol("STATUS", d))?;
            for (k, v) in items {
                match k.as_str() {
                    "MESSAGES" => st.messages = Some(v),
                    "UIDNEXT" => st.uid_next = Some(v),
                    "UIDVALIDITY" => st.uid_validity = Some(v),
                    "UNSEEN" => st.unseen = Some(v),
                    _ => {}
                }
            }
        }
        Ok(st)
    }

    /// APPEND one message; returns the UID from `[APPENDUID]` when the server sends it.
    pub async fn append(&mut self, mailbox: &str, req: &AppendRequest) -> Result<Option<u32>> {
        let (head, lit) = append_parts(mailbox, req, self.has_capability("LITERAL+"));
        let tag = self.tag();
        let mut line = format!("{tag} ").into_bytes();
        line.extend_from_slice(&head);
        self.write(&line).await?;
        if !self.has_capability("LITERAL+") {
            self.wait_continuation("APPEND").await?;
        }
        self.write(&req.message).await?;
        self.write(&lit).await?;
        let (_, tagged) = self.collect_tagged("APPEND", &tag).await?;
        Ok(appenduid(&tagged))
    }

    /// APPENDs many messages to one mailbox, keeping up to the pipeline window in flight
    /// when the server offers LITERAL+ (one at a time otherwise). Returns one entry per
    /// request, in order: the UID from `[APPENDUID]`, or `None`. Any refusal is returned as
    /// an error after all in-flight commands have completed.
    ///
    /// Tip: SELECT the mailbox first; Dovecot then appends noticeably faster.
    pub async fn append_pipelined<I>(
        &mut self,
        mailbox: &str,
        requests: I,
    ) -> Result<Vec<Option<u32>>>
    where
        I: IntoIterator<Item = AppendRequest>,
    {
        let literal_plus = self.has_capability("LITERAL+");
        let mut out: Vec<Option<u32>> = Vec::new();
        let mut inflight: VecDeque<(String, usize)> = VecDeque::new();
        let mut first_err: Option<Error> = None;
        let mut iter = requests.into_iter();
        let window = if literal_plus {
            self.pipeline_window
        } else {
            1
        };
        let mut exhausted = false;
        loop {
            while !exhausted && inflight.len() < window && first_err.is_none() {
                let Some(req) = iter.next() else {
                    exhausted = true;
                    break;
                };
                if !literal_plus {
                    let uid = self.append(mailbox, &req).await?;
                    out.push(uid);
                    continue;
                }
                let (head, lit) = append_parts(mailbox, &req, true);
                let tag = self.tag();
                let mut data = Vec::with_capacity(tag.len() + head.len() + req.message.len() + 8);
                data.extend_from_slice(tag.as_bytes());
                data.push(b' ');
                data.extend_from_slice(&head);
                data.extend_from_slice(&req.message);
                data.extend_from_slice(&lit);
                self.write(&data).await?;
                out.push(None);
                inflight.push_back((tag, out.len() - 1));
            }
            if inflight.is_empty() {
                break;
            }
            let unit = self.read_unit().await?;
            let Some((tag, idx)) = inflight.front().cloned() else {
                break;
            };
            if unit.starts_with(b"* ") || unit.starts_with(b"+") {
                self.note_untagged(&unit);
                continue;
            }
            if !unit.starts_with(format!("{tag} ").as_bytes()) {
                return Err(Error::protocol(
                    "APPEND",
                    format!("expected a response tagged {tag}, got: {}", excerpt(&unit)),
                ));
            }
            inflight.pop_front();
            let text = String::from_utf8_lossy(&unit).trim_end().to_owned();
            match status_word(&text) {
                Some("OK") => {
                    if let Some(slot) = out.get_mut(idx) {
                        *slot = appenduid(&text);
                    }
                }
                _ => {
                    first_err.get_or_insert(Error::Refused {
                        command: format!(
                            "APPEND to {mailbox:?} (message {} of this batch)",
                            idx + 1
                        ),
                        response: text,
                    });
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// `UID FETCH range items`, calling `each` for every FETCH response that carries a UID.
    /// `items` is the raw item list, e.g. `(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])`.
    pub async fn uid_fetch_each<F>(&mut self, range: &str, items: &str, mut each: F) -> Result<()>
    where
        F: FnMut(FetchedMessage),
    {
        let tag = self.tag();
        let line = format!("{tag} UID FETCH {range} {items}\r\n");
        self.write(line.as_bytes()).await?;
        loop {
            let unit = self.read_unit().await?;
            if unit.starts_with(format!("{tag} ").as_bytes()) {
                let text = String::from_utf8_lossy(&unit).trim_end().to_owned();
                return match status_word(&text) {
                    Some("OK") => Ok(()),
                    _ => Err(Error::Refused {
                        command: "UID FETCH".into(),
                        response: text,
                    }),
                };
            }
            let mut p = Parser::new(&unit);
            let first = p.untagged_keyword();
            let seq = first.as_deref().and_then(|f| f.parse::<u32>().ok());
            match seq {
                Some(seq) if p.atom_upper().as_deref() == Some("FETCH") => {
                    let m = p.fetch_items(seq).map_err(|d| {
                        Error::protocol("UID FETCH", format!("{d} in: {}", excerpt(&unit)))
                    })?;
                    if m.uid.is_some() {
                        each(m);
                    }
                }
                _ => self.note_untagged(&unit),
            }
        }
    }

    /// `UID FETCH range (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])`, collected.
    pub async fn uid_fetch_full(&mut self, range: &str) -> Result<Vec<FetchedMessage>> {
        let mut v = Vec::new();
        self.uid_fetch_each(
            range,
            "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])",
            |m| v.push(m),
        )
        .await?;
        Ok(v)
    }

    /// `UID FETCH range (UID FLAGS INTERNALDATE RFC822.SIZE)`, collected (no bodies).
    pub async fn uid_fetch_meta(&mut self, range: &str) -> Result<Vec<FetchedMessage>> {
        let mut v = Vec::new();
        self.uid_fetch_each(range, "(UID FLAGS INTERNALDATE RFC822.SIZE)", |m| v.push(m))
            .await?;
        Ok(v)
    }

    /// NOOP.
    pub async fn noop(&mut self) -> Result<()> {
        self.simple("NOOP", b"NOOP".to_vec()).await.map(|_| ())
    }

    /// LOGOUT and close the connection.
    pub async fn logout(mut self) -> Result<()> {
        self.simple("LOGOUT", b"LOGOUT".to_vec()).await?;
        Ok(())
    }

    /// Sends a raw command line (without tag and CRLF) and returns the untagged responses
    /// (as text) and the tagged line. For commands this client does not model.
    pub async fn raw(&mut self, command: &str) -> Result<(Vec<String>, String)> {
        let name = command.split(' ').next().unwrap_or("").to_owned();
        let (units, tagged) = self.simple(&name, command.as_bytes().to_vec()).await?;
        Ok((
            units
                .iter()
                .map(|u| String::from_utf8_lossy(u).trim_end().to_owned())
                .collect(),
            tagged,
        ))
    }
}
