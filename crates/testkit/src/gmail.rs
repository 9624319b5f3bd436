//! [`GmailServer`]: an in-process, Gmail-flavoured IMAP server on 127.0.0.1 for tests.
//!
//! It behaves like Gmail's IMAP endpoint where a migration source cares
//! (<https://developers.google.com/gmail/imap/imap-extensions>):
//!
//! - `X-GM-EXT-1`: every message has an `X-GM-MSGID` (the same in every folder it shows in),
//!   an `X-GM-THRID` and `X-GM-LABELS`. Labels are folders: a message with three labels is in
//!   those three folders and in `[Gmail]/All Mail`, with its own UID in each folder (UIDs are
//!   given in arrival order and never reused; each folder has its own UIDVALIDITY). Spam and
//!   Trash hold messages that are not in All Mail. `\Flagged` is the `\Starred` label.
//! - In `X-GM-LABELS` system labels are atoms (`\Inbox`, as in the FETCH example of Google's
//!   IMAP Extensions page), user labels quoted strings in modified UTF-7 like folder names
//!   (`"Reisekosten &ANw-ber"`). Like Gmail, the label of the selected folder is left out
//!   (observed by client authors: <https://github.com/dlech/gmailbuttons/issues/10>); set
//!   [`GmailOptions::labels_include_selected`] to include it.
//! - Sign-in: `AUTHENTICATE XOAUTH2` / `OAUTHBEARER` with a token that a
//!   [`GoogleTokenStandIn`](crate::GoogleTokenStandIn) issued for that user with
//!   [`MAIL_SCOPE`], or an app password by `LOGIN` / `AUTHENTICATE PLAIN`. A refused token gets
//!   the base64 JSON challenge [`XOAUTH2_ERROR_JSON`] and then `NO` [`INVALID_CREDENTIALS`]
//!   (<https://developers.google.com/gmail/imap/xoauth2-protocol>).
//! - Limits: at most [`DEFAULT_CONNECTION_CAP`] signed-in connections per user
//!   ([`TOO_MANY_CONNECTIONS`]); a download allowance per fixed window
//!   ([`GmailServer::set_download_limit`], Gmail's "about 2,500 MB per day" scaled down), after
//!   which FETCH and sign-in are refused with [`BANDWIDTH_EXCEEDED`] until the window ends.
//!
//! Not implemented (answered `BAD` with the reason): APPEND, COPY/MOVE, EXPUNGE, CREATE and
//! other mailbox changes, IDLE, CONDSTORE, `X-GM-RAW`, body part sections and ENVELOPE /
//! BODYSTRUCTURE. Changes made while a folder is selected are not announced (no untagged
//! EXPUNGE; NOOP reports a new EXISTS count).

mod protocol;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::background::{Background, bind_loopback};
use crate::date::ImapDate;
use crate::error::{Error, Result};
use crate::google_token::TokenRegistry;

pub use crate::google_token::MAIL_SCOPE;

/// The text after `NO` when a user's download allowance is used up: the FETCH that would pass
/// it is refused, and so is every sign-in until the window ends. Gmail answers FETCH with
/// `[OVERQUOTA] Account exceeded command or bandwidth limits.` when the daily IMAP bandwidth is
/// exceeded (<https://github.com/ljmerza/ha-email-sensor/issues/16>); Workspace admins then see
/// "Account has exceeded the Gmail bandwidth limit for downloads via IMAP" and the account is
/// locked for up to a day (<https://github.com/chatwoot/chatwoot/issues/6082>).
pub const BANDWIDTH_EXCEEDED: &str =
    "[OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)";
/// The text after `NO` when a user already has the maximum of signed-in connections (Gmail's
/// answer, <https://github.com/zone-eu/wildduck/issues/35>).
pub const TOO_MANY_CONNECTIONS: &str = "[ALERT] Too many simultaneous connections. (Failure)";
/// The text after `NO` for a wrong password or a refused token.
pub const INVALID_CREDENTIALS: &str = "[AUTHENTICATIONFAILED] Invalid credentials (Failure)";
/// The JSON (sent base64 in a `+` challenge) when an XOAUTH2 token is refused.
pub const XOAUTH2_ERROR_JSON: &str =
    r#"{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}"#;
