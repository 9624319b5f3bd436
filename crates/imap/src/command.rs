//! Command encoder: tags, atom/quoted/literal choice, LITERAL+ / LITERAL-, mUTF-7 names.

use crate::{Error, InternalDate, Secret, mutf7};
use bytes::Bytes;
use std::fmt;

/// How literals may be sent, from the server's capabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiteralMode {
    /// Plain IMAP: every literal waits for the server's `+` continuation.
    Sync,
    /// RFC 7888 LITERAL+: every literal is sent at once (`{N+}`).
    Plus,
    /// RFC 7888 LITERAL-: literals up to 4096 bytes are sent at once, larger ones wait.
    Minus,
}

/// One piece of an encoded command.
#[derive(Clone, PartialEq, Eq)]
pub enum Part {
    /// Bytes to write as they are (a literal's `{N}\r\n` announcement is at the end of the text before it).
    Text(Vec<u8>),
    /// Literal data. If `sync`, the client must wait for the server's `+` before writing it.
    Literal {
        /// The literal's bytes.
        data: Bytes,
        /// Whether a continuation request must be awaited first.
        sync: bool,
    },
}

impl fmt::Debug for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Text(t) => write!(f, "Text({} bytes)", t.len()),
            Part::Literal { data, sync } => write!(f, "Literal({} bytes, sync={sync})", data.len()),
        }
    }
}

/// A command ready to be written: its tag, name (for errors) and parts.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// The tag (`A1`, `A2`, ...). Empty for `DONE`.
    pub tag: String,
    /// Command name such as `UID FETCH`, used in errors; never contains arguments.
    pub name: &'static str,
    /// What to write, in order.
    pub parts: Vec<Part>,
}

impl Encoded {
    /// All parts concatenated (convenient for tests and for commands without sync literals).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => v.extend_from_slice(t),
                Part::Literal { data, .. } => v.extend_from_slice(data),
            }
        }
        v
    }

    /// True if some literal waits for a continuation request.
    pub fn has_sync_literal(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Literal { sync: true, .. }))
    }
}

/// Attributes asked for by STATUS (and LIST-STATUS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusItem {
    /// Number of messages.
    Messages,
    /// Next UID.
    UidNext,
    /// UIDVALIDITY.
    UidValidity,
    /// Unseen count.
    Unseen,
    /// CONDSTORE highest mod-sequence.
    HighestModSeq,
    /// RFC 8438 total size (sum of RFC822.SIZE).
    Size,
}

impl StatusItem {
    fn name(self) -> &'static str {
        match self {
            StatusItem::Messages => "MESSAGES",
            StatusItem::UidNext => "UIDNEXT",
            StatusItem::UidValidity => "UIDVALIDITY",
            StatusItem::Unseen => "UNSEEN",
            StatusItem::HighestModSeq => "HIGHESTMODSEQ",
            StatusItem::Size => "SIZE",
        }
    }
}

/// A set of UIDs (`1:5,7,10:*`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct UidSet(Vec<(u32, Option<u32>)>);

impl UidSet {
    /// Compresses sorted or unsorted UIDs into ranges.
    pub fn from_uids(uids: &[u32]) -> Self {
        let mut v: Vec<u32> = uids.to_vec();
        v.sort_unstable();
        v.dedup();
        let mut out: Vec<(u32, Option<u32>)> = Vec::new();
        for u in v {
            match out.last_mut() {
                Some((_, Some(end))) if end.checked_add(1) == Some(u) => *end = u,
                _ => out.push((u, Some(u))),
            }
        }
        UidSet(out)
    }

    /// `from:*` — every UID from `from` on.
    pub fn from_onwards(from: u32) -> Self {
        UidSet(vec![(from.max(1), None)])
    }

    /// A closed range.
    pub fn range(from: u32, to: u32) -> Self {
        UidSet(vec![(from.min(to), Some(from.max(to)))])
    }

