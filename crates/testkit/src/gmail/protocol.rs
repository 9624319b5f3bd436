//! The IMAP side of [`GmailServer`](super::GmailServer): accepting, reading commands (with
//! literals), parsing and answering them.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::{
    BANDWIDTH_EXCEEDED, INVALID_CREDENTIALS, MAIL_SCOPE, Msg, SYSTEM_FOLDERS, Shared,
    TOO_MANY_CONNECTIONS, XOAUTH2_ERROR_JSON, folder_label,
};
use crate::certs::TestPki;
use crate::error::{Error, Result};
use crate::utf7;

const CAPABILITY: &str = "IMAP4rev1 UNSELECT ID NAMESPACE CHILDREN X-GM-EXT-1 SPECIAL-USE \
                          LITERAL+ SASL-IR AUTH=XOAUTH2 AUTH=PLAIN AUTH=OAUTHBEARER";
const MAX_LINE: usize = 64 * 1024;
const MAX_LITERAL: usize = 64 * 1024 * 1024;
const MAX_COMMAND_BYTES: usize = 80 * 1024 * 1024;

pub(super) fn tls_acceptor(pki: &TestPki) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |e: String| Error::Certificate(e);
    let certs = CertificateDer::pem_slice_iter(pki.server_cert_pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes())
        .map_err(|e| bad(e.to_string()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| bad(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

pub(super) async fn accept(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    while let Ok((sock, _)) = listener.accept().await {
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                Some(tls) => {
                    if let Ok(s) = tls.accept(sock).await {
                        serve(s, shared).await;
                    }
                }
                None => serve(sock, shared).await,
            }
        });
    }
}

/// A parsed token of a command.
#[derive(Debug, Clone)]
enum Tok {
    Atom(String),
    Str(Vec<u8>),
    List(Vec<Tok>),
}

impl Tok {
    fn text(&self) -> Option<String> {
        match self {
            Tok::Atom(a) => Some(a.clone()),
            Tok::Str(s) => String::from_utf8(s.clone()).ok(),
            Tok::List(_) => None,
        }
    }
    fn upper(&self) -> String {
        self.text().unwrap_or_default().to_ascii_uppercase()
    }
}

fn parse(input: &[u8]) -> std::result::Result<Vec<Tok>, String> {
    let mut pos = 0;
    let toks = parse_seq(input, &mut pos, 0)?;
    if pos < input.len() {
        return Err("unbalanced parenthesis".into());
    }
    Ok(toks)
}

fn parse_seq(b: &[u8], pos: &mut usize, depth: usize) -> std::result::Result<Vec<Tok>, String> {
    if depth > 8 {
        return Err("lists nested too deeply".into());
    }
    let mut out = Vec::new();
    while *pos < b.len() {
        match b[*pos] {
            b' ' => *pos += 1,
            b')' => return Ok(out),
            b'(' => {
                *pos += 1;
                let inner = parse_seq(b, pos, depth + 1)?;
                if b.get(*pos) != Some(&b')') {
                    return Err("missing closing parenthesis".into());
                }
                *pos += 1;
                out.push(Tok::List(inner));
            }
            b'"' => {
                *pos += 1;
                let mut s = Vec::new();
                loop {
                    match b.get(*pos) {
                        None => return Err("unterminated quoted string".into()),
                        Some(b'"') => break,
                        Some(b'\\') => {
                            s.push(*b.get(*pos + 1).ok_or("unterminated quoted string")?);
                            *pos += 2;
                        }
                        Some(c) => {
                            s.push(*c);
                            *pos += 1;
                        }
                    }
                }
                *pos += 1;
                out.push(Tok::Str(s));
            }
            b'{' => {
                let end = b[*pos..]
                    .iter()
                    .position(|&c| c == b'}')
                    .ok_or("bad literal")?;
                let spec = std::str::from_utf8(&b[*pos + 1..*pos + end]).unwrap_or("");
                let n: usize = spec
                    .trim_end_matches('+')
                    .parse()
                    .map_err(|_| "bad literal length")?;
                let start = *pos + end + 3;
                let data = b
                    .get(start..start + n)
                    .ok_or("literal shorter than announced")?;
                out.push(Tok::Str(data.to_vec()));
                *pos = start + n;
            }
            _ => {
                let start = *pos;
                let mut bracket = 0usize;
                while let Some(&c) = b.get(*pos) {
                    match c {
                        b'[' => bracket += 1,
                        b']' => bracket = bracket.saturating_sub(1),
                        b' ' | b'(' | b')' if bracket == 0 => break,
                        _ => {}
                    }
                    *pos += 1;
                }
                out.push(Tok::Atom(
                    String::from_utf8_lossy(&b[start..*pos]).into_owned(),
                ));
            }
        }
    }
    Ok(out)
}

/// Reads one line (with CRLF), at most [`MAX_LINE`] bytes; `None` at EOF.
async fn read_line<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    let n = (&mut *r)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)
        .await
        .ok()?;
    (n > 0 && line.ends_with(b"\n")).then_some(line)
}