/// Gmail's limit of simultaneous IMAP connections per user.
pub const DEFAULT_CONNECTION_CAP: usize = 15;
/// The first `X-GM-MSGID` a server gives (then one more per message).
pub const FIRST_MSGID: u64 = 1_700_000_000_000_000_000;

/// Where a message lives: All Mail (with its labels) or outside it, in Spam or Trash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Place {
    /// In `[Gmail]/All Mail` and the folders of its labels.
    #[default]
    AllMail,
    /// In `[Gmail]/Spam` only.
    Spam,
    /// In `[Gmail]/Trash` only.
    Trash,
}

/// A message to [`GmailServer::append`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GmailMessage {
    /// The RFC 5322 message.
    pub raw: Vec<u8>,
    /// Labels: system ones (`\Inbox`, `\Sent`, `\Starred`, `\Important`, `\Draft`) and user
    /// labels (`Clients/ACME`; nested with `/`).
    pub labels: Vec<String>,
    /// Flags (`\Seen`, `\Answered`, …; `\Flagged` becomes the `\Starred` label).
    pub flags: Vec<String>,
    /// INTERNALDATE.
    pub internal_date: ImapDate,
    /// All Mail, Spam or Trash.
    pub place: Place,
    /// The thread: the `X-GM-MSGID` of an earlier message, or `None` for a new thread.
    pub thread_of: Option<u64>,
}

impl GmailMessage {
    /// A message in All Mail with no labels or flags, dated 2026-01-15 10:00 UTC.
    pub fn new(raw: impl Into<Vec<u8>>) -> Self {
        GmailMessage {
            raw: raw.into(),
            labels: Vec::new(),
            flags: Vec::new(),
            internal_date: ImapDate::from_unix_utc(1_768_471_200),
            place: Place::AllMail,
            thread_of: None,
        }
    }

    /// With these labels.
    pub fn labels(mut self, labels: &[&str]) -> Self {
        self.labels = labels.iter().map(|l| (*l).to_owned()).collect();
        self
    }

    /// With these flags.
    pub fn flags(mut self, flags: &[&str]) -> Self {
        self.flags = flags.iter().map(|f| (*f).to_owned()).collect();
        self
    }
}

/// A message as the server holds it (see [`GmailServer::messages`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// `X-GM-MSGID`.
    pub msgid: u64,
    /// `X-GM-THRID`.
    pub thrid: u64,
    /// Labels, sorted.
    pub labels: Vec<String>,
    /// Flags as FETCH shows them, sorted (with `\Flagged` for `\Starred`).
    pub flags: Vec<String>,
    /// INTERNALDATE.
    pub internal_date: ImapDate,
    /// Size in bytes.
    pub size: u64,
    /// All Mail, Spam or Trash.
    pub place: Place,
}

/// Counters of one user (see [`GmailServer::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GmailUserStats {
    /// Successful sign-ins.
    pub logins: u64,
    /// Sign-ins refused for a wrong password or token.
    pub failed_logins: u64,
    /// Sign-ins refused because of the connection cap.
    pub too_many_connections: u64,
    /// Signed-in connections now.
    pub connections: usize,
    /// The most signed-in connections at once.
    pub peak_connections: usize,
    /// Message bytes sent in FETCH answers (bodies, headers, sections).
    pub bytes_served: u64,
    /// Answers with [`BANDWIDTH_EXCEEDED`] (refused FETCH commands and sign-ins).
    pub bandwidth_alerts: u64,
}

