//! The tokio driver: a thin loop around the sans-IO core.
//!
//! This file holds the connection itself ([`ClientConfig`], [`Session`]: connect, login, the
//! command loop, ID / ENABLE / NOOP / IDLE / LOGOUT). The submodules add the mailbox commands
//! (`mailbox`), streamed FETCH (`fetch`), APPEND (`append`) and reconnecting (`reconnect`).

use crate::auth::{Auth, oauthbearer_response, plain_response, xoauth2_response};
use crate::command::{Encoded, Encoder, LiteralMode, Part};
use crate::core::{DEFAULT_MAX_LITERAL, Progress, ResponseReader};
use crate::transport::{Io, Security, Timeouts, TlsOptions, connect_tcp, wrap_tls};
use crate::{
    ByteBudget, Code, Command, Condition, Error, Reservation, Response, Status, Untagged,
    parse_throttle,
};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

mod append;
mod changes;
mod fetch;
mod mailbox;
mod reconnect;

pub use append::AppendUid;
pub use changes::{FlagsOf, Moved};
pub use fetch::{FetchOptions, FetchStream, FetchedMessage};
pub use mailbox::{Mailbox, SelectedMailbox, SpecialUse};
pub use reconnect::Reconnector;

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