/// Reads a whole command with its literals (answering `+` for synchronizing ones).
async fn read_command<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    r: &mut BufReader<R>,
    w: &mut W,
) -> Option<Vec<u8>> {
    let mut cmd = Vec::new();
    loop {
        let line = read_line(r).await?;
        cmd.extend_from_slice(&line);
        let trimmed = line.strip_suffix(b"\r\n").unwrap_or(&line);
        let Some(open) = trimmed.iter().rposition(|&c| c == b'{') else {
            break;
        };
        let Some(spec) = trimmed[open + 1..].strip_suffix(b"}") else {
            break;
        };
        let (digits, sync) = match spec.strip_suffix(b"+") {
            Some(d) => (d, false),
            None => (spec, true),
        };
        let Some(n) = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse::<usize>().ok())
        else {
            break;
        };
        if n > MAX_LITERAL || cmd.len() + n > MAX_COMMAND_BYTES {
            return None;
        }
        if sync {
            w.write_all(b"+ go ahead\r\n").await.ok()?;
            w.flush().await.ok()?;
        }
        let start = cmd.len();
        cmd.resize(start + n, 0);
        r.read_exact(&mut cmd[start..]).await.ok()?;
    }
    while cmd.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
        cmd.pop();
    }
    Some(cmd)
}

/// One connection's state.
struct Conn {
    shared: Arc<Shared>,
    user: Option<String>,
    selected: Option<(String, bool)>,
    exists: usize,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(user) = &self.user
            && let Some(a) = self.shared.lock().accounts.get_mut(user)
        {
            a.stats.connections = a.stats.connections.saturating_sub(1);
        }
    }
}