    /// True if the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for UidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (a, b)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match b {
                Some(b) if b == a => write!(f, "{a}")?,
                Some(b) => write!(f, "{a}:{b}")?,
                None => write!(f, "{a}:*")?,
            }
        }
        Ok(())
    }
}

/// A UID SEARCH criterion. Criteria in one search are ANDed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchKey {
    /// All messages.
    All,
    /// Internal date on or after the UTC day containing this Unix time.
    Since(i64),
    /// Internal date before the UTC day containing this Unix time.
    Before(i64),
    /// RFC822.SIZE larger than this.
    Larger(u64),
    /// RFC822.SIZE smaller than this.
    Smaller(u64),
    /// UIDs in this set.
    Uid(UidSet),
}

/// What UID FETCH asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchItems {
    /// FLAGS.
    pub flags: bool,
    /// INTERNALDATE.
    pub internal_date: bool,
    /// RFC822.SIZE.
    pub size: bool,
    /// `BODY.PEEK[HEADER.FIELDS (...)]` for these header names (empty = not fetched).
    pub header_fields: Vec<String>,
    /// `BODY.PEEK[]` — the whole message.
    pub body: bool,
    /// MODSEQ (CONDSTORE).
    pub modseq: bool,
    /// X-GM-MSGID, X-GM-THRID and X-GM-LABELS (Gmail, X-GM-EXT-1).
    pub gmail: bool,
}

impl FetchItems {
    /// Only the message (`BODY.PEEK[]`), for reading stored bytes back.
    pub fn body_only() -> Self {
        FetchItems {
            flags: false,
            internal_date: false,
            size: false,
            header_fields: Vec::new(),
            body: true,
            modseq: false,
            gmail: false,
        }
    }
}

impl Default for FetchItems {
    fn default() -> Self {
        FetchItems {
            flags: true,
            internal_date: true,
            size: true,
            header_fields: Vec::new(),
            body: true,
            modseq: false,
            gmail: false,
        }
    }
}

/// One message for APPEND.
#[derive(Clone, Debug)]
pub struct AppendMessage {
    /// Flags to set (`\Seen`, keywords). `\Recent` is dropped.
    pub flags: Vec<String>,
    /// INTERNALDATE to keep.
    pub internal_date: Option<InternalDate>,
    /// The full RFC 5322 message.
    pub data: Bytes,
}

/// How STORE changes flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreMode {
    /// `+FLAGS`.
    Add,
    /// `-FLAGS`.
    Remove,
    /// `FLAGS`.
    Replace,
}

