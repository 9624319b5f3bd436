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

/// Parsed unit: a whole response (line plus any literals, up to the final CRLF).
type Unit = Vec<u8>;

fn excerpt(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(200)]);
    s.trim_end().to_owned()
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

    // ---- plumbing -------------------------------------------------------------------

    fn tag(&mut self) -> String {
        let t = format!("T{}", self.next_tag);
        self.next_tag += 1;
        t
    }

    async fn read_greeting(&mut self) -> Result<()> {
        let unit = self.read_unit().await?;
        let text = String::from_utf8_lossy(&unit).trim_end().to_owned();
        if !text.starts_with("* OK") && !text.starts_with("* PREAUTH") {
            return Err(Error::protocol("greeting", excerpt(&unit)));
        }
        self.note_untagged(&unit);
        self.greeting = text.trim_start_matches("* ").to_owned();
        Ok(())
    }

    /// Records capabilities from `* CAPABILITY` or `[CAPABILITY ...]`.
    fn note_untagged(&mut self, unit: &[u8]) {
        let text = String::from_utf8_lossy(unit);
        let caps = if let Some(rest) = text.strip_prefix("* CAPABILITY ") {
            Some(rest.trim_end().to_owned())
        } else if let Some(i) = text.find("[CAPABILITY ") {
            let rest = &text[i + 12..];
            rest.find(']').map(|j| rest[..j].to_owned())
        } else {
            None
        };
        if let Some(c) = caps {
            self.capabilities = c.split_whitespace().map(str::to_ascii_uppercase).collect();
        }
    }

    async fn write(&mut self, data: &[u8]) -> Result<()> {
        let server = self.server.clone();
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| Error::protocol("write", "connection is closed"))?;
        let fut = async {
            stream.write_all(data).await?;
            stream.flush().await
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| Error::Timeout {
                what: format!("writing to {server}"),
                seconds: self.timeout.as_secs(),
            })?
            .map_err(|e| Error::io(format!("writing to {server}"), e))
    }

    async fn fill(&mut self) -> Result<()> {
        let server = self.server.clone();
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| Error::protocol("read", "connection is closed"))?;
        if self.buf.capacity() - self.buf.len() < 16 * 1024 {
            self.buf.reserve(64 * 1024);
        }
        let n = tokio::time::timeout(self.timeout, stream.read_buf(&mut self.buf))
            .await
            .map_err(|_| Error::Timeout {
                what: format!("waiting for {server}"),
                seconds: self.timeout.as_secs(),
            })?
            .map_err(|e| Error::io(format!("reading from {server}"), e))?;
        if n == 0 {
            return Err(Error::io(
                format!("reading from {server}"),
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "server closed the connection",
                ),
            ));
        }
        Ok(())
    }

    /// Reads one complete response: a line and, for each trailing `{n}`, n literal bytes
    /// and the continuation of the line.
    async fn read_unit(&mut self) -> Result<Unit> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut scan = 0;
        loop {
            match self.buf[scan..].iter().position(|&b| b == b'\n') {
                None => {
                    scan = self.buf.len();
                    self.fill().await?;
                }
                Some(p) => {
                    let eol = scan + p + 1;
                    if let Some(n) = literal_len(&self.buf[..eol]) {
                        let need = eol
                            .checked_add(n)
                            .ok_or_else(|| Error::protocol("read", "literal length overflows"))?;
                        while self.buf.len() < need {
                            self.fill().await?;
                        }
                        scan = need;
                        continue;
                    }
                    let unit = self.buf[..eol].to_vec();
                    self.pos = eol;
                    return Ok(unit);
                }
            }
        }
    }

    async fn wait_continuation(&mut self, context: &str) -> Result<()> {
        loop {
            let unit = self.read_unit().await?;
            if unit.starts_with(b"+") {
                return Ok(());
            }
            if unit.starts_with(b"* ") {
                self.note_untagged(&unit);
                continue;
            }
            return Err(Error::Refused {
                command: context.to_owned(),
                response: excerpt(&unit),
            });
        }
    }

    async fn collect_tagged(&mut self, name: &str, tag: &str) -> Result<(Vec<Unit>, String)> {
        let mut units = Vec::new();
        let prefix = format!("{tag} ");
        loop {
            let unit = self.read_unit().await?;
            if unit.starts_with(prefix.as_bytes()) {
                let text = String::from_utf8_lossy(&unit).trim_end().to_owned();
                self.note_untagged(&unit);
                return match status_word(&text) {
                    Some("OK") => Ok((units, text)),
                    _ => Err(Error::Refused {
                        command: name.to_owned(),
                        response: text,
                    }),
                };
            }
            if unit.starts_with(b"+") {
                return Err(Error::protocol(
                    name,
                    format!("unexpected continuation request: {}", excerpt(&unit)),
                ));
            }
            self.note_untagged(&unit);
            units.push(unit);
        }
    }

    /// Sends `tag cmd CRLF` (no literals) and collects until the tagged response.
    async fn simple(&mut self, name: &str, cmd: Vec<u8>) -> Result<(Vec<Unit>, String)> {
        let tag = self.tag();
        let mut line = format!("{tag} ").into_bytes();
        line.extend_from_slice(&cmd);
        line.extend_from_slice(b"\r\n");
        self.write(&line).await?;
        self.collect_tagged(name, &tag).await
    }
}

