//! The tokio driver: a thin loop around the sans-IO core.

use crate::auth::{Auth, oauthbearer_response, plain_response, xoauth2_response};
use crate::command::{Encoded, Encoder, LiteralMode, Part};
use crate::core::{DEFAULT_MAX_LITERAL, Progress, ResponseReader};
use crate::transport::{Io, Security, Timeouts, TlsOptions, connect_tcp, wrap_tls};
use crate::{
    AppendMessage, ByteBudget, Code, Command, Condition, Error, FetchItems, InternalDate,
    ListEntry, Namespaces, Reservation, Response, SearchKey, Status, StatusData, StatusItem,
    StoreMode, UidSet, Untagged, parse_throttle,
};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Server host name (checked against the certificate).
    pub host: String,
    /// Port (993 for [`Security::Tls`], 143 otherwise).
    pub port: u16,
    /// TLS mode.
    pub security: Security,
    /// Certificate handling.
    pub tls: TlsOptions,
    /// Time limits.
    pub timeouts: Timeouts,
    /// Largest literal (message) accepted; bigger ones fail with [`Error::LiteralTooLarge`].
    pub max_literal: u64,
    /// Shared budget for message bytes in flight (`None` = unlimited).
    pub budget: Option<ByteBudget>,
    /// Fields sent with ID (RFC 2971) after login when the server supports it (`None` = no ID).
    pub client_id: Option<Vec<(String, String)>>,
}

impl ClientConfig {
    /// Implicit TLS on 993 with the system trust store.
    pub fn tls(host: impl Into<String>) -> Self {
        Self::new(host, 993, Security::Tls)
    }

    /// Any host, port and security mode.
    pub fn new(host: impl Into<String>, port: u16, security: Security) -> Self {
        ClientConfig {
            host: host.into(),
            port,
            security,
            tls: TlsOptions::default(),
            timeouts: Timeouts::default(),
            max_literal: DEFAULT_MAX_LITERAL,
            budget: None,
            client_id: Some(vec![
                ("name".into(), "o365-migrate".into()),
                ("version".into(), env!("CARGO_PKG_VERSION").into()),
            ]),
        }
    }
}

/// A RFC 6154 special-use role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SpecialUse {
    /// `\All` (virtual: every message, e.g. Gmail All Mail).
    All,
    /// `\Archive`.
    Archive,
    /// `\Drafts`.
    Drafts,
    /// `\Flagged` (virtual: starred).
    Flagged,
    /// `\Junk`.
    Junk,
    /// `\Sent`.
    Sent,
    /// `\Trash`.
    Trash,
    /// `\Important` (Gmail).
    Important,
}

impl SpecialUse {
    fn from_attr(a: &str) -> Option<Self> {
        Some(match a.to_ascii_lowercase().as_str() {
            "\\all" => SpecialUse::All,
            "\\archive" => SpecialUse::Archive,
            "\\drafts" => SpecialUse::Drafts,
            "\\flagged" => SpecialUse::Flagged,
            "\\junk" => SpecialUse::Junk,
            "\\sent" => SpecialUse::Sent,
            "\\trash" => SpecialUse::Trash,
            "\\important" => SpecialUse::Important,
            _ => return None,
        })
    }
}

/// A mailbox from LIST, with its status when asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mailbox {
    /// Name (UTF-8).
    pub name: String,
    /// Name as sent by the server (modified UTF-7).
    pub raw_name: String,
    /// Hierarchy delimiter.
    pub delimiter: Option<char>,
    /// All attributes as sent.
    pub attributes: Vec<String>,
    /// Special-use role, if any.
    pub special_use: Option<SpecialUse>,
    /// False for `\Noselect` / `\NonExistent` containers.
    pub selectable: bool,
    /// STATUS values (from LIST-STATUS or a STATUS command).
    pub status: Option<StatusData>,
}

/// State of a mailbox after SELECT / EXAMINE.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelectedMailbox {
    /// Name (UTF-8).
    pub name: String,
    /// Number of messages.
    pub exists: u32,
    /// UIDVALIDITY.
    pub uid_validity: Option<u32>,
    /// UIDNEXT.
    pub uid_next: Option<u32>,
    /// HIGHESTMODSEQ (CONDSTORE).
    pub highest_modseq: Option<u64>,
    /// FLAGS.
    pub flags: Vec<String>,
    /// PERMANENTFLAGS.
    pub permanent_flags: Vec<String>,
    /// True after EXAMINE (or a read-only SELECT).
    pub read_only: bool,
}

/// One message from a streamed UID FETCH. Holds its share of the byte budget until dropped.
#[derive(Debug)]
pub struct FetchedMessage {
    /// UID.
    pub uid: u32,
    /// FLAGS (without `\Recent`).
    pub flags: Vec<String>,
    /// INTERNALDATE.
    pub internal_date: Option<InternalDate>,
    /// RFC822.SIZE.
    pub size: Option<u32>,
    /// Selected header fields.
    pub header: Option<Bytes>,
    /// The whole message (`BODY[]`), held once.
    pub body: Option<Bytes>,
    /// MODSEQ.
    pub modseq: Option<u64>,
    /// X-GM-MSGID.
    pub gmail_msgid: Option<u64>,
    /// X-GM-LABELS.
    pub gmail_labels: Option<Vec<String>>,
    /// Budget held for this message's bytes; released on drop.
    pub reservation: Reservation,
}