/// An IMAP command. Mailbox names are UTF-8; the encoder turns them into modified UTF-7.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Command {
    /// CAPABILITY.
    Capability,
    /// NOOP.
    Noop,
    /// LOGOUT.
    Logout,
    /// STARTTLS.
    StartTls,
    /// NAMESPACE (RFC 2342).
    Namespace,
    /// LOGIN user password.
    Login {
        /// User name.
        user: String,
        /// Password.
        password: Secret,
    },
    /// AUTHENTICATE mechanism with an optional SASL-IR initial response (already base64).
    Authenticate {
        /// Mechanism, e.g. `PLAIN`, `XOAUTH2`.
        mechanism: &'static str,
        /// Base64 initial response, sent on the command line (RFC 4959).
        initial_response: Option<Secret>,
    },
    /// ID (RFC 2971) with field/value pairs.
    Id(Vec<(String, String)>),
    /// ENABLE (RFC 5161).
    Enable(Vec<String>),
    /// LIST, optionally with RETURN (SPECIAL-USE) and RETURN (STATUS ...).
    List {
        /// Reference name.
        reference: String,
        /// Pattern (`*`, `%`).
        pattern: String,
        /// Add `RETURN (SPECIAL-USE)`.
        special_use: bool,
        /// Add `STATUS (...)` to RETURN (RFC 5819) when non-empty.
        status: Vec<StatusItem>,
    },
    /// STATUS mailbox (items).
    Status {
        /// Mailbox (UTF-8).
        mailbox: String,
        /// Items.
        items: Vec<StatusItem>,
    },
    /// SELECT mailbox.
    Select {
        /// Mailbox (UTF-8).
        mailbox: String,
        /// Add `(CONDSTORE)`.
        condstore: bool,
    },
    /// EXAMINE mailbox (read-only).
    Examine {
        /// Mailbox (UTF-8).
        mailbox: String,
        /// Add `(CONDSTORE)`.
        condstore: bool,
    },
    /// CREATE mailbox.
    Create {
        /// Mailbox (UTF-8).
        mailbox: String,
    },
    /// UID SEARCH criteria (ANDed).
    UidSearch(Vec<SearchKey>),
    /// UID FETCH set items.
    UidFetch {
        /// UIDs.
        uids: UidSet,
        /// Items.
        items: FetchItems,
    },
    /// APPEND (MULTIAPPEND when more than one message).
    Append {
        /// Mailbox (UTF-8).
        mailbox: String,
        /// Messages.
        messages: Vec<AppendMessage>,
    },
    /// UID STORE set (+|-)FLAGS[.SILENT] (flags).
    UidStore {
        /// UIDs.
        uids: UidSet,
        /// Add, remove or replace.
        mode: StoreMode,
        /// Flags.
        flags: Vec<String>,
        /// `.SILENT`.
        silent: bool,
    },
    /// `UID FETCH 1:* (UID FLAGS)`, with `(CHANGEDSINCE n)` (RFC 7162 CONDSTORE) when given:
    /// every message's flags, or those changed since mod-sequence `n`.
    UidFetchFlags {
        /// Only messages whose mod-sequence is above this.
        changed_since: Option<u64>,
    },
    /// UID MOVE set mailbox (RFC 6851).
    UidMove {
        /// UIDs.
        uids: UidSet,
        /// Destination mailbox (UTF-8).
        mailbox: String,
    },
    /// UID COPY set mailbox.
    UidCopy {
        /// UIDs.
        uids: UidSet,
        /// Destination mailbox (UTF-8).
        mailbox: String,
    },
    /// UID EXPUNGE set (RFC 4315 UIDPLUS): removes only these `\Deleted` messages.
    UidExpunge(UidSet),
    /// CLOSE.
    Close,
    /// IDLE (RFC 2177).
    Idle,
}

fn is_atom_char(c: u8) -> bool {
    c > 0x20 && c < 0x7f && !matches!(c, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// Writes commands with increasing tags.
#[derive(Debug, Clone)]
pub struct Encoder {
    next_tag: u64,
    prefix: &'static str,
    /// Literal mode in force.
    pub literal_mode: LiteralMode,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            next_tag: 1,
            prefix: "A",
            literal_mode: LiteralMode::Sync,
        }
    }
}

struct Builder {
    parts: Vec<Part>,
    cur: Vec<u8>,
    mode: LiteralMode,
}