/// `APPEND mailbox (flags) "date" {n+}\r\n` and the trailing CRLF.
fn append_parts(mailbox: &str, req: &AppendRequest, literal_plus: bool) -> (Vec<u8>, Vec<u8>) {
    let mut head = b"APPEND ".to_vec();
    head.extend_from_slice(&quote(utf7::encode(mailbox).as_bytes()));
    head.extend_from_slice(b" (");
    head.extend_from_slice(req.flags.join(" ").as_bytes());
    head.push(b')');
    if let Some(d) = req.internal_date {
        head.extend_from_slice(format!(" \"{}\"", d.to_imap()).as_bytes());
    }
    let plus = if literal_plus { "+" } else { "" };
    head.extend_from_slice(format!(" {{{}{plus}}}\r\n", req.message.len()).as_bytes());
    (head, b"\r\n".to_vec())
}

fn status_word(tagged: &str) -> Option<&str> {
    tagged.split(' ').nth(1)
}

fn appenduid(tagged: &str) -> Option<u32> {
    let i = tagged.find("[APPENDUID ")?;
    let rest = &tagged[i + 11..];
    let end = rest.find(']')?;
    rest[..end].split(' ').nth(1)?.parse().ok()
}

fn bracket_number(text: &str, key: &str) -> Option<u32> {
    let pat = format!("[{key} ");
    let i = text.find(&pat)?;
    let rest = &text[i + pat.len()..];
    let end = rest.find(']')?;
    rest[..end].trim().parse().ok()
}