/// Options for [`Session::fetch`].
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// What to fetch.
    pub items: FetchItems,
    /// UIDs per UID FETCH command.
    pub batch_size: usize,
    /// UID FETCH commands kept in flight (pipelining).
    pub pipeline: usize,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            items: FetchItems::default(),
            batch_size: 250,
            pipeline: 2,
        }
    }
}

/// UIDPLUS result of one APPEND.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendUid {
    /// UIDVALIDITY of the target mailbox.
    pub uid_validity: u32,
    /// UID the message got.
    pub uid: u32,
}

/// An authenticated (or not yet authenticated) IMAP connection.
pub struct Session {
    io: Box<dyn Io>,
    reader: ResponseReader,
    enc: Encoder,
    wbuf: Vec<u8>,
    caps: Vec<String>,
    config: ClientConfig,
    pending: Reservation,
    bye: Option<String>,
    delimiter: Option<Option<char>>,
    user: Option<String>,
    /// Tags of commands whose responses nobody is waiting for (a FetchStream dropped early).
    abandoned: Vec<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("host", &self.config.host)
            .field("user", &self.user)
            .field("capabilities", &self.caps)
            .finish_non_exhaustive()
    }
}

/// Reads one response from `io` through `reader`, reserving budget for announced literals.
async fn read_one<S: AsyncRead + Unpin + ?Sized>(
    io: &mut S,
    reader: &mut ResponseReader,
    budget: Option<&ByteBudget>,
    pending: &mut Reservation,
    limit: Duration,
) -> Result<Response, Error> {
    loop {
        match reader.poll()? {
            Progress::Response(r) => return Ok(r),
            Progress::LiteralAnnounced(n) => {
                if let Some(b) = budget {
                    pending.merge(b.reserve(n).await);
                }
            }
            Progress::NeedMore(_) => {
                let buf = reader.buffer_mut();
                if buf.capacity() - buf.len() < 16 * 1024 {
                    buf.reserve(256 * 1024);
                }
                let n = tokio::time::timeout(limit, io.read_buf(buf))
                    .await
                    .map_err(|_| Error::Timeout {
                        during: "waiting for the server",
                        after: limit,
                    })??;
                if n == 0 {
                    return Err(Error::ConnectionClosed);
                }
            }
        }
    }
}

fn status_error(command: &str, c: &Condition) -> Error {
    if let Some(backoff) = parse_throttle(&c.text) {
        return Error::Throttled {
            backoff,
            text: c.text.clone(),
        };
    }
    let code = match &c.code {
        Some(Code::Other(s)) => Some(s.clone()),
        Some(Code::TryCreate) => Some("TRYCREATE".into()),
        Some(other) => Some(format!("{other:?}").to_ascii_uppercase()),
        None => None,
    };
    match c.status {
        Status::Bad => Error::Bad {
            command: command.to_owned(),
            text: c.text.clone(),
        },
        Status::Bye => Error::Bye {
            text: c.text.clone(),
        },
        _ => Error::No {
            command: command.to_owned(),
            code,
            text: c.text.clone(),
        },
    }
}

impl Session {
    /// Connects, reads the greeting and (for [`Security::StartTls`]) upgrades to TLS.
    /// The session is not logged in yet; see [`Session::login`].
    pub async fn connect(config: &ClientConfig) -> Result<Session, Error> {
        let t = config.timeouts;
        let mut tcp = connect_tcp(&config.host, config.port, t.connect).await?;
        let mut reader = ResponseReader::new(config.max_literal);
        let mut pending = Reservation::default();
        let io: Box<dyn Io> = match config.security {
            Security::Tls => wrap_tls(tcp, &config.host, &config.tls, t.connect).await?,
            Security::Plaintext => {
                tracing::debug!(host = %config.host, "plaintext IMAP connection (asked for by name)");
                Box::new(tcp)
            }
            Security::StartTls => {
                let greeting =
                    read_one(&mut tcp, &mut reader, None, &mut pending, t.connect).await?;
                check_greeting(&greeting)?;
                tcp.write_all(b"S0 STARTTLS\r\n").await?;
                loop {
                    match read_one(&mut tcp, &mut reader, None, &mut pending, t.connect).await? {
                        Response::Tagged { tag, condition } if tag == "S0" => {
                            if condition.status != Status::Ok {
                                return Err(Error::Tls {
                                    host: config.host.clone(),
                                    message: format!("server refused STARTTLS: {}", condition.text),
                                });
                            }
                            break;
                        }
                        _ => {}
                    }
                }
                if reader.buffered() > 0 {
                    return Err(Error::protocol(
                        "data after STARTTLS response (possible injection)",
                        b"",
                    ));
                }
                wrap_tls(tcp, &config.host, &config.tls, t.connect).await?
            }
        };
        let mut s = Session {
            io,
            reader,
            enc: Encoder::new(),
            wbuf: Vec::with_capacity(64 * 1024),
            caps: Vec::new(),
            config: config.clone(),
            pending,
            bye: None,
            delimiter: None,
            user: None,
            abandoned: Vec::new(),
        };
        if config.security != Security::StartTls {
            let g = s.read_response().await?;
            check_greeting(&g)?;
            if let Response::Untagged(Untagged::Condition(Condition {
                code: Some(Code::Capabilities(c)),
                ..
            })) = g
            {
                s.set_caps(c);
            }
        }
        if s.caps.is_empty() {
            s.refresh_capabilities().await?;
        }
        Ok(s)
    }