impl Builder {
    fn raw(&mut self, s: &[u8]) {
        self.cur.extend_from_slice(s);
    }
    fn sp(&mut self) {
        self.cur.push(b' ');
    }
    fn literal(&mut self, data: Bytes) {
        let sync = match self.mode {
            LiteralMode::Sync => true,
            LiteralMode::Plus => false,
            LiteralMode::Minus => data.len() > 4096,
        };
        let ann = if sync {
            format!("{{{}}}\r\n", data.len())
        } else {
            format!("{{{}+}}\r\n", data.len())
        };
        self.cur.extend_from_slice(ann.as_bytes());
        self.parts.push(Part::Text(std::mem::take(&mut self.cur)));
        self.parts.push(Part::Literal { data, sync });
    }
    /// astring: atom if possible, else quoted, else literal.
    fn astring(&mut self, s: &[u8]) {
        if !s.is_empty() && s.iter().all(|&c| is_atom_char(c) || c == b']') {
            self.raw(s);
        } else if s.len() < 1000 && s.iter().all(|&c| (0x20..0x7f).contains(&c) || c == b'\t') {
            self.quoted(s);
        } else {
            self.literal(Bytes::copy_from_slice(s));
        }
    }
    /// list-mailbox pattern: atoms plus `%` and `*`.
    fn pattern(&mut self, s: &[u8]) {
        if !s.is_empty()
            && s.iter()
                .all(|&c| is_atom_char(c) || c == b']' || c == b'%' || c == b'*')
        {
            self.raw(s);
        } else {
            self.astring(s);
        }
    }
    fn quoted(&mut self, s: &[u8]) {
        self.cur.push(b'"');
        for &c in s {
            if c == b'"' || c == b'\\' {
                self.cur.push(b'\\');
            }
            self.cur.push(c);
        }
        self.cur.push(b'"');
    }
    fn mailbox(&mut self, name: &str) {
        let enc = if name.eq_ignore_ascii_case("INBOX") {
            "INBOX".to_owned()
        } else {
            mutf7::encode(name)
        };
        self.astring(enc.as_bytes());
    }
    fn flags(&mut self, flags: &[String]) -> Result<(), Error> {
        self.raw(b"(");
        let mut first = true;
        for f in flags {
            if f.eq_ignore_ascii_case("\\Recent") {
                continue;
            }
            let body = f.strip_prefix('\\').unwrap_or(f);
            if body.is_empty() || !body.bytes().all(is_atom_char) {
                return Err(Error::InvalidInput(format!(
                    "flag {f:?} is not a valid IMAP flag or keyword"
                )));
            }
            if !first {
                self.sp();
            }
            first = false;
            self.raw(f.as_bytes());
        }
        self.raw(b")");
        Ok(())
    }
    fn finish(mut self) -> Vec<Part> {
        self.cur.extend_from_slice(b"\r\n");
        self.parts.push(Part::Text(self.cur));
        self.parts
    }
}

impl Encoder {
    /// An encoder whose tags start at `A1`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Peeks the tag the next command will get.
    pub fn next_tag(&self) -> String {
        format!("{}{}", self.prefix, self.next_tag)
    }

    /// Encodes `DONE` (ends IDLE; untagged).
    pub fn idle_done() -> Encoded {
        Encoded {
            tag: String::new(),
            name: "DONE",
            parts: vec![Part::Text(b"DONE\r\n".to_vec())],
        }
    }

    /// Encodes a SASL continuation line (base64 already) or `*` to cancel.
    pub fn sasl_line(line: &str) -> Encoded {
        Encoded {
            tag: String::new(),
            name: "AUTHENTICATE",
            parts: vec![Part::Text(format!("{line}\r\n").into_bytes())],
        }
    }