/// If the line ending at `buf.len()` ends with `{n}` / `{n+}` before CRLF, returns n.
fn literal_len(buf: &[u8]) -> Option<usize> {
    let line = buf.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Quotes an astring for the wire (the input is ASCII after UTF-7 encoding; other bytes
/// are sent as a quoted string anyway, which Dovecot accepts for UTF-8 passwords).
fn quote(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    out.push(b'"');
    for &b in s {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
    out
}

/// A small cursor over one response unit.
struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

type PResult<T> = std::result::Result<T, String>;

impl<'a> Parser<'a> {
    fn new(b: &'a [u8]) -> Self {
        Parser { b, i: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> PResult<()> {
        self.sp();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }

    /// After `* `, the first word, upper-cased.
    fn untagged_keyword(&mut self) -> Option<String> {
        if !self.b.starts_with(b"* ") {
            return None;
        }
        self.i = 2;
        self.atom_upper()
    }

    /// An atom; brackets (`BODY[HEADER.FIELDS (A B)]`) are kept inside the atom.
    fn atom(&mut self) -> Option<&'a [u8]> {
        self.sp();
        let start = self.i;
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            match c {
                b'[' => depth += 1,
                b']' => depth = depth.saturating_sub(1),
                b' ' | b'(' | b')' | b'\r' | b'\n' | b'{' | b'"' if depth == 0 => break,
                _ => {}
            }
            self.i += 1;
        }
        (self.i > start).then(|| &self.b[start..self.i])
    }

    fn atom_upper(&mut self) -> Option<String> {
        self.atom()
            .map(|a| String::from_utf8_lossy(a).to_ascii_uppercase())
    }

    fn number(&mut self) -> PResult<u64> {
        let a = self.atom().ok_or("expected a number")?;
        std::str::from_utf8(a)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("expected a number, got {:?}", String::from_utf8_lossy(a)))
    }

    /// nstring / astring: quoted, literal, NIL (→ None) or atom.
    fn string(&mut self) -> PResult<Option<Vec<u8>>> {
        self.sp();
        match self.peek() {
            Some(b'"') => {
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    match self.peek() {
                        None | Some(b'\r') | Some(b'\n') => {
                            return Err("unterminated quoted string".into());
                        }
                        Some(b'\\') => {
                            let c = self.b.get(self.i + 1).copied().ok_or("bad escape")?;
                            out.push(c);
                            self.i += 2;
                        }
                        Some(b'"') => {
                            self.i += 1;
                            return Ok(Some(out));
                        }
                        Some(c) => {
                            out.push(c);
                            self.i += 1;
                        }
                    }
                }
            }
            Some(b'{') => {
                let close = self.b[self.i..]
                    .iter()
                    .position(|&c| c == b'}')
                    .ok_or("unterminated literal")?
                    + self.i;
                let digits = &self.b[self.i + 1..close];
                let digits = digits.strip_suffix(b"+").unwrap_or(digits);
                let n: usize = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or("bad literal length")?;
                let mut j = close + 1;
                if self.b.get(j) == Some(&b'\r') {
                    j += 1;
                }
                if self.b.get(j) != Some(&b'\n') {
                    return Err("literal length not followed by CRLF".into());
                }
                j += 1;
                let end = j.checked_add(n).ok_or("literal too long")?;
                let data = self.b.get(j..end).ok_or("literal shorter than announced")?;
                self.i = end;
                Ok(Some(data.to_vec()))
            }
            _ => {
                let a = self.atom().ok_or("expected a string")?;
                if a.eq_ignore_ascii_case(b"NIL") {
                    Ok(None)
                } else {
                    Ok(Some(a.to_vec()))
                }
            }
        }
    }

    fn flag_list(&mut self) -> PResult<Vec<String>> {
        self.expect(b'(')?;
        let mut flags = Vec::new();
        loop {
            self.sp();
            if self.peek() == Some(b')') {
                self.i += 1;
                return Ok(flags);
            }
            let a = self.atom().ok_or("expected a flag")?;
            flags.push(String::from_utf8_lossy(a).into_owned());
        }
    }

    /// Skips any value: atom, string, literal or a parenthesized list.
    fn skip_value(&mut self) -> PResult<()> {
        self.sp();
        if self.peek() == Some(b'(') {
            self.i += 1;
            loop {
                self.sp();
                match self.peek() {
                    Some(b')') => {
                        self.i += 1;
                        return Ok(());
                    }
                    None | Some(b'\r') | Some(b'\n') => return Err("unterminated list".into()),
                    _ => self.skip_value()?,
                }
            }
        }
        self.string().map(|_| ())
    }

    fn list_entry(&mut self) -> PResult<ListEntry> {
        let attributes = self.flag_list()?;
        let delim = self.string()?;
        let delimiter = match delim {
            None => None,
            Some(d) => Some(*d.first().ok_or("empty delimiter")? as char),
        };
        let raw = self.string()?.ok_or("NIL mailbox name")?;
        let raw_name = String::from_utf8(raw).map_err(|_| "mailbox name is not UTF-8")?;
        let name = if raw_name.eq_ignore_ascii_case("INBOX") {
            "INBOX".to_owned()
        } else {
            utf7::decode(&raw_name).map_err(|e| e.to_string())?
        };
        Ok(ListEntry {
            name,
            raw_name,
            delimiter,
            attributes,
        })
    }

    fn status_items(&mut self) -> PResult<Vec<(String, u32)>> {
        self.string()?;
        self.expect(b'(')?;
        let mut items = Vec::new();
        loop {
            self.sp();
            if self.peek() == Some(b')') {
                return Ok(items);
            }
            let k = self.atom_upper().ok_or("expected a STATUS item")?;
            let v = self.number()?;
            items.push((k, u32::try_from(v).map_err(|_| "STATUS value too large")?));
        }
    }

    fn fetch_items(&mut self, seq: u32) -> PResult<FetchedMessage> {
        let mut m = FetchedMessage {
            seq,
            ..FetchedMessage::default()
        };
        self.expect(b'(')?;
        loop {
            self.sp();
            if self.peek() == Some(b')') {
                return Ok(m);
            }
            let key = self.atom_upper().ok_or("expected a FETCH item name")?;
            match key.as_str() {
                "UID" => {
                    m.uid = Some(u32::try_from(self.number()?).map_err(|_| "UID too large")?);
                }
                "FLAGS" => {
                    m.flags = self
                        .flag_list()?
                        .into_iter()
                        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                        .collect();
                }
                "INTERNALDATE" => {
                    let s = self.string()?.ok_or("NIL INTERNALDATE")?;
                    let s = String::from_utf8_lossy(&s).into_owned();
                    m.internal_date = Some(ImapDate::parse(&s).map_err(|e| e.to_string())?);
                }
                "RFC822.SIZE" => m.size = Some(self.number()?),
                k if k.starts_with("BODY[") || k.starts_with("RFC822") && k != "RFC822.SIZE" => {
                    m.body = self.string()?;
                }
                _ => self.skip_value()?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dovecot_fetch() {
        let unit = b"* 2 FETCH (UID 7 FLAGS (\\Seen $Label1 \\Recent) INTERNALDATE \" 5-Mar-2021 10:00:00 +0100\" RFC822.SIZE 5 BODY[] {5}\r\nab\r\nc)\r\n";
        let mut p = Parser::new(unit);
        assert_eq!(p.untagged_keyword().as_deref(), Some("2"));
        assert_eq!(p.atom_upper().as_deref(), Some("FETCH"));
        let m = p.fetch_items(2).unwrap();
        assert_eq!(m.uid, Some(7));
        assert_eq!(m.flags, vec!["\\Seen", "$Label1"]);
        assert_eq!(m.size, Some(5));
        assert_eq!(m.body.as_deref(), Some(&b"ab\r\nc"[..]));
        assert_eq!(
            m.internal_date.unwrap().to_imap(),
            "05-Mar-2021 10:00:00 +0100"
        );
    }

    #[test]
    fn parses_list_and_status() {
        let mut p = Parser::new(
            b"* LIST (\\HasNoChildren \\Sent) \"/\" \"&ANw-berweisungen/Ao&APs-t\"\r\n",
        );
        p.untagged_keyword();
        let e = p.list_entry().unwrap();
        assert_eq!(e.name, "Überweisungen/Août");
        assert_eq!(e.delimiter, Some('/'));
        let mut p = Parser::new(b"* STATUS INBOX (MESSAGES 3 UIDNEXT 4)\r\n");
        p.untagged_keyword();
        assert_eq!(
            p.status_items().unwrap(),
            vec![("MESSAGES".into(), 3), ("UIDNEXT".into(), 4)]
        );
    }

    #[test]
    fn literal_detection_and_appenduid() {
        assert_eq!(literal_len(b"* 1 FETCH (BODY[] {12}\r\n"), Some(12));
        assert_eq!(literal_len(b"A APPEND x {3+}\r\n"), Some(3));
        assert_eq!(literal_len(b"* OK {x}\r\n"), None);
        assert_eq!(
            appenduid("T4 OK [APPENDUID 1700 42] Append completed."),
            Some(42)
        );
        assert_eq!(quote(b"a\"b\\"), b"\"a\\\"b\\\\\"".to_vec());
    }

    proptest::proptest! {
        #[test]
        fn fetch_parser_never_panics(s in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let mut unit = b"* 1 FETCH ".to_vec();
            unit.extend_from_slice(&s);
            let mut p = Parser::new(&unit);
            p.untagged_keyword();
            p.atom_upper();
            let _ = p.fetch_items(1);
            let mut p = Parser::new(&unit);
            let _ = p.list_entry();
        }
    }
}