    /// Connects and logs in; then sends ID if configured and supported.
    pub async fn open(config: &ClientConfig, auth: &Auth) -> Result<Session, Error> {
        let mut s = Self::connect(config).await?;
        s.login(auth).await?;
        if let Some(fields) = config.client_id.clone()
            && s.has_capability("ID")
        {
            // ID is informational; a failure must not break the session.
            if let Err(e) = s.id(fields).await {
                tracing::debug!(error = %e, "ID failed");
            }
        }
        Ok(s)
    }

    fn set_caps(&mut self, caps: Vec<String>) {
        self.caps = caps;
        self.enc.literal_mode = if self.has_capability("LITERAL+") {
            LiteralMode::Plus
        } else if self.has_capability("LITERAL-") {
            LiteralMode::Minus
        } else {
            LiteralMode::Sync
        };
    }

    /// Capabilities as last seen (refreshed after login).
    pub fn capabilities(&self) -> &[String] {
        &self.caps
    }

    /// True if the server advertised `cap` (case-insensitive).
    pub fn has_capability(&self, cap: &str) -> bool {
        self.caps.iter().any(|c| c.eq_ignore_ascii_case(cap))
    }

    /// APPENDLIMIT (RFC 7889), if advertised with a value.
    pub fn append_limit(&self) -> Option<u64> {
        self.caps.iter().find_map(|c| {
            let (k, v) = c.split_once('=')?;
            if k.eq_ignore_ascii_case("APPENDLIMIT") {
                v.parse().ok()
            } else {
                None
            }
        })
    }

    /// Asks the server for its capabilities.
    pub async fn refresh_capabilities(&mut self) -> Result<Vec<String>, Error> {
        let (data, _) = self.run(&Command::Capability).await?;
        for d in data {
            if let Untagged::Capabilities(c) = d {
                self.set_caps(c);
            }
        }
        Ok(self.caps.clone())
    }

    async fn read_response(&mut self) -> Result<Response, Error> {
        let limit = self.config.timeouts.read;
        let r = read_one(
            &mut self.io,
            &mut self.reader,
            self.config.budget.as_ref(),
            &mut self.pending,
            limit,
        )
        .await;
        match r {
            Ok(Response::Untagged(Untagged::Condition(c))) if c.status == Status::Bye => {
                self.bye = Some(c.text.clone());
                Ok(Response::Untagged(Untagged::Condition(c)))
            }
            Err(Error::ConnectionClosed) => Err(match self.bye.take() {
                Some(text) => match parse_throttle(&text) {
                    Some(backoff) => Error::Throttled { backoff, text },
                    None => Error::Bye { text },
                },
                None => Error::ConnectionClosed,
            }),
            other => other,
        }
    }