    /// Encodes a command with a fresh tag.
    pub fn encode(&mut self, cmd: &Command) -> Result<Encoded, Error> {
        let tag = self.next_tag();
        self.next_tag += 1;
        let mut b = Builder {
            parts: Vec::new(),
            cur: Vec::with_capacity(64),
            mode: self.literal_mode,
        };
        b.raw(tag.as_bytes());
        b.sp();
        let name: &'static str = match cmd {
            Command::Capability => simple(&mut b, "CAPABILITY"),
            Command::Noop => simple(&mut b, "NOOP"),
            Command::Logout => simple(&mut b, "LOGOUT"),
            Command::StartTls => simple(&mut b, "STARTTLS"),
            Command::Namespace => simple(&mut b, "NAMESPACE"),
            Command::Close => simple(&mut b, "CLOSE"),
            Command::Idle => simple(&mut b, "IDLE"),
            Command::Login { user, password } => {
                b.raw(b"LOGIN ");
                b.astring(user.as_bytes());
                b.sp();
                b.astring(password.expose().as_bytes());
                "LOGIN"
            }
            Command::Authenticate {
                mechanism,
                initial_response,
            } => {
                b.raw(b"AUTHENTICATE ");
                b.raw(mechanism.as_bytes());
                if let Some(ir) = initial_response {
                    b.sp();
                    b.raw(if ir.expose().is_empty() {
                        b"="
                    } else {
                        ir.expose().as_bytes()
                    });
                }
                "AUTHENTICATE"
            }
            Command::Id(fields) => {
                b.raw(b"ID ");
                if fields.is_empty() {
                    b.raw(b"NIL");
                } else {
                    b.raw(b"(");
                    for (i, (k, v)) in fields.iter().enumerate() {
                        if i > 0 {
                            b.sp();
                        }
                        b.quoted(sanitize(k).as_bytes());
                        b.sp();
                        b.quoted(sanitize(v).as_bytes());
                    }
                    b.raw(b")");
                }
                "ID"
            }
            Command::Enable(caps) => {
                b.raw(b"ENABLE");
                for c in caps {
                    if c.is_empty() || !c.bytes().all(is_atom_char) {
                        return Err(Error::InvalidInput(format!(
                            "capability {c:?} is not an atom"
                        )));
                    }
                    b.sp();
                    b.raw(c.as_bytes());
                }
                "ENABLE"
            }
            Command::List {
                reference,
                pattern,
                special_use,
                status,
            } => {
                b.raw(b"LIST ");
                b.mailbox_or_empty(reference);
                b.sp();
                let enc = mutf7::encode(pattern);
                b.pattern(enc.as_bytes());
                if *special_use || !status.is_empty() {
                    b.raw(b" RETURN (");
                    if *special_use {
                        b.raw(b"SPECIAL-USE");
                    }
                    if !status.is_empty() {
                        if *special_use {
                            b.sp();
                        }
                        b.raw(b"STATUS ");
                        status_items(&mut b, status);
                    }
                    b.raw(b")");
                }
                "LIST"
            }
            Command::Status { mailbox, items } => {
                b.raw(b"STATUS ");
                b.mailbox(mailbox);
                b.sp();
                status_items(&mut b, items);
                "STATUS"
            }
            Command::Select { mailbox, condstore } | Command::Examine { mailbox, condstore } => {
                let n = if matches!(cmd, Command::Select { .. }) {
                    "SELECT"
                } else {
                    "EXAMINE"
                };
                b.raw(n.as_bytes());
                b.sp();
                b.mailbox(mailbox);
                if *condstore {
                    b.raw(b" (CONDSTORE)");
                }
                n
            }
            Command::Create { mailbox } => {
                b.raw(b"CREATE ");
                b.mailbox(mailbox);
                "CREATE"
            }
            Command::UidSearch(keys) => {
                b.raw(b"UID SEARCH");
                if keys.is_empty() {
                    b.raw(b" ALL");
                }
                for k in keys {
                    b.sp();
                    match k {
                        SearchKey::All => b.raw(b"ALL"),
                        SearchKey::Since(t) => {
                            b.raw(format!("SINCE {}", search_day(*t)?).as_bytes())
                        }
                        SearchKey::Before(t) => {
                            b.raw(format!("BEFORE {}", search_day(*t)?).as_bytes())
                        }
                        SearchKey::Larger(n) => b.raw(format!("LARGER {n}").as_bytes()),
                        SearchKey::Smaller(n) => b.raw(format!("SMALLER {n}").as_bytes()),
                        SearchKey::Uid(set) => {
                            if set.is_empty() {
                                return Err(Error::InvalidInput("empty UID set in SEARCH".into()));
                            }
                            b.raw(format!("UID {set}").as_bytes())
                        }
                    }
                }
                "UID SEARCH"
            }
            Command::UidFetchFlags { changed_since } => {
                b.raw(b"UID FETCH 1:* (UID FLAGS)");
                if let Some(n) = changed_since {
                    b.raw(format!(" (CHANGEDSINCE {n})").as_bytes());
                }
                "UID FETCH"
            }
            Command::UidMove { uids, mailbox } | Command::UidCopy { uids, mailbox } => {
                if uids.is_empty() {
                    return Err(Error::InvalidInput("empty UID set in COPY/MOVE".into()));
                }
                let n = if matches!(cmd, Command::UidMove { .. }) {
                    "UID MOVE"
                } else {
                    "UID COPY"
                };
                b.raw(format!("{n} {uids} ").as_bytes());
                b.mailbox(mailbox);
                n
            }
            Command::UidExpunge(uids) => {
                if uids.is_empty() {
                    return Err(Error::InvalidInput("empty UID set in EXPUNGE".into()));
                }
                b.raw(format!("UID EXPUNGE {uids}").as_bytes());
                "UID EXPUNGE"
            }
            Command::UidFetch { uids, items } => {
                if uids.is_empty() {
                    return Err(Error::InvalidInput("empty UID set in FETCH".into()));
                }
                b.raw(format!("UID FETCH {uids} (UID").as_bytes());
                if items.flags {
                    b.raw(b" FLAGS");
                }
                if items.internal_date {
                    b.raw(b" INTERNALDATE");
                }
                if items.size {
                    b.raw(b" RFC822.SIZE");
                }
                if items.modseq {
                    b.raw(b" MODSEQ");
                }
                if items.gmail {
                    b.raw(b" X-GM-MSGID X-GM-THRID X-GM-LABELS");
                }
                if !items.header_fields.is_empty() {
                    b.raw(b" BODY.PEEK[HEADER.FIELDS (");
                    for (i, h) in items.header_fields.iter().enumerate() {
                        if h.is_empty() || !h.bytes().all(|c| is_atom_char(c) && c != b':') {
                            return Err(Error::InvalidInput(format!(
                                "header name {h:?} is not valid"
                            )));
                        }
                        if i > 0 {
                            b.sp();
                        }
                        b.raw(h.as_bytes());
                    }
                    b.raw(b")]");
                }
                if items.body {
                    b.raw(b" BODY.PEEK[]");
                }
                b.raw(b")");
                "UID FETCH"
            }
            Command::Append { mailbox, messages } => {
                if messages.is_empty() {
                    return Err(Error::InvalidInput("APPEND without messages".into()));
                }
                b.raw(b"APPEND ");
                b.mailbox(mailbox);
                for m in messages {
                    b.sp();
                    if !m.flags.is_empty() {
                        b.flags(&m.flags)?;
                        b.sp();
                    }
                    if let Some(d) = m.internal_date {
                        b.raw(format!("\"{}\" ", d.to_imap()).as_bytes());
                    }
                    b.literal(m.data.clone());
                }
                "APPEND"
            }
            Command::UidStore {
                uids,
                mode,
                flags,
                silent,
            } => {
                if uids.is_empty() {
                    return Err(Error::InvalidInput("empty UID set in STORE".into()));
                }
                let op = match mode {
                    StoreMode::Add => "+FLAGS",
                    StoreMode::Remove => "-FLAGS",
                    StoreMode::Replace => "FLAGS",
                };
                b.raw(
                    format!(
                        "UID STORE {uids} {op}{} ",
                        if *silent { ".SILENT" } else { "" }
                    )
                    .as_bytes(),
                );
                b.flags(flags)?;
                "UID STORE"
            }
        };
        Ok(Encoded {
            tag,
            name,
            parts: b.finish(),
        })
    }
}