/// Options for [`GmailServer::start`].
#[derive(Debug, Clone, Default)]
pub struct GmailOptions {
    /// Implicit TLS with a certificate from a fresh test CA ([`GmailServer::ca_pem`]).
    pub tls: bool,
    /// The tokens XOAUTH2 / OAUTHBEARER accept (from
    /// [`GoogleTokenStandIn::registry`](crate::GoogleTokenStandIn::registry)); without it every
    /// token is refused.
    pub tokens: Option<TokenRegistry>,
    /// Include the selected folder's own label in `X-GM-LABELS` (Gmail leaves it out).
    pub labels_include_selected: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub(crate) msgid: u64,
    pub(crate) thrid: u64,
    pub(crate) labels: BTreeSet<String>,
    flags: BTreeSet<String>,
    pub(crate) internal_date: ImapDate,
    pub(crate) raw: Arc<Vec<u8>>,
    pub(crate) place: Place,
}

impl Msg {
    /// Flags as FETCH shows them.
    pub(crate) fn flags(&self) -> Vec<String> {
        let mut f = self.flags.clone();
        if self.labels.contains("\\Starred") {
            f.insert("\\Flagged".into());
        }
        if self.labels.contains("\\Draft") {
            f.insert("\\Draft".into());
        }
        f.into_iter().collect()
    }

    /// Adds or removes flags; `\Flagged` and `\Draft` are labels.
    pub(crate) fn set_flag(&mut self, flag: &str, on: bool) {
        let flag = canonical(flag);
        let label = match flag.as_str() {
            "\\Flagged" => Some("\\Starred"),
            "\\Draft" => Some("\\Draft"),
            _ => None,
        };
        let set = if label.is_some() {
            &mut self.labels
        } else {
            &mut self.flags
        };
        let name = label.map_or(flag.clone(), str::to_owned);
        if on {
            set.insert(name);
        } else {
            set.remove(&name);
        }
    }

    pub(crate) fn set_label(&mut self, label: &str, on: bool) {
        let label = canonical(label);
        if on {
            self.labels.insert(label);
        } else {
            self.labels.remove(&label);
        }
    }
}

/// `\inbox` → `\Inbox`; other names unchanged.
fn canonical(name: &str) -> String {
    const SYSTEM: [&str; 12] = [
        "\\Inbox",
        "\\Sent",
        "\\Starred",
        "\\Important",
        "\\Draft",
        "\\Seen",
        "\\Answered",
        "\\Flagged",
        "\\Deleted",
        "\\Trash",
        "\\Spam",
        "\\Recent",
    ];
    SYSTEM
        .iter()
        .find(|s| s.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_owned(), |s| (*s).to_owned())
}

/// The folders every account has: name, special-use attribute, label it shows.
pub(crate) const SYSTEM_FOLDERS: [(&str, &str, &str); 8] = [
    ("INBOX", "", "\\Inbox"),
    ("[Gmail]/All Mail", "\\All", ""),
    ("[Gmail]/Drafts", "\\Drafts", "\\Draft"),
    ("[Gmail]/Important", "\\Important", "\\Important"),
    ("[Gmail]/Sent Mail", "\\Sent", "\\Sent"),
    ("[Gmail]/Spam", "\\Junk", ""),
    ("[Gmail]/Starred", "\\Flagged", "\\Starred"),
    ("[Gmail]/Trash", "\\Trash", ""),
];

/// The label a folder shows (`None` for All Mail, Spam, Trash).
pub(crate) fn folder_label(folder: &str) -> Option<String> {
    match SYSTEM_FOLDERS.iter().find(|(n, _, _)| *n == folder) {
        Some((_, _, "")) => None,
        Some((_, _, label)) => Some((*label).to_owned()),
        None => Some(folder.to_owned()),
    }
}