    async fn flush_wbuf(&mut self) -> Result<(), Error> {
        if !self.wbuf.is_empty() {
            self.io.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Reads and discards the responses of abandoned commands (releasing their budget).
    async fn drain_abandoned(&mut self) -> Result<(), Error> {
        while !self.abandoned.is_empty() {
            self.flush().await?;
            match self.read_response().await? {
                Response::Tagged { tag, .. } => {
                    self.abandoned.retain(|t| *t != tag);
                }
                Response::Untagged(Untagged::Condition(c)) if c.status == Status::Bye => {}
                _ => {}
            }
            drop(std::mem::take(&mut self.pending));
        }
        Ok(())
    }

    /// Writes a command; waits for `+` before sync literals. Does not flush the socket.
    async fn send(&mut self, cmd: &Encoded) -> Result<(), Error> {
        if !self.abandoned.is_empty() && !cmd.tag.is_empty() {
            self.drain_abandoned().await?;
        }
        for part in &cmd.parts {
            match part {
                Part::Text(t) => self.wbuf.extend_from_slice(t),
                Part::Literal { data, sync } => {
                    if *sync {
                        self.flush_wbuf().await?;
                        self.io.flush().await?;
                        self.wait_continuation(cmd).await?;
                    }
                    if data.len() < 32 * 1024 {
                        self.wbuf.extend_from_slice(data);
                    } else {
                        self.flush_wbuf().await?;
                        self.io.write_all(data).await?;
                    }
                }
            }
            if self.wbuf.len() >= 64 * 1024 {
                self.flush_wbuf().await?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Error> {
        self.flush_wbuf().await?;
        self.io.flush().await?;
        Ok(())
    }

    async fn wait_continuation(&mut self, cmd: &Encoded) -> Result<(), Error> {
        loop {
            match self.read_response().await? {
                Response::Continue { .. } => return Ok(()),
                Response::Tagged { tag, condition } if tag == cmd.tag => {
                    return Err(status_error(cmd.name, &condition));
                }
                Response::Tagged { tag, .. } => {
                    return Err(Error::protocol(
                        format!("unexpected completion for {tag}"),
                        b"",
                    ));
                }
                Response::Untagged(Untagged::Condition(c)) if c.status == Status::Bye => {
                    return Err(Error::Bye { text: c.text });
                }
                Response::Untagged(_) => {}
            }
        }
    }

    /// Runs one command to completion: untagged data and the OK condition, or a typed error.
    pub async fn run(&mut self, cmd: &Command) -> Result<(Vec<Untagged>, Condition), Error> {
        let enc = self.enc.encode(cmd)?;
        self.send(&enc).await?;
        self.flush().await?;
        let mut data = Vec::new();
        loop {
            match self.read_response().await? {
                Response::Tagged { tag, condition } if tag == enc.tag => {
                    drop(std::mem::take(&mut self.pending));
                    return if condition.status == Status::Ok {
                        Ok((data, condition))
                    } else {
                        Err(status_error(enc.name, &condition))
                    };
                }
                Response::Tagged { tag, .. } => {
                    return Err(Error::protocol(
                        format!("completion for unknown tag {tag}"),
                        b"",
                    ));
                }
                Response::Continue { .. } => {
                    return Err(Error::protocol("unexpected continuation request", b""));
                }
                Response::Untagged(u) => data.push(u),
            }
        }
    }

    /// Logs in with `auth`, then refreshes capabilities.
    pub async fn login(&mut self, auth: &Auth) -> Result<(), Error> {
        let user = auth.display_user();
        if self.has_capability("LOGINDISABLED") && matches!(auth, Auth::Login { .. }) {
            return Err(Error::LoginFailed {
                user,
                text: "server disabled LOGIN on this connection (LOGINDISABLED); use TLS".into(),
            });
        }
        let result = match auth {
            Auth::Login { user, password } => {
                self.run(&Command::Login {
                    user: user.clone(),
                    password: password.clone(),
                })
                .await
            }
            Auth::Plain {
                authorize_as,
                user,
                password,
            } => {
                let ir = plain_response(authorize_as.as_deref(), user, password);
                self.authenticate("PLAIN", ir).await
            }
            Auth::XOAuth2 { user, tokens } => {
                let token = tokens.token().await?;
                self.authenticate("XOAUTH2", xoauth2_response(user, &token))
                    .await
            }
            Auth::OAuthBearer { user, tokens } => {
                let token = tokens.token().await?;
                self.authenticate("OAUTHBEARER", oauthbearer_response(user, &token))
                    .await
            }
        };
        let (data, cond) = result.map_err(|e| match e {
            Error::No { text, .. } | Error::Bad { text, .. } => Error::LoginFailed {
                user: user.clone(),
                text,
            },
            other => other,
        })?;
        self.user = Some(user);
        let mut caps = None;
        for d in data {
            if let Untagged::Capabilities(c) = d {
                caps = Some(c);
            }
        }
        if let Some(Code::Capabilities(c)) = cond.code {
            caps = Some(c);
        }
        match caps {
            Some(c) => self.set_caps(c),
            None => {
                self.refresh_capabilities().await?;
            }
        }
        Ok(())
    }

    async fn authenticate(
        &mut self,
        mech: &'static str,
        ir: crate::Secret,
    ) -> Result<(Vec<Untagged>, Condition), Error> {
        let sasl_ir = self.has_capability("SASL-IR");
        let cmd = Command::Authenticate {
            mechanism: mech,
            initial_response: sasl_ir.then(|| ir.clone()),
        };
        let enc = self.enc.encode(&cmd)?;
        self.send(&enc).await?;
        self.flush().await?;
        let mut sent = sasl_ir;
        let mut data = Vec::new();
        loop {
            match self.read_response().await? {
                Response::Continue { .. } => {
                    // First challenge: send the response; later ones are error details
                    // (XOAUTH2/OAUTHBEARER) answered with an empty line / ^A.
                    let line = if !sent {
                        sent = true;
                        ir.expose().to_owned()
                    } else if mech == "OAUTHBEARER" {
                        "AQ==".to_owned()
                    } else {
                        String::new()
                    };
                    self.send(&Encoder::sasl_line(&line)).await?;
                    self.flush().await?;
                }
                Response::Tagged { tag, condition } if tag == enc.tag => {
                    return if condition.status == Status::Ok {
                        Ok((data, condition))
                    } else {
                        Err(status_error("AUTHENTICATE", &condition))
                    };
                }
                Response::Tagged { tag, .. } => {
                    return Err(Error::protocol(
                        format!("completion for unknown tag {tag}"),
                        b"",
                    ));
                }
                Response::Untagged(u) => data.push(u),
            }
        }
    }

    /// ID (RFC 2971): sends our fields, returns the server's.
    pub async fn id(
        &mut self,
        fields: Vec<(String, String)>,
    ) -> Result<Vec<(String, String)>, Error> {
        let (data, _) = self.run(&Command::Id(fields)).await?;
        Ok(data
            .into_iter()
            .find_map(|d| {
                if let Untagged::Id(v) = d {
                    Some(v)
                } else {
                    None
                }
            })
            .unwrap_or_default())
    }

    /// ENABLE (RFC 5161): returns what the server enabled.
    pub async fn enable(&mut self, caps: &[&str]) -> Result<Vec<String>, Error> {
        if !self.has_capability("ENABLE") {
            return Err(Error::Unsupported("ENABLE".into()));
        }
        let (data, _) = self
            .run(&Command::Enable(
                caps.iter().map(|s| (*s).to_owned()).collect(),
            ))
            .await?;
        Ok(data
            .into_iter()
            .flat_map(|d| {
                if let Untagged::Enabled(v) = d {
                    v
                } else {
                    Vec::new()
                }
            })
            .collect())
    }

    /// NOOP.
    pub async fn noop(&mut self) -> Result<Vec<Untagged>, Error> {
        Ok(self.run(&Command::Noop).await?.0)
    }

    /// LOGOUT and close.
    pub async fn logout(mut self) -> Result<(), Error> {
        match self.run(&Command::Logout).await {
            Ok(_) | Err(Error::Bye { .. }) | Err(Error::ConnectionClosed) => {}
            Err(e) => return Err(e),
        }
        let _ = self.io.shutdown().await;
        Ok(())
    }

    /// NAMESPACE (RFC 2342), if supported.
    pub async fn namespace(&mut self) -> Result<Option<Namespaces>, Error> {
        if !self.has_capability("NAMESPACE") {
            return Ok(None);
        }
        let (data, _) = self.run(&Command::Namespace).await?;
        Ok(data.into_iter().find_map(|d| {
            if let Untagged::Namespace(n) = d {
                Some(n)
            } else {
                None
            }
        }))
    }

    /// The hierarchy delimiter (`LIST "" ""`), cached.
    pub async fn delimiter(&mut self) -> Result<Option<char>, Error> {
        if let Some(d) = self.delimiter {
            return Ok(d);
        }
        let (data, _) = self
            .run(&Command::List {
                reference: String::new(),
                pattern: String::new(),
                special_use: false,
                status: vec![],
            })
            .await?;
        let d = data
            .into_iter()
            .find_map(|d| {
                if let Untagged::List(l) = d {
                    Some(l.delimiter)
                } else {
                    None
                }
            })
            .flatten();
        self.delimiter = Some(d);
        Ok(d)
    }

    /// Lists all mailboxes with special-use roles and STATUS (MESSAGES UIDNEXT UIDVALIDITY
    /// [HIGHESTMODSEQ]) — in one LIST-STATUS command when advertised, else one STATUS per mailbox.
    pub async fn list_mailboxes(&mut self, with_status: bool) -> Result<Vec<Mailbox>, Error> {
        let special_use = self.has_capability("SPECIAL-USE");
        let list_status = with_status && self.has_capability("LIST-STATUS");
        let mut items = vec![
            StatusItem::Messages,
            StatusItem::UidNext,
            StatusItem::UidValidity,
        ];
        if self.has_capability("CONDSTORE") {
            items.push(StatusItem::HighestModSeq);
        }
        let cmd = Command::List {
            reference: String::new(),
            pattern: "*".into(),
            special_use,
            status: if list_status { items.clone() } else { vec![] },
        };
        let (data, _) = self.run(&cmd).await?;
        let mut out: Vec<Mailbox> = Vec::new();
        let mut statuses: HashMap<String, StatusData> = HashMap::new();
        for d in data {
            match d {
                Untagged::List(l) => out.push(mailbox_from(l)),
                Untagged::Status(s) => {
                    statuses.insert(s.mailbox.clone(), s);
                }
                _ => {}
            }
        }
        if let Some(first) = out.first() {
            self.delimiter = Some(first.delimiter);
        }
        for m in &mut out {
            m.status = statuses.remove(&m.name);
        }
        if with_status && !list_status {
            for m in &mut out {
                if m.selectable {
                    m.status = Some(self.status(&m.name, &items).await?);
                }
            }
        }
        Ok(out)
    }

    /// STATUS of one mailbox.
    pub async fn status(
        &mut self,
        mailbox: &str,
        items: &[StatusItem],
    ) -> Result<StatusData, Error> {
        let (data, _) = self
            .run(&Command::Status {
                mailbox: mailbox.to_owned(),
                items: items.to_vec(),
            })
            .await?;
        data.into_iter()
            .find_map(|d| {
                if let Untagged::Status(s) = d {
                    Some(s)
                } else {
                    None
                }
            })
            .ok_or_else(|| Error::protocol(format!("no STATUS data for {mailbox:?}"), b""))
    }

    async fn open_mailbox(
        &mut self,
        mailbox: &str,
        examine: bool,
    ) -> Result<SelectedMailbox, Error> {
        let condstore = self.has_capability("CONDSTORE");
        let cmd = if examine {
            Command::Examine {
                mailbox: mailbox.to_owned(),
                condstore,
            }
        } else {
            Command::Select {
                mailbox: mailbox.to_owned(),
                condstore,
            }
        };
        let (data, cond) = self.run(&cmd).await?;
        let mut m = SelectedMailbox {
            name: mailbox.to_owned(),
            read_only: examine,
            ..Default::default()
        };
        let apply = |code: Code, m: &mut SelectedMailbox| match code {
            Code::UidValidity(v) => m.uid_validity = Some(v),
            Code::UidNext(v) => m.uid_next = Some(v),
            Code::HighestModSeq(v) => m.highest_modseq = Some(v),
            Code::PermanentFlags(f) => m.permanent_flags = f,
            Code::ReadOnly => m.read_only = true,
            _ => {}
        };
        for d in data {
            match d {
                Untagged::Exists(n) => m.exists = n,
                Untagged::Flags(f) => m.flags = f,
                Untagged::Condition(Condition { code: Some(c), .. }) => apply(c, &mut m),
                _ => {}
            }
        }
        if let Some(c) = cond.code {
            apply(c, &mut m);
        }
        Ok(m)
    }

    /// EXAMINE (read-only; a migration never alters its source).
    pub async fn examine(&mut self, mailbox: &str) -> Result<SelectedMailbox, Error> {
        self.open_mailbox(mailbox, true).await
    }

    /// SELECT (read-write; for targets — APPEND into a selected mailbox is faster on Dovecot).
    pub async fn select(&mut self, mailbox: &str) -> Result<SelectedMailbox, Error> {
        self.open_mailbox(mailbox, false).await
    }

    /// UID SEARCH with ANDed criteria; returns sorted UIDs.
    pub async fn uid_search(&mut self, keys: &[SearchKey]) -> Result<Vec<u32>, Error> {
        let (data, _) = self.run(&Command::UidSearch(keys.to_vec())).await?;
        let mut v: Vec<u32> = data
            .into_iter()
            .flat_map(|d| {
                if let Untagged::Search(v) = d {
                    v
                } else {
                    Vec::new()
                }
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        Ok(v)
    }

    /// Streams UID FETCH results for `uids` in batches, pipelined. Call
    /// [`FetchStream::next`] until it returns `None`.
    pub fn fetch(&mut self, uids: &[u32], options: FetchOptions) -> FetchStream<'_> {
        let mut sorted = uids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let batch = options.batch_size.max(1);
        let batches = sorted.chunks(batch).map(UidSet::from_uids).collect();
        let mut items = options.items;
        if items.gmail && !self.has_capability("X-GM-EXT-1") {
            items.gmail = false;
        }
        FetchStream {
            session: self,
            batches,
            inflight: VecDeque::new(),
            items,
            pipeline: options.pipeline.max(1),
            failed: false,
        }
    }

    /// CREATE; with `parents`, creates missing parent levels first. An existing mailbox is fine.
    pub async fn create(&mut self, mailbox: &str, parents: bool) -> Result<(), Error> {
        let mut names = Vec::new();
        if parents && let Some(d) = self.delimiter().await? {
            let parts: Vec<&str> = mailbox.split(d).collect();
            for i in 1..parts.len() {
                names.push(parts[..i].join(&d.to_string()));
            }
        }
        names.push(mailbox.to_owned());
        for n in names {
            match self.run(&Command::Create { mailbox: n.clone() }).await {
                Ok(_) => {}
                Err(Error::No { code, text, .. })
                    if code.as_deref() == Some("ALREADYEXISTS")
                        || text.to_ascii_lowercase().contains("exists") => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// UID STORE flags (silently).
    pub async fn uid_store(
        &mut self,
        uids: &UidSet,
        mode: StoreMode,
        flags: &[String],
    ) -> Result<(), Error> {
        self.run(&Command::UidStore {
            uids: uids.clone(),
            mode,
            flags: flags.to_vec(),
            silent: true,
        })
        .await?;
        Ok(())
    }

    /// Appends messages, pipelined: with LITERAL+ (or LITERAL- for small messages) up to
    /// `window` APPEND commands are in flight; otherwise MULTIAPPEND in groups of `window`,
    /// otherwise one by one. Returns one result per message, in order, with the APPENDUID when
    /// the server has UIDPLUS. Messages above APPENDLIMIT fail with [`Error::AppendTooLarge`]
    /// without being sent.
    pub async fn append(
        &mut self,
        mailbox: &str,
        messages: Vec<AppendMessage>,
        window: usize,
    ) -> Result<Vec<Result<Option<AppendUid>, Error>>, Error> {
        let window = window.max(1);
        let limit = self.append_limit();
        let mut results: Vec<Option<Result<Option<AppendUid>, Error>>> =
            (0..messages.len()).map(|_| None).collect();
        let mut todo: VecDeque<(usize, AppendMessage)> = VecDeque::new();
        for (i, m) in messages.into_iter().enumerate() {
            match limit {
                Some(l) if m.data.len() as u64 > l => {
                    results[i] = Some(Err(Error::AppendTooLarge {
                        size: m.data.len() as u64,
                        limit: l,
                    }))
                }
                _ => todo.push_back((i, m)),
            }
        }
        let nonsync = self.enc.literal_mode == LiteralMode::Plus;
        if self.has_capability("MULTIAPPEND") && window > 1 && todo.len() > 1 {
            // MULTIAPPEND (RFC 3502): one command, and on servers like Dovecot one store
            // transaction, per group. It is atomic: a group answered NO stored nothing, so its
            // messages are retried one by one below, each getting its own result.
            let mut single: VecDeque<(usize, AppendMessage)> = VecDeque::new();
            while !todo.is_empty() {
                let group: Vec<(usize, AppendMessage)> =
                    todo.drain(..window.min(todo.len())).collect();
                let idx: Vec<usize> = group.iter().map(|g| g.0).collect();
                let msgs = group.iter().map(|g| g.1.clone()).collect();
                match self
                    .run(&Command::Append {
                        mailbox: mailbox.to_owned(),
                        messages: msgs,
                    })
                    .await
                {
                    Ok((_, cond)) => {
                        let uids = appenduids(&cond, idx.len());
                        for (k, i) in idx.iter().enumerate() {
                            results[*i] = Some(Ok(uids.as_ref().and_then(|u| u.get(k).copied())));
                        }
                    }
                    Err(e) if e.is_retryable() && !matches!(e, Error::No { .. }) => return Err(e),
                    Err(_) => single.extend(group),
                }
            }
            todo = single;
        }
        if !todo.is_empty() {
            let window = if nonsync { window } else { 1 };
            let mut inflight: HashMap<String, usize> = HashMap::new();
            // Set on throttling: nothing more is sent, but every completion in flight is still
            // read so each message's result is known (no duplicates on retry).
            let mut throttled: Option<(Option<Duration>, String)> = None;
            loop {
                while throttled.is_none()
                    && inflight.len() < window
                    && let Some((i, m)) = todo.pop_front()
                {
                    let enc = self.enc.encode(&Command::Append {
                        mailbox: mailbox.to_owned(),
                        messages: vec![m],
                    })?;
                    self.send(&enc).await?;
                    inflight.insert(enc.tag, i);
                }
                if inflight.is_empty() {
                    break;
                }
                self.flush().await?;
                match self.read_response().await? {
                    Response::Tagged { tag, condition } => {
                        let i = inflight.remove(&tag).ok_or_else(|| {
                            Error::protocol(format!("completion for unknown tag {tag}"), b"")
                        })?;
                        results[i] = Some(if condition.status == Status::Ok {
                            Ok(appenduids(&condition, 1).and_then(|v| v.first().copied()))
                        } else {
                            let e = status_error("APPEND", &condition);
                            if let Error::Throttled { backoff, text } = &e {
                                throttled = Some((*backoff, text.clone()));
                            }
                            Err(e)
                        });
                    }
                    Response::Untagged(Untagged::Condition(c)) if c.status == Status::Bye => {}
                    Response::Continue { .. } => {
                        return Err(Error::protocol(
                            "unexpected continuation during APPEND",
                            b"",
                        ));
                    }
                    Response::Untagged(_) => {}
                }
            }
            if let Some((backoff, text)) = throttled {
                for (i, _) in todo {
                    results[i] = Some(Err(Error::Throttled {
                        backoff,
                        text: format!("not sent: {text}"),
                    }));
                }
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::protocol("APPEND result missing", b""))))
            .collect())
    }

    /// IDLE until the server reports something or `wait` (capped at the idle timeout) passes.
    pub async fn idle(&mut self, wait: Duration) -> Result<Vec<Untagged>, Error> {
        if !self.has_capability("IDLE") {
            return Err(Error::Unsupported("IDLE".into()));
        }
        let wait = wait.min(self.config.timeouts.idle);
        let enc = self.enc.encode(&Command::Idle)?;
        self.send(&enc).await?;
        self.flush().await?;
        self.wait_continuation(&enc).await?;
        let mut got = Vec::new();
        if let Ok(r) = tokio::time::timeout(wait, self.read_response()).await
            && let Response::Untagged(u) = r?
        {
            got.push(u);
        }
        self.send(&Encoder::idle_done()).await?;
        self.flush().await?;
        loop {
            match self.read_response().await? {
                Response::Tagged { tag, condition } if tag == enc.tag => {
                    if condition.status != Status::Ok {
                        return Err(status_error("IDLE", &condition));
                    }
                    return Ok(got);
                }
                Response::Untagged(u) => got.push(u),
                _ => {}
            }
        }
    }
}

fn appenduids(cond: &Condition, n: usize) -> Option<Vec<AppendUid>> {
    if let Some(Code::AppendUid { uid_validity, uids }) = &cond.code
        && uids.len() == n
    {
        return Some(
            uids.iter()
                .map(|&uid| AppendUid {
                    uid_validity: *uid_validity,
                    uid,
                })
                .collect(),
        );
    }
    None
}

fn check_greeting(g: &Response) -> Result<(), Error> {
    match g {
        Response::Untagged(Untagged::Condition(c)) => match c.status {
            Status::Ok | Status::PreAuth => Ok(()),
            Status::Bye => Err(match parse_throttle(&c.text) {
                Some(backoff) => Error::Throttled {
                    backoff,
                    text: c.text.clone(),
                },
                None => Error::Bye {
                    text: c.text.clone(),
                },
            }),
            _ => Err(Error::protocol("greeting is not OK", c.text.as_bytes())),
        },
        _ => Err(Error::protocol("first response is not a greeting", b"")),
    }
}

fn mailbox_from(l: ListEntry) -> Mailbox {
    let selectable = !l
        .attributes
        .iter()
        .any(|a| a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent"));
    let special_use = l.attributes.iter().find_map(|a| SpecialUse::from_attr(a));
    Mailbox {
        name: l.name,
        raw_name: l.raw_name,
        delimiter: l.delimiter,
        attributes: l.attributes,
        special_use,
        selectable,
        status: None,
    }
}

/// A streamed, pipelined UID FETCH. The session is borrowed until this is dropped. Dropping it
/// early is safe: the responses still in flight are read and discarded before the session's
/// next command.
pub struct FetchStream<'a> {
    session: &'a mut Session,
    batches: VecDeque<UidSet>,
    inflight: VecDeque<String>,
    items: FetchItems,
    pipeline: usize,
    failed: bool,
}

impl std::fmt::Debug for FetchStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchStream")
            .field("batches_left", &self.batches.len())
            .field("inflight", &self.inflight)
            .finish()
    }
}

impl Drop for FetchStream<'_> {
    fn drop(&mut self) {
        // Responses still on their way are read and discarded before the session's next command.
        self.session.abandoned.extend(self.inflight.drain(..));
    }
}

impl FetchStream<'_> {
    async fn fill(&mut self) -> Result<(), Error> {
        let mut sent = false;
        while self.inflight.len() < self.pipeline
            && let Some(set) = self.batches.pop_front()
        {
            let enc = self.session.enc.encode(&Command::UidFetch {
                uids: set,
                items: self.items.clone(),
            })?;
            self.session.send(&enc).await?;
            self.inflight.push_back(enc.tag);
            sent = true;
        }
        if sent {
            self.session.flush().await?;
        }
        Ok(())
    }

    /// The next message, `None` when all batches are done.
    pub async fn next(&mut self) -> Option<Result<FetchedMessage, Error>> {
        if self.failed {
            return None;
        }
        let r = self.next_inner().await;
        if matches!(r, Some(Err(_))) {
            self.failed = true;
        }
        r
    }

    async fn next_inner(&mut self) -> Option<Result<FetchedMessage, Error>> {
        loop {
            if let Err(e) = self.fill().await {
                return Some(Err(e));
            }
            if self.inflight.is_empty() {
                return None;
            }
            let resp = match self.session.read_response().await {
                Ok(r) => r,
                Err(e) => return Some(Err(e)),
            };
            match resp {
                Response::Untagged(Untagged::Fetch(f)) => {
                    let reservation = std::mem::take(&mut self.session.pending);
                    let Some(uid) = f.uid else {
                        if f.body.is_some() {
                            return Some(Err(Error::protocol(
                                format!("FETCH response for message {} without UID", f.seq),
                                b"",
                            )));
                        }
                        continue; // unsolicited flag update
                    };
                    if self.items.body && f.body.is_none() {
                        if f.flags.is_some() && f.internal_date.is_none() && f.size.is_none() {
                            continue; // unsolicited FLAGS change for a message in the mailbox
                        }
                        return Some(Err(Error::protocol(
                            format!("FETCH response for UID {uid} lacks BODY[]"),
                            b"",
                        )));
                    }
                    let flags = f
                        .flags
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|x| !x.eq_ignore_ascii_case("\\Recent"))
                        .collect();
                    return Some(Ok(FetchedMessage {
                        uid,
                        flags,
                        internal_date: f.internal_date,
                        size: f.size,
                        header: f.header,
                        body: f.body,
                        modseq: f.modseq,
                        gmail_msgid: f.gmail_msgid,
                        gmail_labels: f.gmail_labels,
                        reservation,
                    }));
                }
                Response::Tagged { tag, condition } => {
                    if self.inflight.front() != Some(&tag) {
                        return Some(Err(Error::protocol(
                            format!("completion for unexpected tag {tag}"),
                            b"",
                        )));
                    }
                    self.inflight.pop_front();
                    if condition.status != Status::Ok {
                        return Some(Err(status_error("UID FETCH", &condition)));
                    }
                }
                Response::Untagged(Untagged::Condition(c)) if c.status == Status::Bye => {
                    // Wait for the close to turn it into Bye/Throttled.
                    continue;
                }
                Response::Continue { .. } => {
                    return Some(Err(Error::protocol(
                        "unexpected continuation during FETCH",
                        b"",
                    )));
                }
                Response::Untagged(_) => {}
            }
        }
    }
}

/// Re-establishes sessions (with a fresh OAuth token each time) and resumes after the last UID seen.
#[derive(Clone, Debug)]
pub struct Reconnector {
    /// Connection settings.
    pub config: ClientConfig,
    /// Login.
    pub auth: Auth,
    /// Attempts per [`Reconnector::connect`] for retryable errors.
    pub attempts: u32,
    /// Back-off between attempts when the server suggests none.
    pub backoff: Duration,
}

impl Reconnector {
    /// A reconnector trying 3 times with 2 s between attempts.
    pub fn new(config: ClientConfig, auth: Auth) -> Self {
        Reconnector {
            config,
            auth,
            attempts: 3,
            backoff: Duration::from_secs(2),
        }
    }

    /// Connects and logs in, retrying retryable failures (honouring a server's suggested back-off).
    pub async fn connect(&self) -> Result<Session, Error> {
        let mut last = None;
        for attempt in 0..self.attempts.max(1) {
            match Session::open(&self.config, &self.auth).await {
                Ok(s) => return Ok(s),
                Err(e) if e.is_retryable() && attempt + 1 < self.attempts => {
                    let wait = e.retry_after().unwrap_or(self.backoff);
                    tracing::warn!(error = %e, ?wait, "reconnecting");
                    tokio::time::sleep(wait).await;
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(Error::ConnectionClosed))
    }

    /// Reconnects, EXAMINEs `mailbox`, checks UIDVALIDITY is still `uid_validity`, and returns
    /// the session plus the UIDs after `last_uid_seen` (sorted), ready for [`Session::fetch`].
    pub async fn resume(
        &self,
        mailbox: &str,
        uid_validity: u32,
        last_uid_seen: u32,
    ) -> Result<(Session, Vec<u32>), Error> {
        let mut s = self.connect().await?;
        let m = s.examine(mailbox).await?;
        if let Some(found) = m.uid_validity
            && found != uid_validity
        {
            return Err(Error::UidValidityChanged {
                mailbox: mailbox.to_owned(),
                expected: uid_validity,
                found,
            });
        }
        let next = last_uid_seen.saturating_add(1);
        let uids = s
            .uid_search(&[SearchKey::Uid(UidSet::from_onwards(next))])
            .await?;
        // `n:*` always matches the highest UID even when it is below n.
        let uids = uids.into_iter().filter(|&u| u > last_uid_seen).collect();
        Ok((s, uids))
    }
}