impl Builder {
    fn mailbox_or_empty(&mut self, name: &str) {
        if name.is_empty() {
            self.raw(b"\"\"");
        } else {
            self.mailbox(name);
        }
    }
}

fn simple(b: &mut Builder, name: &'static str) -> &'static str {
    b.raw(name.as_bytes());
    name
}

fn status_items(b: &mut Builder, items: &[StatusItem]) {
    b.raw(b"(");
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            b.sp();
        }
        b.raw(it.name().as_bytes());
    }
    b.raw(b")");
}

fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| (' '..='~').contains(c))
        .take(1024)
        .collect()
}

/// The UTC day of `unix` seconds in the IMAP `date` form for SEARCH SINCE/BEFORE.
fn search_day(unix: i64) -> Result<String, Error> {
    InternalDate::from_unix_utc(unix)
        .map(|d| d.to_imap_search_day())
        .ok_or_else(|| Error::InvalidInput(format!("search date {unix} s is outside 0000-9999")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(mode: LiteralMode, c: Command) -> String {
        let mut e = Encoder::new();
        e.literal_mode = mode;
        String::from_utf8(e.encode(&c).unwrap().to_bytes()).unwrap()
    }

    #[test]
    fn rfc3501_login_examples() {
        // RFC 3501 §6.2.3
        let s = enc(
            LiteralMode::Sync,
            Command::Login {
                user: "SMITH".into(),
                password: "SESAME".into(),
            },
        );
        assert_eq!(s, "A1 LOGIN SMITH SESAME\r\n");
        // quoted when a space is present, literal when 8-bit
        let s = enc(
            LiteralMode::Sync,
            Command::Login {
                user: "fred foo".into(),
                password: "p\"w".into(),
            },
        );
        assert_eq!(s, "A1 LOGIN \"fred foo\" \"p\\\"w\"\r\n");
        let mut e = Encoder::new();
        let c = e
            .encode(&Command::Login {
                user: "u".into(),
                password: "pässword".into(),
            })
            .unwrap();
        assert!(c.has_sync_literal());
        assert_eq!(c.to_bytes(), "A1 LOGIN u {9}\r\npässword\r\n".as_bytes());
    }

    #[test]
    fn sync_commands() {
        let set = UidSet::from_uids(&[3, 4, 5, 9]);
        assert_eq!(
            enc(
                LiteralMode::Plus,
                Command::UidFetchFlags {
                    changed_since: Some(715)
                }
            ),
            "A1 UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE 715)\r\n"
        );
        assert_eq!(
            enc(
                LiteralMode::Plus,
                Command::UidFetchFlags {
                    changed_since: None
                }
            ),
            "A1 UID FETCH 1:* (UID FLAGS)\r\n"
        );
        assert_eq!(
            enc(
                LiteralMode::Plus,
                Command::UidMove {
                    uids: set.clone(),
                    mailbox: "Archiv/Größe".into()
                }
            ),
            "A1 UID MOVE 3:5,9 Archiv/Gr&APYA3w-e\r\n"
        );
        assert_eq!(
            enc(
                LiteralMode::Plus,
                Command::UidCopy {
                    uids: set.clone(),
                    mailbox: "a b".into()
                }
            ),
            "A1 UID COPY 3:5,9 \"a b\"\r\n"
        );
        assert_eq!(
            enc(LiteralMode::Plus, Command::UidExpunge(set)),
            "A1 UID EXPUNGE 3:5,9\r\n"
        );
    }

    #[test]
    fn literal_plus_and_minus() {
        let msg = AppendMessage {
            flags: vec!["\\Seen".into(), "\\Recent".into()],
            internal_date: Some(InternalDate::parse_imap("17-Jul-1996 02:44:25 -0700").unwrap()),
            data: Bytes::from_static(b"Subject: hi\r\n\r\nbody\r\n"),
        };
        let c = Command::Append {
            mailbox: "saved-messages".into(),
            messages: vec![msg.clone()],
        };
        assert_eq!(
            enc(LiteralMode::Plus, c.clone()),
            "A1 APPEND saved-messages (\\Seen) \"17-Jul-1996 02:44:25 -0700\" {21+}\r\nSubject: hi\r\n\r\nbody\r\n\r\n"
        );
        assert!(enc(LiteralMode::Minus, c.clone()).contains("{21+}"));
        assert!(enc(LiteralMode::Sync, c).contains("{21}\r\n"));
        let big = AppendMessage {
            flags: vec![],
            internal_date: None,
            data: Bytes::from(vec![b'a'; 5000]),
        };
        let s = enc(
            LiteralMode::Minus,
            Command::Append {
                mailbox: "X".into(),
                messages: vec![big.clone(), big],
            },
        );
        assert!(s.starts_with("A1 APPEND X {5000}\r\n"));
        assert_eq!(
            s.matches("{5000}").count(),
            2,
            "MULTIAPPEND puts both messages in one command"
        );
    }

    #[test]
    fn mailbox_names_and_list() {
        let s = enc(
            LiteralMode::Sync,
            Command::Create {
                mailbox: "Entwürfe/Ärger & Co".into(),
            },
        );
        assert_eq!(s, "A1 CREATE \"Entw&APw-rfe/&AMQ-rger &- Co\"\r\n");
        let s = enc(
            LiteralMode::Sync,
            Command::List {
                reference: String::new(),
                pattern: "*".into(),
                special_use: true,
                status: vec![StatusItem::Messages, StatusItem::UidValidity],
            },
        );
        assert_eq!(
            s,
            "A1 LIST \"\" * RETURN (SPECIAL-USE STATUS (MESSAGES UIDVALIDITY))\r\n"
        );
        assert_eq!(
            enc(
                LiteralMode::Sync,
                Command::Examine {
                    mailbox: "inbox".into(),
                    condstore: true
                }
            ),
            "A1 EXAMINE INBOX (CONDSTORE)\r\n"
        );
    }

    #[test]
    fn fetch_search_store() {
        let set = UidSet::from_uids(&[5, 1, 2, 3, 9, 10, 3]);
        assert_eq!(set.to_string(), "1:3,5,9:10");
        let items = FetchItems {
            header_fields: vec!["Message-ID".into(), "Date".into()],
            ..FetchItems::default()
        };
        assert_eq!(
            enc(LiteralMode::Sync, Command::UidFetch { uids: set, items }),
            "A1 UID FETCH 1:3,5,9:10 (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER.FIELDS (Message-ID Date)] BODY.PEEK[])\r\n"
        );
        assert_eq!(
            enc(
                LiteralMode::Sync,
                Command::UidSearch(vec![
                    SearchKey::Since(0),
                    SearchKey::Before(86_400 * 31),
                    SearchKey::Larger(10)
                ])
            ),
            "A1 UID SEARCH SINCE 1-Jan-1970 BEFORE 1-Feb-1970 LARGER 10\r\n"
        );
        assert_eq!(
            enc(
                LiteralMode::Sync,
                Command::UidStore {
                    uids: UidSet::from_onwards(4),
                    mode: StoreMode::Add,
                    flags: vec!["\\Deleted".into()],
                    silent: true
                }
            ),
            "A1 UID STORE 4:* +FLAGS.SILENT (\\Deleted)\r\n"
        );
        let mut e = Encoder::new();
        assert!(
            e.encode(&Command::UidStore {
                uids: UidSet::from_onwards(1),
                mode: StoreMode::Add,
                flags: vec!["bad flag".into()],
                silent: false
            })
            .is_err()
        );
        assert_eq!(e.next_tag(), "A2");
    }

    #[test]
    fn id_and_auth() {
        assert_eq!(
            enc(
                LiteralMode::Sync,
                Command::Id(vec![("name".into(), "o365-migrate".into())])
            ),
            "A1 ID (\"name\" \"o365-migrate\")\r\n"
        );
        let s = enc(
            LiteralMode::Sync,
            Command::Authenticate {
                mechanism: "PLAIN",
                initial_response: Some("AGZyZWQAdGlnZXI=".into()),
            },
        );
        assert_eq!(s, "A1 AUTHENTICATE PLAIN AGZyZWQAdGlnZXI=\r\n");
    }
}