fn member(folder: &str, m: &Msg) -> bool {
    match folder {
        "[Gmail]/Spam" => m.place == Place::Spam,
        "[Gmail]/Trash" => m.place == Place::Trash,
        _ if m.place != Place::AllMail => false,
        "[Gmail]/All Mail" => true,
        _ => folder_label(folder).is_some_and(|l| m.labels.contains(&l)),
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Folder {
    pub(crate) uidvalidity: u32,
    pub(crate) uidnext: u32,
    /// UID → X-GM-MSGID.
    pub(crate) uids: BTreeMap<u32, u64>,
    by_msg: HashMap<u64, u32>,
}

/// One account.
#[derive(Debug, Default)]
pub(crate) struct Account {
    pub(crate) app_password: Option<String>,
    pub(crate) messages: BTreeMap<u64, Msg>,
    pub(crate) folders: BTreeMap<String, Folder>,
    pub(crate) stats: GmailUserStats,
    window_start: Option<Instant>,
    window_used: u64,
    pub(crate) locked_until: Option<Instant>,
}

impl Account {
    /// Puts message `msgid` into or out of every folder after a change.
    pub(crate) fn sync(&mut self, msgid: u64, next_uidvalidity: &mut u32) {
        let Some(m) = self.messages.get(&msgid) else {
            return;
        };
        for label in m.labels.iter().filter(|l| !l.starts_with('\\')) {
            let mut name = String::new();
            for part in label.split('/') {
                if !name.is_empty() {
                    name.push('/');
                }
                name.push_str(part);
                self.folders.entry(name.clone()).or_insert_with(|| {
                    *next_uidvalidity += 1;
                    new_folder(*next_uidvalidity)
                });
            }
        }
        for (name, f) in &mut self.folders {
            let inside = member(name, m);
            match (inside, f.by_msg.get(&msgid).copied()) {
                (true, None) => {
                    let uid = f.uidnext;
                    f.uidnext += 1;
                    f.uids.insert(uid, msgid);
                    f.by_msg.insert(msgid, uid);
                }
                (false, Some(uid)) => {
                    f.uids.remove(&uid);
                    f.by_msg.remove(&msgid);
                }
                _ => {}
            }
        }
    }

    /// Whether the allowance is used up now (a lock that has run out is lifted).
    pub(crate) fn locked(&mut self, now: Instant) -> bool {
        match self.locked_until {
            Some(t) if now < t => true,
            Some(_) => {
                self.locked_until = None;
                false
            }
            None => false,
        }
    }

    /// Counts `bytes` against the allowance `limit` per `window`; false (and a lock until the
    /// window ends) if they would pass it.
    pub(crate) fn charge(&mut self, bytes: u64, limit: Option<(u64, Duration)>) -> bool {
        let now = Instant::now();
        if self.locked(now) {
            return false;
        }
        let Some((limit, window)) = limit else {
            return true;
        };
        let start = match self.window_start {
            Some(s) if now.duration_since(s) < window => s,
            _ => {
                self.window_used = 0;
                self.window_start = Some(now);
                now
            }
        };
        if self.window_used.saturating_add(bytes) > limit {
            self.locked_until = Some(start + window);
            return false;
        }
        self.window_used += bytes;
        true
    }
}

fn new_folder(uidvalidity: u32) -> Folder {
    Folder {
        uidvalidity,
        uidnext: 1,
        uids: BTreeMap::new(),
        by_msg: HashMap::new(),
    }
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) accounts: HashMap<String, Account>,
    next_msgid: u64,
    pub(crate) next_uidvalidity: u32,
    pub(crate) limit: Option<(u64, Duration)>,
    pub(crate) cap: usize,
}

/// What the server's tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) tokens: Option<TokenRegistry>,
    pub(crate) labels_include_selected: bool,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The server; see the [module docs](self). Runs on its own thread; stopped on drop.
#[derive(Debug)]
pub struct GmailServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    ca_pem: Option<String>,
    ca_path: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
    _runtime: Background,
}