type Out = Vec<u8>;

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S, shared: Arc<Shared>) {
    let (r, mut w) = tokio::io::split(stream);
    let mut r = BufReader::new(r);
    let mut conn = Conn {
        shared,
        user: None,
        selected: None,
        exists: 0,
    };
    if w.write_all(b"* OK Gimap ready for requests from 127.0.0.1 testkit0\r\n")
        .await
        .is_err()
    {
        return;
    }
    while let Some(cmd) = read_command(&mut r, &mut w).await {
        let toks = match parse(&cmd) {
            Ok(t) => t,
            Err(e) => {
                let tag = cmd.split(|c| *c == b' ').next().unwrap_or(b"*");
                let line = format!("{} BAD Could not parse command: {e}\r\n", lossy(tag));
                if w.write_all(line.as_bytes()).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let Some(Tok::Atom(tag)) = toks.first().cloned() else {
            if w.write_all(b"* BAD Empty command line\r\n").await.is_err() {
                return;
            }
            continue;
        };
        let mut out = Out::new();
        let end = conn
            .command(&tag, &toks[1..], &mut out, &mut r, &mut w)
            .await;
        if w.write_all(&out).await.is_err() || w.flush().await.is_err() || end {
            let _ = w.shutdown().await;
            return;
        }
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Conn {
    /// Runs one command; true when the connection must close.
    async fn command<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
        &mut self,
        tag: &str,
        args: &[Tok],
        out: &mut Out,
        r: &mut BufReader<R>,
        w: &mut W,
    ) -> bool {
        let name = args.first().map(Tok::upper).unwrap_or_default();
        let args = args.get(1..).unwrap_or(&[]);
        let (uid, name, args) = if name == "UID" {
            (
                true,
                args.first().map(Tok::upper).unwrap_or_default(),
                args.get(1..).unwrap_or(&[]),
            )
        } else {
            (false, name, args)
        };
        let result = match (name.as_str(), self.user.is_some(), self.selected.is_some()) {
            ("CAPABILITY", ..) => {
                out.extend(format!("* CAPABILITY {CAPABILITY}\r\n").as_bytes());
                Ok("Thats all she wrote!".to_owned())
            }
            ("NOOP", ..) => Ok(self.noop(out)),
            ("LOGOUT", ..) => {
                out.extend(b"* BYE LOGOUT Requested\r\n");
                out.extend(format!("{tag} OK 73 good day (Success)\r\n").as_bytes());
                return true;
            }
            ("ID", ..) => {
                out.extend(b"* ID (\"name\" \"GImap\" \"vendor\" \"Google, Inc.\" \"support-url\" \"https://support.google.com/mail\")\r\n");
                Ok("Success".into())
            }
            ("LOGIN", false, _) => self.login(args),
            ("AUTHENTICATE", false, _) => self.authenticate(args, r, w).await,
            ("LOGIN" | "AUTHENTICATE", true, _) => Err(bad("Already authenticated")),
            ("NAMESPACE", true, _) => {
                out.extend(b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
                Ok("Success".into())
            }
            ("LIST", true, _) => self.list(args, out),
            ("STATUS", true, _) => self.status(args, out),
            ("SELECT" | "EXAMINE", true, _) => self.select(args, name == "EXAMINE", out),
            ("CLOSE" | "UNSELECT", true, true) => {
                self.selected = None;
                Ok("Returned to authenticated state. (Success)".into())
            }
            ("SEARCH", true, true) => self.search(uid, args, out),
            ("FETCH", true, true) => self.fetch(uid, args, out, w).await,
            ("STORE", true, true) => self.store(uid, args, out),
            (
                "NAMESPACE" | "LIST" | "STATUS" | "SELECT" | "EXAMINE" | "CLOSE" | "UNSELECT"
                | "SEARCH" | "FETCH" | "STORE",
                ..,
            ) => Err(bad(&format!("{name} is not valid in this state"))),
            _ => Err(bad(&format!(
                "{}{name} is not implemented by this Gmail test server",
                if uid { "UID " } else { "" }
            ))),
        };
        match result {
            Ok(text) => out.extend(format!("{tag} OK {text}\r\n").as_bytes()),
            Err(line) => out.extend(format!("{tag} {line}\r\n").as_bytes()),
        }
        false
    }

    fn noop(&mut self, out: &mut Out) -> String {
        if let Some((folder, _)) = &self.selected {
            let n = self.view(folder).len();
            if n != self.exists {
                self.exists = n;
                out.extend(format!("* {n} EXISTS\r\n").as_bytes());
            }
        }
        "Success".into()
    }

    /// `(UID, message)` of the selected folder, by UID.
    fn view(&self, folder: &str) -> Vec<(u32, Msg)> {
        let st = self.shared.lock();
        let Some(a) = self.user.as_ref().and_then(|u| st.accounts.get(u)) else {
            return Vec::new();
        };
        a.folders
            .get(folder)
            .map(|f| {
                f.uids
                    .iter()
                    .filter_map(|(u, id)| a.messages.get(id).map(|m| (*u, m.clone())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Signs `user` in if the credential `ok`; the answer text or the refusal line.
    fn sign_in(&mut self, user: &str, ok: impl FnOnce(&super::Account) -> bool) -> Reply {
        let key = user.to_ascii_lowercase();
        let mut st = self.shared.lock();
        let cap = st.cap;
        let Some(a) = st.accounts.get_mut(&key) else {
            return Err(format!("NO {INVALID_CREDENTIALS}"));
        };
        if !ok(a) {
            a.stats.failed_logins += 1;
            return Err(format!("NO {INVALID_CREDENTIALS}"));
        }
        if a.locked(Instant::now()) {
            a.stats.bandwidth_alerts += 1;
            return Err(format!("NO {BANDWIDTH_EXCEEDED}"));
        }
        if a.stats.connections >= cap {
            a.stats.too_many_connections += 1;
            return Err(format!("NO {TOO_MANY_CONNECTIONS}"));
        }
        a.stats.logins += 1;
        a.stats.connections += 1;
        a.stats.peak_connections = a.stats.peak_connections.max(a.stats.connections);
        self.user = Some(key);
        Ok(format!(
            "[CAPABILITY {CAPABILITY}] {user} authenticated (Success)"
        ))
    }

    fn login(&mut self, args: &[Tok]) -> Reply {
        let [user, pass] = args else {
            return Err(bad("LOGIN takes a user name and a password"));
        };
        let (Some(user), Some(pass)) = (user.text(), pass.text()) else {
            return Err(bad("LOGIN takes a user name and a password"));
        };
        self.sign_in(&user, |a| a.app_password.as_deref() == Some(pass.as_str()))
    }

    async fn authenticate<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
        &mut self,
        args: &[Tok],
        r: &mut BufReader<R>,
        w: &mut W,
    ) -> Reply {
        let mech = args.first().map(Tok::upper).unwrap_or_default();
        if !matches!(mech.as_str(), "PLAIN" | "XOAUTH2" | "OAUTHBEARER") {
            return Err(bad(&format!(
                "Unsupported authentication mechanism {mech:?}"
            )));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let response = match args.get(1).and_then(Tok::text) {
            Some(ir) if ir == "=" => String::new(),
            Some(ir) => ir,
            None => {
                if w.write_all(b"+ \r\n").await.is_err() || w.flush().await.is_err() {
                    return Err(bad("connection lost"));
                }
                let line = read_line(r).await.unwrap_or_default();
                lossy(&line).trim_end().to_owned()
            }
        };
        if response == "*" {
            return Err(bad("Authentication cancelled"));
        }
        let Ok(raw) = b64.decode(response.trim()) else {
            return Err(bad("Invalid SASL argument: not base64"));
        };
        if mech == "PLAIN" {
            let parts: Vec<&[u8]> = raw.split(|c| *c == 0).collect();
            let [_, user, pass] = parts[..] else {
                return Err(bad("Invalid SASL PLAIN message"));
            };
            let (user, pass) = (lossy(user), lossy(pass));
            return self.sign_in(&user, |a| a.app_password.as_deref() == Some(pass.as_str()));
        }
        let (user, token) = bearer(&lossy(&raw), mech == "OAUTHBEARER");
        let tokens = self.shared.tokens.clone();
        let valid = |_: &super::Account| {
            tokens
                .as_ref()
                .is_some_and(|t| t.valid_for(&user, &token, MAIL_SCOPE))
        };
        let result = self.sign_in(&user, valid);
        if matches!(&result, Err(line) if line.contains("AUTHENTICATIONFAILED")) {
            // The error challenge; the client answers with an empty line (XOAUTH2) or ^A.
            let json = if mech == "XOAUTH2" {
                XOAUTH2_ERROR_JSON.to_owned()
            } else {
                r#"{"status":"invalid_token","schemes":"bearer","scope":"https://mail.google.com/"}"#.to_owned()
            };
            let line = format!("+ {}\r\n", b64.encode(json));
            if w.write_all(line.as_bytes()).await.is_err() || w.flush().await.is_err() {
                return result;
            }
            let _ = read_line(r).await;
        }
        result
    }

    fn list(&mut self, args: &[Tok], out: &mut Out) -> Reply {
        let mut args: Vec<&Tok> = args.iter().collect();
        let mut special_only = false;
        if let Some(Tok::List(sel)) = args.first() {
            special_only = sel.iter().any(|t| t.upper() == "SPECIAL-USE");
            args.remove(0);
        }
        if let Some(pos) = args.iter().position(|t| t.upper() == "RETURN") {
            if let Some(Tok::List(ret)) = args.get(pos + 1)
                && ret.iter().any(|t| t.upper() == "STATUS")
            {
                return Err(bad("LIST-STATUS is not supported"));
            }
            args.truncate(pos);
        }
        let [reference, pattern] = args[..] else {
            return Err(bad("LIST takes a reference and a pattern"));
        };
        let (Some(reference), Some(pattern)) = (reference.text(), pattern.text()) else {
            return Err(bad("LIST takes a reference and a pattern"));
        };
        if pattern.is_empty() {
            out.extend(b"* LIST (\\Noselect) \"/\" \"\"\r\n");
            return Ok("Success".into());
        }
        let pattern = utf7::decode(&format!("{reference}{pattern}"))
            .map_err(|_| bad("pattern is not modified UTF-7"))?;
        let folders = self.folder_names();
        for name in &folders {
            let special = SYSTEM_FOLDERS
                .iter()
                .find(|(n, _, _)| n == name)
                .map_or("", |(_, s, _)| *s);
            let noselect = name == "[Gmail]";
            if !matches(&pattern, name) || (special_only && special.is_empty()) {
                continue;
            }
            let prefix = format!("{name}/");
            let children = folders.iter().any(|f| f.starts_with(&prefix));
            let mut attrs = vec![if children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            }];
            if noselect {
                attrs.insert(0, "\\Noselect");
            }
            if !special.is_empty() {
                attrs.push(special);
            }
            let shown = if name == "INBOX" {
                name.clone()
            } else {
                utf7::encode(name)
            };
            out.extend(
                format!("* LIST ({}) \"/\" {}\r\n", attrs.join(" "), quote(&shown)).as_bytes(),
            );
        }
        Ok("Success".into())
    }

    /// Every folder, with `[Gmail]`, INBOX first.
    fn folder_names(&self) -> Vec<String> {
        let st = self.shared.lock();
        let mut v: Vec<String> = self
            .user
            .as_ref()
            .and_then(|u| st.accounts.get(u))
            .map(|a| a.folders.keys().cloned().collect())
            .unwrap_or_default();
        v.push("[Gmail]".into());
        v.sort_by_key(|n| (n != "INBOX", n.clone()));
        v
    }

    /// The folder a command names (UTF-8), if it exists.
    fn folder_arg(&self, tok: Option<&Tok>) -> std::result::Result<String, String> {
        let raw = tok
            .and_then(Tok::text)
            .ok_or_else(|| bad("missing folder name"))?;
        let name = if raw.eq_ignore_ascii_case("INBOX") {
            "INBOX".to_owned()
        } else {
            utf7::decode(&raw).map_err(|_| bad("folder name is not modified UTF-7"))?
        };
        let st = self.shared.lock();
        let exists = self
            .user
            .as_ref()
            .and_then(|u| st.accounts.get(u))
            .is_some_and(|a| a.folders.contains_key(&name));
        if exists {
            Ok(name)
        } else {
            Err(format!("NO [NONEXISTENT] Unknown Folder: {raw} (Failure)"))
        }
    }

    fn status(&mut self, args: &[Tok], out: &mut Out) -> Reply {
        let name = self.folder_arg(args.first())?;
        let Some(Tok::List(items)) = args.get(1) else {
            return Err(bad("STATUS takes a folder and a list of items"));
        };
        let msgs = self.view(&name);
        let (uidvalidity, uidnext) = self.folder_numbers(&name);
        let mut parts = Vec::new();
        for item in items {
            let item = item.upper();
            let value = match item.as_str() {
                "MESSAGES" => msgs.len() as u64,
                "UIDNEXT" => u64::from(uidnext),
                "UIDVALIDITY" => u64::from(uidvalidity),
                "UNSEEN" => msgs
                    .iter()
                    .filter(|(_, m)| !m.flags().contains(&"\\Seen".to_owned()))
                    .count() as u64,
                "RECENT" => 0,
                _ => return Err(bad(&format!("STATUS item {item} is not supported"))),
            };
            parts.push(format!("{item} {value}"));
        }
        let shown = if name == "INBOX" {
            name.clone()
        } else {
            utf7::encode(&name)
        };
        out.extend(format!("* STATUS {} ({})\r\n", quote(&shown), parts.join(" ")).as_bytes());
        Ok("Success".into())
    }

    fn folder_numbers(&self, name: &str) -> (u32, u32) {
        let st = self.shared.lock();
        self.user
            .as_ref()
            .and_then(|u| st.accounts.get(u))
            .and_then(|a| a.folders.get(name))
            .map_or((0, 0), |f| (f.uidvalidity, f.uidnext))
    }

    fn select(&mut self, args: &[Tok], read_only: bool, out: &mut Out) -> Reply {
        self.selected = None;
        if args.len() > 1 {
            return Err(bad(
                "SELECT parameters (CONDSTORE, QRESYNC) are not supported",
            ));
        }
        let name = self.folder_arg(args.first())?;
        let msgs = self.view(&name);
        let (uidvalidity, uidnext) = self.folder_numbers(&name);
        self.exists = msgs.len();
        let permanent = if read_only {
            "()"
        } else {
            "(\\Answered \\Flagged \\Draft \\Deleted \\Seen $NotPhishing $Phishing \\*)"
        };
        out.extend(
            format!(
                "* FLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen $NotPhishing $Phishing)\r\n\
                 * OK [PERMANENTFLAGS {permanent}] Flags permitted.\r\n\
                 * OK [UIDVALIDITY {uidvalidity}] UIDs valid.\r\n\
                 * {} EXISTS\r\n* 0 RECENT\r\n\
                 * OK [UIDNEXT {uidnext}] Predicted next UID.\r\n",
                msgs.len()
            )
            .as_bytes(),
        );
        self.selected = Some((name.clone(), read_only));
        let mode = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        Ok(format!("[{mode}] {name} selected. (Success)"))
    }

    /// `(sequence number, UID, message)` of the selected folder that `set` names.
    fn resolve(
        &self,
        uid: bool,
        set: Option<&Tok>,
    ) -> std::result::Result<Vec<(usize, u32, Msg)>, String> {
        let set = set
            .and_then(Tok::text)
            .ok_or_else(|| bad("missing message set"))?;
        let folder = self
            .selected
            .as_ref()
            .map(|(f, _)| f.clone())
            .unwrap_or_default();
        let view = self.view(&folder);
        let max = if uid {
            view.last().map_or(0, |(u, _)| *u)
        } else {
            view.len() as u32
        };
        let ranges =
            parse_set(&set, max).ok_or_else(|| bad(&format!("Invalid message set {set:?}")))?;
        Ok(view
            .into_iter()
            .enumerate()
            .map(|(i, (u, m))| (i + 1, u, m))
            .filter(|(seq, u, _)| {
                let n = if uid { *u } else { *seq as u32 };
                ranges.iter().any(|(a, b)| (*a..=*b).contains(&n))
            })
            .collect())
    }

    fn search(&mut self, uid: bool, args: &[Tok], out: &mut Out) -> Reply {
        let all = self.resolve(true, Some(&Tok::Atom("1:*".into())))?;
        let mut hits: Vec<(usize, u32)> = Vec::new();
        let mut keys = Vec::new();
        let mut i = 0;
        while let Some(k) = args.get(i) {
            let key = k.upper();
            let arg = args.get(i + 1);
            let takes = matches!(
                key.as_str(),
                "UID"
                    | "SINCE"
                    | "BEFORE"
                    | "ON"
                    | "LARGER"
                    | "SMALLER"
                    | "X-GM-MSGID"
                    | "X-GM-THRID"
            );
            if takes && arg.is_none() {
                return Err(bad(&format!("SEARCH {key} needs an argument")));
            }
            keys.push((key, if takes { arg.and_then(Tok::text) } else { None }));
            i += if takes { 2 } else { 1 };
        }
        for (seq, u, m) in &all {
            let mut ok = true;
            for (key, arg) in &keys {
                let arg = arg.clone().unwrap_or_default();
                let num = || arg.parse::<u64>().ok();
                let day = || search_day(&arg);
                let date = m.internal_date.unix_seconds().div_euclid(86_400);
                ok &= match key.as_str() {
                    "ALL" => true,
                    "UID" => parse_set(&arg, all.last().map_or(0, |(_, u, _)| *u))
                        .ok_or_else(|| bad("Invalid UID set"))?
                        .iter()
                        .any(|(a, b)| (*a..=*b).contains(u)),
                    "SINCE" => date >= day().ok_or_else(|| bad("Invalid date"))?,
                    "BEFORE" => date < day().ok_or_else(|| bad("Invalid date"))?,
                    "ON" => date == day().ok_or_else(|| bad("Invalid date"))?,
                    "LARGER" => m.raw.len() as u64 > num().ok_or_else(|| bad("Invalid number"))?,
                    "SMALLER" => {
                        (m.raw.len() as u64) < num().ok_or_else(|| bad("Invalid number"))?
                    }
                    "X-GM-MSGID" => Some(m.msgid) == num(),
                    "X-GM-THRID" => Some(m.thrid) == num(),
                    "SEEN" | "UNSEEN" | "FLAGGED" | "UNFLAGGED" | "ANSWERED" | "UNANSWERED" => {
                        let (flag, want) = match key.strip_prefix("UN") {
                            Some(f) => (f, false),
                            None => (key.as_str(), true),
                        };
                        let name = format!("\\{}{}", &flag[..1], flag[1..].to_ascii_lowercase());
                        m.flags().contains(&name) == want
                    }
                    "X-GM-RAW" => return Err(bad("X-GM-RAW is not supported by this test server")),
                    other => return Err(bad(&format!("SEARCH key {other} is not supported"))),
                };
            }
            if ok {
                hits.push((*seq, *u));
            }
        }
        let nums: Vec<String> = hits
            .iter()
            .map(|(s, u)| if uid { u.to_string() } else { s.to_string() })
            .collect();
        out.extend(
            format!(
                "* SEARCH{}{}\r\n",
                if nums.is_empty() { "" } else { " " },
                nums.join(" ")
            )
            .as_bytes(),
        );
        Ok("SEARCH completed (Success)".into())
    }

    async fn fetch<W: AsyncWrite + Unpin>(
        &mut self,
        uid: bool,
        args: &[Tok],
        out: &mut Out,
        w: &mut W,
    ) -> Reply {
        let msgs = self.resolve(uid, args.first())?;
        let items = match args.get(1) {
            Some(Tok::List(l)) => l.clone(),
            Some(t @ Tok::Atom(_)) => match t.upper().as_str() {
                "ALL" | "FAST" | "FULL" => ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]
                    .iter()
                    .map(|s| Tok::Atom((*s).into()))
                    .collect(),
                _ => vec![t.clone()],
            },
            _ => return Err(bad("FETCH takes a message set and items")),
        };
        let items: Vec<Item> = items
            .iter()
            .map(item)
            .collect::<std::result::Result<_, _>>()?;
        let user = self.user.clone().unwrap_or_default();
        let read_only = self.selected.as_ref().is_some_and(|(_, ro)| *ro);
        let folder_label = self.selected.as_ref().and_then(|(f, _)| folder_label(f));
        for (seq, u, m) in msgs {
            let mut parts = Vec::new();
            let mut literal_bytes = 0u64;
            if uid || items.iter().any(|i| matches!(i, Item::Uid)) {
                parts.push(Part::Text(format!("UID {u}")));
            }
            let mut set_seen = false;
            for it in &items {
                match it {
                    Item::Uid => {}
                    Item::Flags => {
                        parts.push(Part::Text(format!("FLAGS ({})", m.flags().join(" "))))
                    }
                    Item::InternalDate => parts.push(Part::Text(format!(
                        "INTERNALDATE \"{}\"",
                        m.internal_date.to_imap()
                    ))),
                    Item::Size => parts.push(Part::Text(format!("RFC822.SIZE {}", m.raw.len()))),
                    Item::MsgId => parts.push(Part::Text(format!("X-GM-MSGID {}", m.msgid))),
                    Item::ThrId => parts.push(Part::Text(format!("X-GM-THRID {}", m.thrid))),
                    Item::Labels => {
                        let shown: Vec<String> = m
                            .labels
                            .iter()
                            .filter(|l| {
                                self.shared.labels_include_selected
                                    || Some(*l) != folder_label.as_ref()
                            })
                            .map(|l| {
                                if l.starts_with('\\') {
                                    l.clone()
                                } else {
                                    quote(&utf7::encode(l))
                                }
                            })
                            .collect();
                        parts.push(Part::Text(format!("X-GM-LABELS ({})", shown.join(" "))));
                    }
                    Item::Section {
                        name,
                        section,
                        partial,
                        peek,
                    } => {
                        let data = section_bytes(&m.raw, section, *partial);
                        literal_bytes += data.len() as u64;
                        set_seen |= !peek && !read_only;
                        let origin = partial.map(|(o, _)| format!("<{o}>")).unwrap_or_default();
                        parts.push(Part::Literal(
                            format!("{name}{origin} {{{}}}\r\n", data.len()),
                            data,
                        ));
                    }
                }
            }
            {
                let mut st = self.shared.lock();
                let limit = st.limit;
                let Some(a) = st.accounts.get_mut(&user) else {
                    return Err("NO account gone".into());
                };
                if literal_bytes > 0 && !a.charge(literal_bytes, limit) {
                    a.stats.bandwidth_alerts += 1;
                    return Err(format!("NO {BANDWIDTH_EXCEEDED}"));
                }
                a.stats.bytes_served += literal_bytes;
                if set_seen && let Some(msg) = a.messages.get_mut(&m.msgid) {
                    msg.set_flag("\\Seen", true);
                }
            }
            out.extend(format!("* {seq} FETCH (").as_bytes());
            for (i, p) in parts.into_iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                match p {
                    Part::Text(t) => out.extend(t.as_bytes()),
                    Part::Literal(head, data) => {
                        out.extend(head.as_bytes());
                        out.extend(&data);
                    }
                }
            }
            out.extend(b")\r\n");
            if out.len() > 1024 * 1024 {
                if w.write_all(out).await.is_err() {
                    return Err(bad("connection lost"));
                }
                out.clear();
            }
        }
        Ok("Success".into())
    }

    fn store(&mut self, uid: bool, args: &[Tok], out: &mut Out) -> Reply {
        if self.selected.as_ref().is_some_and(|(_, ro)| *ro) {
            return Err("NO STORE attempt on READ-ONLY folder (Failure)".into());
        }
        let msgs = self.resolve(uid, args.first())?;
        let op = args.get(1).map(Tok::upper).unwrap_or_default();
        let silent = op.ends_with(".SILENT");
        let op = op.trim_end_matches(".SILENT");
        let (mode, what) = match op.split_at(op.find(['F', 'X']).unwrap_or(0)) {
            (m @ ("" | "+" | "-"), w @ ("FLAGS" | "X-GM-LABELS")) => (m, w),
            _ => return Err(bad(&format!("STORE {op} is not supported"))),
        };
        let values: Vec<String> = match args.get(2) {
            Some(Tok::List(l)) => l.iter().filter_map(Tok::text).collect(),
            Some(t) => t.text().into_iter().collect(),
            None => return Err(bad("STORE needs values")),
        };
        let values: Vec<String> = values
            .iter()
            .map(|v| {
                if what == "X-GM-LABELS" && !v.starts_with('\\') {
                    utf7::decode(v).unwrap_or_else(|_| v.clone())
                } else {
                    v.clone()
                }
            })
            .collect();
        let user = self.user.clone().unwrap_or_default();
        let mut st = self.shared.lock();
        let st = &mut *st;
        let Some(a) = st.accounts.get_mut(&user) else {
            return Err("NO account gone".into());
        };
        for (seq, u, m) in msgs {
            let Some(msg) = a.messages.get_mut(&m.msgid) else {
                continue;
            };
            if mode.is_empty() {
                if what == "FLAGS" {
                    for f in msg.flags() {
                        msg.set_flag(&f, false);
                    }
                } else {
                    msg.labels.clear();
                }
            }
            for v in &values {
                if what == "FLAGS" {
                    msg.set_flag(v, mode != "-");
                } else {
                    msg.set_label(v, mode != "-");
                }
            }
            let flags = msg.flags().join(" ");
            a.sync(m.msgid, &mut st.next_uidvalidity);
            if !silent {
                out.extend(format!("* {seq} FETCH (UID {u} FLAGS ({flags}))\r\n").as_bytes());
            }
        }
        Ok("STORE completed (Success)".into())
    }
}

type Reply = std::result::Result<String, String>;

/// User and token of an XOAUTH2 (`user=U^Aauth=Bearer T^A^A`) or OAUTHBEARER
/// (`n,a=U,^Aauth=Bearer T^A^A`) message.
fn bearer(msg: &str, oauthbearer: bool) -> (String, String) {
    let mut user = String::new();
    let mut token = String::new();
    for (i, field) in msg.split('\x01').enumerate() {
        if oauthbearer && i == 0 {
            if let Some(a) = field.split(',').find_map(|f| f.strip_prefix("a=")) {
                user = a.to_owned();
            }
        } else if let Some(u) = field.strip_prefix("user=") {
            user = u.to_owned();
        } else if let Some(t) = field.strip_prefix("auth=Bearer ") {
            token = t.to_owned();
        }
    }
    (user, token)
}

fn bad(text: &str) -> String {
    format!("BAD {text}")
}

enum Part {
    Text(String),
    Literal(String, Vec<u8>),
}

enum Item {
    Uid,
    Flags,
    InternalDate,
    Size,
    MsgId,
    ThrId,
    Labels,
    Section {
        /// The name to answer with (`BODY[HEADER.FIELDS (A B)]`, `RFC822`).
        name: String,
        section: String,
        partial: Option<(usize, usize)>,
        peek: bool,
    },
}

fn item(t: &Tok) -> std::result::Result<Item, String> {
    let up = t.upper();
    Ok(match up.as_str() {
        "UID" => Item::Uid,
        "FLAGS" => Item::Flags,
        "INTERNALDATE" => Item::InternalDate,
        "RFC822.SIZE" => Item::Size,
        "X-GM-MSGID" => Item::MsgId,
        "X-GM-THRID" => Item::ThrId,
        "X-GM-LABELS" => Item::Labels,
        "RFC822" => section("RFC822", "", None, false),
        "RFC822.HEADER" => section("RFC822.HEADER", "HEADER", None, true),
        "RFC822.TEXT" => section("RFC822.TEXT", "TEXT", None, false),
        _ if up.starts_with("BODY[") || up.starts_with("BODY.PEEK[") => {
            let peek = up.starts_with("BODY.PEEK[");
            let open = up.find('[').unwrap_or(0);
            let close = up
                .rfind(']')
                .ok_or_else(|| bad("missing ] in FETCH item"))?;
            let spec = up[open + 1..close].to_owned();
            let partial = match up[close + 1..]
                .strip_prefix('<')
                .and_then(|p| p.strip_suffix('>'))
            {
                Some(p) => {
                    let (o, n) = p
                        .split_once('.')
                        .ok_or_else(|| bad("partial needs <offset.length>"))?;
                    Some((
                        o.parse().map_err(|_| bad("bad partial"))?,
                        n.parse().map_err(|_| bad("bad partial"))?,
                    ))
                }
                None if close + 1 == up.len() => None,
                None => return Err(bad(&format!("FETCH item {up} is not valid"))),
            };
            if !(spec.is_empty()
                || spec == "HEADER"
                || spec == "TEXT"
                || spec.starts_with("HEADER.FIELDS"))
            {
                return Err(bad(&format!(
                    "FETCH section [{spec}] is not supported by this test server"
                )));
            }
            section(&format!("BODY[{spec}]"), &spec, partial, peek)
        }
        _ => {
            return Err(bad(&format!(
                "FETCH item {up} is not supported by this test server"
            )));
        }
    })
}

fn section(name: &str, section: &str, partial: Option<(usize, usize)>, peek: bool) -> Item {
    Item::Section {
        name: name.to_owned(),
        section: section.to_owned(),
        partial,
        peek,
    }
}

/// The bytes of `section` (`""`, `HEADER`, `TEXT`, `HEADER.FIELDS[.NOT] (…)`) with `partial`.
fn section_bytes(raw: &[u8], section: &str, partial: Option<(usize, usize)>) -> Vec<u8> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |p| p + 4);
    let (header, text) = raw.split_at(split);
    let data = match section {
        "" => raw.to_vec(),
        "HEADER" => header.to_vec(),
        "TEXT" => text.to_vec(),
        spec => {
            let not = spec.starts_with("HEADER.FIELDS.NOT");
            let names: Vec<String> = spec
                .split(['(', ')', ' '])
                .skip(1)
                .filter(|s| !s.is_empty())
                .map(str::to_ascii_uppercase)
                .collect();
            let mut out = Vec::new();
            let mut keep = false;
            for line in header.split_inclusive(|c| *c == b'\n') {
                if line == b"\r\n" {
                    break;
                }
                if !matches!(line.first(), Some(b' ' | b'\t')) {
                    let name = line.split(|c| *c == b':').next().unwrap_or(b"");
                    let name = lossy(name).trim().to_ascii_uppercase();
                    keep = names.contains(&name) != not;
                }
                if keep {
                    out.extend_from_slice(line);
                }
            }
            out.extend_from_slice(b"\r\n");
            out
        }
    };
    match partial {
        Some((o, n)) => data
            .get(o.min(data.len())..(o.saturating_add(n)).min(data.len()))
            .unwrap_or(&[])
            .to_vec(),
        None => data,
    }
}

/// `1:5,7,10:*` with `*` = `max`; `None` if malformed.
fn parse_set(set: &str, max: u32) -> Option<Vec<(u32, u32)>> {
    let num = |s: &str| {
        if s == "*" {
            Some(max)
        } else {
            s.parse::<u32>().ok().filter(|n| *n > 0)
        }
    };
    set.split(',')
        .map(|part| {
            let (a, b) = part.split_once(':').unwrap_or((part, part));
            let (a, b) = (num(a)?, num(b)?);
            Some((a.min(b), a.max(b)))
        })
        .collect()
}

/// `1-Feb-2020` → days since 1970-01-01.
fn search_day(s: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    let mut it = s.split('-');
    let d: i64 = it.next()?.parse().ok()?;
    let mon = it.next()?.to_ascii_uppercase();
    let m = MONTHS.iter().position(|x| *x == mon)? as i64 + 1;
    let y: i64 = it.next()?.parse().ok()?;
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// LIST pattern matching: `*` matches anything, `%` anything but `/`.
fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // reach[j]: the pattern prefix so far can match name[..j].
    let mut reach = vec![false; n.len() + 1];
    reach[0] = true;
    for c in &p {
        let mut next = vec![false; n.len() + 1];
        for j in 0..=n.len() {
            if !reach[j] {
                continue;
            }
            match c {
                '*' | '%' => {
                    next[j] = true;
                    let mut k = j;
                    while k < n.len() && (*c == '*' || n[k] != '/') {
                        k += 1;
                        next[k] = true;
                    }
                }
                _ if j < n.len()
                    && (n[j] == *c
                        || (j < 5
                            && n[j].eq_ignore_ascii_case(c)
                            && name.to_ascii_uppercase().starts_with("INBOX"))) =>
                {
                    next[j + 1] = true
                }
                _ => {}
            }
        }
        reach = next;
    }
    reach[n.len()]
}