impl GmailServer {
    /// Starts on 127.0.0.1 (ephemeral port).
    pub fn start(options: GmailOptions) -> Result<GmailServer> {
        let (listener, addr) = bind_loopback("the Gmail IMAP stand-in")?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                accounts: HashMap::new(),
                next_msgid: FIRST_MSGID,
                next_uidvalidity: 600_000_000,
                limit: None,
                cap: DEFAULT_CONNECTION_CAP,
            }),
            tokens: options.tokens,
            labels_include_selected: options.labels_include_selected,
        });
        let (mut ca_pem, mut ca_path, mut dir, mut acceptor) = (None, None, None, None);
        if options.tls {
            let pki = crate::certs::generate(false)?;
            let tmp = tempfile::tempdir().map_err(|source| Error::Io {
                context: "creating a folder for the Gmail stand-in's CA".into(),
                source,
            })?;
            let path = tmp.path().join("ca.pem");
            std::fs::write(&path, &pki.ca_pem).map_err(|source| Error::Io {
                context: format!("writing {}", path.display()),
                source,
            })?;
            acceptor = Some(protocol::tls_acceptor(&pki)?);
            ca_pem = Some(pki.ca_pem);
            ca_path = Some(path);
            dir = Some(tmp);
        }
        let runtime = Background::start("gmail-imap-stand-in")?;
        runtime.spawn(protocol::accept(listener, shared.clone(), acceptor));
        Ok(GmailServer {
            addr,
            shared,
            ca_pem,
            ca_path,
            _dir: dir,
            _runtime: runtime,
        })
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The CA certificate (PEM) that signed the server's certificate, with TLS.
    pub fn ca_pem(&self) -> Option<Vec<u8>> {
        self.ca_pem.as_ref().map(|p| p.clone().into_bytes())
    }

    /// The CA certificate's file, with TLS (kept until the server is dropped).
    pub fn ca_path(&self) -> Option<&Path> {
        self.ca_path.as_deref()
    }

    /// Adds an account (an e-mail address; compared case-insensitively). Adding it again keeps it.
    pub fn add_user(&self, email: &str) {
        let mut st = self.shared.lock();
        let st = &mut *st;
        if st.accounts.contains_key(&email.to_ascii_lowercase()) {
            return;
        }
        let mut account = Account::default();
        for (name, _, _) in SYSTEM_FOLDERS {
            st.next_uidvalidity += 1;
            account
                .folders
                .insert(name.to_owned(), new_folder(st.next_uidvalidity));
        }
        st.accounts.insert(email.to_ascii_lowercase(), account);
    }

    /// Lets `email` sign in by LOGIN / AUTHENTICATE PLAIN with `password` (an app password).
    pub fn set_app_password(&self, email: &str, password: &str) -> Result<()> {
        self.with_account(email, |a, _| a.app_password = Some(password.to_owned()))
    }

    /// The most signed-in connections per user (default [`DEFAULT_CONNECTION_CAP`]).
    pub fn set_connection_cap(&self, cap: usize) {
        self.shared.lock().cap = cap;
    }

    /// Each user may download `bytes` of message data per `window` (a fixed window that starts
    /// with the first download after the previous one ended; Gmail's allowance is about 2,500 MB
    /// per day). A FETCH that would pass it is refused with [`BANDWIDTH_EXCEEDED`] and the user
    /// cannot sign in until the window ends.
    pub fn set_download_limit(&self, bytes: u64, window: Duration) {
        self.shared.lock().limit = Some((bytes, window));
    }

    /// Adds a message to `user`'s account; returns its `X-GM-MSGID`.
    pub fn append(&self, user: &str, message: GmailMessage) -> Result<u64> {
        self.with_account_state(user, |a, st| {
            let msgid = st.next_msgid;
            st.next_msgid += 1;
            let thrid = message
                .thread_of
                .and_then(|t| a.messages.get(&t).map(|m| m.thrid))
                .unwrap_or(msgid);
            let mut m = Msg {
                msgid,
                thrid,
                labels: BTreeSet::new(),
                flags: BTreeSet::new(),
                internal_date: message.internal_date,
                raw: Arc::new(message.raw),
                place: message.place,
            };
            for l in &message.labels {
                m.set_label(l, true);
            }
            for f in &message.flags {
                m.set_flag(f, true);
            }
            a.messages.insert(msgid, m);
            a.sync(msgid, &mut st.next_uidvalidity);
            msgid
        })
    }

    /// Adds labels to a message (it shows in their folders from now on, with new UIDs).
    pub fn add_labels(&self, user: &str, msgid: u64, labels: &[&str]) -> Result<()> {
        self.change_labels(user, msgid, labels, true)
    }

    /// Removes labels from a message.
    pub fn remove_labels(&self, user: &str, msgid: u64, labels: &[&str]) -> Result<()> {
        self.change_labels(user, msgid, labels, false)
    }

    fn change_labels(&self, user: &str, msgid: u64, labels: &[&str], on: bool) -> Result<()> {
        self.with_account_state(user, |a, st| {
            let m = a
                .messages
                .get_mut(&msgid)
                .ok_or_else(|| Error::InvalidOption(format!("{user} has no message {msgid}")))?;
            for l in labels {
                m.set_label(l, on);
            }
            a.sync(msgid, &mut st.next_uidvalidity);
            Ok(())
        })?
    }

    /// Every message of `user`, by `X-GM-MSGID`.
    pub fn messages(&self, user: &str) -> Result<Vec<StoredMessage>> {
        self.with_account(user, |a, _| {
            a.messages
                .values()
                .map(|m| StoredMessage {
                    msgid: m.msgid,
                    thrid: m.thrid,
                    labels: m.labels.iter().cloned().collect(),
                    flags: m.flags(),
                    internal_date: m.internal_date,
                    size: m.raw.len() as u64,
                    place: m.place,
                })
                .collect()
        })
    }

    /// `(UID, X-GM-MSGID)` of every message in `folder` (UTF-8 name), by UID; empty for a
    /// folder that does not exist.
    pub fn folder_uids(&self, user: &str, folder: &str) -> Result<Vec<(u32, u64)>> {
        self.with_account(user, |a, _| {
            a.folders
                .get(folder)
                .map(|f| f.uids.iter().map(|(u, m)| (*u, *m)).collect())
                .unwrap_or_default()
        })
    }

    /// Every folder of `user` except `[Gmail]` itself (UTF-8 names, sorted).
    pub fn folders(&self, user: &str) -> Result<Vec<String>> {
        self.with_account(user, |a, _| a.folders.keys().cloned().collect())
    }

    /// `user`'s counters.
    pub fn stats(&self, user: &str) -> Result<GmailUserStats> {
        self.with_account(user, |a, _| a.stats.clone())
    }

    /// Message bytes sent to `user` so far.
    pub fn bytes_served(&self, user: &str) -> Result<u64> {
        Ok(self.stats(user)?.bytes_served)
    }

    fn with_account<T>(&self, user: &str, f: impl FnOnce(&mut Account, u32) -> T) -> Result<T> {
        self.with_account_state(user, |a, st| f(a, st.next_uidvalidity))
    }

    fn with_account_state<T>(
        &self,
        user: &str,
        f: impl FnOnce(&mut Account, &mut StateCounters) -> T,
    ) -> Result<T> {
        let mut st = self.shared.lock();
        let State {
            accounts,
            next_msgid,
            next_uidvalidity,
            ..
        } = &mut *st;
        let a = accounts
            .get_mut(&user.to_ascii_lowercase())
            .ok_or_else(|| Error::InvalidOption(format!("no Gmail user {user}; add_user first")))?;
        let mut counters = StateCounters {
            next_msgid: *next_msgid,
            next_uidvalidity: *next_uidvalidity,
        };
        let out = f(a, &mut counters);
        *next_msgid = counters.next_msgid;
        *next_uidvalidity = counters.next_uidvalidity;
        Ok(out)
    }
}

/// The server-wide counters an account change may advance.
struct StateCounters {
    next_msgid: u64,
    next_uidvalidity: u32,
}
