//! Sans-IO response side: bytes in, typed responses out.
//!
//! [`ResponseReader`] frames responses (lines plus announced literals) itself, so it can refuse
//! an oversized literal *before* anything is allocated, and report each literal announcement so a
//! driver can reserve a byte budget before reading it. Complete frames are parsed with
//! `imap-proto` and converted to this crate's own types; message bodies are `Bytes` slices of the
//! receive buffer (no copy).

use crate::response::*;
use crate::{Error, InternalDate, mutf7};
use bytes::{Bytes, BytesMut};
use std::borrow::Cow;

/// Default ceiling for one literal (message): 256 MiB.
pub const DEFAULT_MAX_LITERAL: u64 = 256 * 1024 * 1024;
/// Longest line (outside literals) accepted: 1 MiB.
pub const MAX_LINE: usize = 1024 * 1024;

/// Literals at least this large get a receive allocation of their own, sized to the frame.
const BIG_LITERAL: usize = 256 * 1024;
/// Room kept after a big literal for the rest of its frame and the start of the next response
/// (more than the driver's 16 KiB refill threshold, so the literal is never copied to grow).
const FRAME_SLACK: usize = 64 * 1024;
/// Initial receive buffer.
const INITIAL_BUFFER: usize = 64 * 1024;

/// What [`ResponseReader::poll`] produced.
#[derive(Debug)]
pub enum Progress {
    /// A complete response.
    Response(Response),
    /// The response being read announced a literal of this many bytes (already checked against
    /// the limit). A driver may reserve budget now; the bytes are not buffered yet.
    LiteralAnnounced(u64),
    /// More bytes are needed; at least this many would complete the current literal (0 if unknown).
    NeedMore(usize),
}

/// The response-side state machine.
#[derive(Debug)]
pub struct ResponseReader {
    buf: BytesMut,
    /// Where scanning for the next line end resumes (absolute index in `buf`).
    scan: usize,
    /// End of the literal currently being received (absolute), if inside one.
    literal_end: Option<usize>,
    /// Start of the current line.
    line_start: usize,
    /// Literal bytes announced in the current frame.
    frame_literals: u64,
    max_literal: u64,
    failed: bool,
}

impl Default for ResponseReader {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LITERAL)
    }
}

impl ResponseReader {
    /// A reader refusing literals above `max_literal` bytes.
    pub fn new(max_literal: u64) -> Self {
        ResponseReader {
            buf: BytesMut::with_capacity(INITIAL_BUFFER),
            scan: 0,
            literal_end: None,
            line_start: 0,
            frame_literals: 0,
            max_literal,
            failed: false,
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The receive buffer, for drivers that read straight into it (`read_buf`).
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes buffered but not yet returned as responses.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Advances the state machine.
    pub fn poll(&mut self) -> Result<Progress, Error> {
        if self.failed {
            return Err(Error::protocol(
                "connection unusable after an earlier protocol error",
                b"",
            ));
        }
        match self.poll_inner() {
            Ok(p) => Ok(p),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    fn poll_inner(&mut self) -> Result<Progress, Error> {
        if let Some(end) = self.literal_end {
            if self.buf.len() < end {
                let missing = end - self.buf.len();
                if end - self.line_start >= BIG_LITERAL && self.buf.capacity() < end + FRAME_SLACK {
                    // A big literal is read into an allocation sized for its frame (the message
                    // cut from it keeps exactly that much alive, not a doubled buffer). This
                    // happens on the first poll after `LiteralAnnounced`, i.e. after the driver
                    // reserved the bytes from its budget: memory follows the budget.
                    let mut fresh = BytesMut::with_capacity(end + FRAME_SLACK);
                    fresh.extend_from_slice(&self.buf);
                    self.buf = fresh;
                } else if self.buf.capacity() - self.buf.len() < missing {
                    self.buf.reserve(missing);
                }
                return Ok(Progress::NeedMore(missing));
            }
            self.literal_end = None;
            self.scan = end;
            self.line_start = end;
        }
        let Some(rel) = self
            .buf
            .get(self.scan..)
            .and_then(|s| s.iter().position(|&b| b == b'\n'))
        else {
            self.scan = self.buf.len();
            if self.buf.len() - self.line_start > MAX_LINE {
                return Err(Error::protocol(
                    "response line longer than 1 MiB",
                    &self.buf[self.line_start..],
                ));
            }
            return Ok(Progress::NeedMore(0));
        };
        let nl = self.scan + rel;
        let line = &self.buf[self.line_start..=nl];
        if let Some(n) = literal_announcement(line)? {
            if n > self.max_literal {
                return Err(Error::LiteralTooLarge {
                    size: n,
                    limit: self.max_literal,
                });
            }
            self.frame_literals = self.frame_literals.saturating_add(n);
            if self.frame_literals > self.max_literal.saturating_add(MAX_LINE as u64) {
                return Err(Error::LiteralTooLarge {
                    size: self.frame_literals,
                    limit: self.max_literal,
                });
            }
            let n_usize = usize::try_from(n).map_err(|_| Error::LiteralTooLarge {
                size: n,
                limit: self.max_literal,
            })?;
            let end = nl + 1 + n_usize;
            self.literal_end = Some(end);
            self.scan = nl + 1;
            self.line_start = nl + 1;
            return Ok(Progress::LiteralAnnounced(n));
        }
        // Complete frame.
        let frame = self.buf.split_to(nl + 1).freeze();
        if frame.len() >= BIG_LITERAL {
            // The frame (and the message bodies sliced from it) keep its allocation alive; the
            // few bytes read past it move to a small buffer of their own, so this reader does
            // not pin a large allocation after the message is gone.
            let mut fresh = BytesMut::with_capacity(INITIAL_BUFFER.max(self.buf.len()));
            fresh.extend_from_slice(&self.buf);
            self.buf = fresh;
        }
        self.scan = 0;
        self.line_start = 0;
        self.frame_literals = 0;
        parse_frame(frame).map(Progress::Response)
    }
}

/// If `line` (ending in LF) ends with `{N}` / `{N+}` CRLF, returns N.
fn literal_announcement(line: &[u8]) -> Result<Option<u64>, Error> {
    let Some(body) = line
        .strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))
    else {
        return Ok(None);
    };
    let Some(body) = body.strip_suffix(b"}") else {
        return Ok(None);
    };
    let Some(open) = body.iter().rposition(|&b| b == b'{') else {
        return Ok(None);
    };
    let mut digits = &body[open + 1..];
    if let Some(d) = digits.strip_suffix(b"+") {
        digits = d;
    }
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Ok(None);
    }
    let mut n: u64 = 0;
    for &d in digits {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or(Error::LiteralTooLarge {
                size: u64::MAX,
                limit: 0,
            })?;
    }
    Ok(Some(n))
}

/// Deepest parenthesis nesting a response may have. The response parser recurses per level,
/// so a hostile server could otherwise overflow the stack (found by fuzzing: 5,000 levels).
/// Real BODYSTRUCTUREs stay far below this (a message with multiparts nested 100 deep needs
/// about 100).
pub const MAX_NESTING: usize = 256;

/// The deepest parenthesis nesting of a frame, outside quoted strings and literals; stops
/// counting once `limit` is exceeded.
fn nesting_depth(frame: &[u8], limit: usize) -> usize {
    let (mut depth, mut max, mut i) = (0usize, 0usize, 0usize);
    while i < frame.len() {
        match frame[i] {
            b'"' => {
                i += 1;
                while i < frame.len() && frame[i] != b'"' {
                    i += if frame[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' => {
                // `{n}` or `{n+}` then CRLF: skip the literal's n bytes.
                let digits = frame[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                let mut j = i + 1 + digits;
                if frame.get(j) == Some(&b'+') {
                    j += 1;
                }
                if digits > 0 && frame.get(j) == Some(&b'}') && frame.get(j + 1) == Some(&b'\r') {
                    let n = std::str::from_utf8(&frame[i + 1..i + 1 + digits])
                        .ok()
                        .and_then(|d| d.parse::<usize>().ok())
                        .unwrap_or(usize::MAX);
                    i = (j + 3).saturating_add(n);
                    continue;
                }
            }
            b'(' => {
                depth += 1;
                max = max.max(depth);
                if max > limit {
                    return max;
                }
            }
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    max
}

/// Parses one complete frame (public so the fuzz target and tests can drive it directly).
pub fn parse_frame(frame: Bytes) -> Result<Response, Error> {
    if nesting_depth(&frame, MAX_NESTING) > MAX_NESTING {
        return Err(Error::protocol(
            "response nested more than 256 parentheses deep",
            &frame,
        ));
    }
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        imap_proto::Response::parse(&frame).map(|(rest, r)| (rest.len(), convert(&frame, r)))
    }));
    match parsed {
        Ok(Ok((0, r))) => r,
        Ok(Ok((_, _))) => Err(Error::protocol("trailing bytes after a response", &frame)),
        // The parser failed or panicked (imap-proto unwraps on e.g. `INTERNALDATE NIL`): fall back.
        Ok(Err(_)) | Err(_) => fallback(frame),
    }
}

fn cow_string(c: Cow<'_, str>) -> String {
    c.into_owned()
}

fn strings(v: Vec<Cow<'_, str>>) -> Vec<String> {
    v.into_iter().map(cow_string).collect()
}

fn caps(v: Vec<imap_proto::Capability<'_>>) -> Vec<String> {
    v.into_iter()
        .map(|c| match c {
            imap_proto::Capability::Imap4rev1 => "IMAP4rev1".to_owned(),
            imap_proto::Capability::Auth(a) => format!("AUTH={a}"),
            imap_proto::Capability::Atom(a) => a.into_owned(),
        })
        .collect()
}

fn status(s: imap_proto::Status) -> Status {
    match s {
        imap_proto::Status::Ok => Status::Ok,
        imap_proto::Status::No => Status::No,
        imap_proto::Status::Bad => Status::Bad,
        imap_proto::Status::PreAuth => Status::PreAuth,
        imap_proto::Status::Bye => Status::Bye,
    }
}

fn uid_list(v: Vec<imap_proto::rfc4315::UidSetMember>) -> Vec<u32> {
    use imap_proto::rfc4315::UidSetMember;
    let mut out = Vec::new();
    for m in v {
        match m {
            UidSetMember::Uid(u) => out.push(u),
            UidSetMember::UidRange(r) => {
                // Bounded: an APPENDUID range never exceeds what was appended; cap defensively.
                let (a, b) = (*r.start(), *r.end());
                let (a, b) = (a.min(b), a.max(b));
                out.extend((a..=b).take(1_000_000));
            }
        }
    }
    out
}

fn condition(st: imap_proto::Status, outcome: imap_proto::Outcome<'_>) -> Condition {
    use imap_proto::ResponseCode as RC;
    let mut text = outcome.information.map(cow_string).unwrap_or_default();
    let code = match outcome.code {
        Some(RC::Alert) => Some(Code::Alert),
        Some(RC::Capabilities(c)) => Some(Code::Capabilities(caps(c))),
        Some(RC::UidValidity(n)) => Some(Code::UidValidity(n)),
        Some(RC::UidNext(n)) => Some(Code::UidNext(n)),
        Some(RC::HighestModSeq(n)) => Some(Code::HighestModSeq(n)),
        Some(RC::PermanentFlags(f)) => Some(Code::PermanentFlags(strings(f))),
        Some(RC::ReadOnly) => Some(Code::ReadOnly),
        Some(RC::ReadWrite) => Some(Code::ReadWrite),
        Some(RC::TryCreate) => Some(Code::TryCreate),
        Some(RC::AppendUid(v, uids)) => Some(Code::AppendUid {
            uid_validity: v,
            uids: uid_list(uids),
        }),
        Some(RC::CopyUid(v, src, dst)) => Some(Code::CopyUid {
            uid_validity: v,
            source: uid_list(src),
            dest: uid_list(dst),
        }),
        Some(RC::Parse) => Some(Code::Other("PARSE".into())),
        Some(RC::UidNotSticky) => Some(Code::Other("UIDNOTSTICKY".into())),
        Some(other) => Some(Code::Other(format!("{other:?}").to_ascii_uppercase())),
        None => {
            let (c, rest) = split_code(&text);
            if let Some(c) = c {
                let rest = rest.to_owned();
                text = rest;
                Some(Code::Other(c))
            } else {
                None
            }
        }
    };
    Condition {
        status: status(st),
        code,
        text,
    }
}

/// Splits `[ATOM ...] text` into (`ATOM`, `text`).
fn split_code(text: &str) -> (Option<String>, &str) {
    if let Some(rest) = text.strip_prefix('[')
        && let Some(close) = rest.find(']')
    {
        let inner = &rest[..close];
        let atom: String = inner.split(' ').next().unwrap_or("").to_ascii_uppercase();
        if !atom.is_empty() {
            return (Some(atom), rest[close + 1..].trim_start());
        }
    }
    (None, text)
}

fn slice_of(frame: &Bytes, data: Cow<'_, [u8]>) -> Bytes {
    match data {
        Cow::Borrowed(s) if !s.is_empty() => frame.slice_ref(s),
        Cow::Borrowed(_) => Bytes::new(),
        Cow::Owned(v) => Bytes::from(v),
    }
}

fn list_entry(
    name: Cow<'_, str>,
    delimiter: Option<Cow<'_, str>>,
    attrs: Vec<String>,
) -> ListEntry {
    let raw_name = name.into_owned();
    let name = mutf7::decode(&raw_name).unwrap_or_else(|_| raw_name.clone());
    ListEntry {
        name,
        raw_name,
        delimiter: delimiter.and_then(|d| d.chars().next()),
        attributes: attrs,
    }
}

fn name_attr(a: imap_proto::NameAttribute<'_>) -> String {
    use imap_proto::NameAttribute as N;
    match a {
        N::NoInferiors => "\\Noinferiors".into(),
        N::NoSelect => "\\Noselect".into(),
        N::Marked => "\\Marked".into(),
        N::Unmarked => "\\Unmarked".into(),
        N::All => "\\All".into(),
        N::Archive => "\\Archive".into(),
        N::Drafts => "\\Drafts".into(),
        N::Flagged => "\\Flagged".into(),
        N::Junk => "\\Junk".into(),
        N::Sent => "\\Sent".into(),
        N::Trash => "\\Trash".into(),
        N::Extension(s) => s.into_owned(),
        other => format!("\\{other:?}"),
    }
}

fn convert(frame: &Bytes, r: imap_proto::Response<'_>) -> Result<Response, Error> {
    use imap_proto::{AttributeValue as AV, MailboxDatum as MD, Response as R};
    Ok(match r {
        R::Continue(o) => Response::Continue {
            text: o.information.map(cow_string).unwrap_or_default(),
        },
        R::Done {
            tag,
            status: st,
            outcome,
        } => Response::Tagged {
            tag: tag.0,
            condition: condition(st, outcome),
        },
        R::Data {
            status: st,
            outcome,
        } => Response::Untagged(Untagged::Condition(condition(st, outcome))),
        R::Capabilities(c) => {
            let is_enabled = frame
                .get(2..9)
                .is_some_and(|s| s.eq_ignore_ascii_case(b"ENABLED"));
            if is_enabled {
                Response::Untagged(Untagged::Enabled(caps(c)))
            } else {
                Response::Untagged(Untagged::Capabilities(caps(c)))
            }
        }
        R::Expunge(n) => Response::Untagged(Untagged::Expunge(n)),
        R::Fetch(seq, attrs) => {
            let mut f = FetchData {
                seq,
                ..FetchData::default()
            };
            for a in attrs {
                match a {
                    AV::Uid(u) => f.uid = Some(u),
                    AV::Flags(fl) => f.flags = Some(strings(fl)),
                    AV::InternalDate(d) => {
                        f.internal_date =
                            Some(InternalDate::parse_imap(&d).ok_or_else(|| {
                                Error::protocol("invalid INTERNALDATE", d.as_bytes())
                            })?)
                    }
                    AV::Rfc822Size(n) => f.size = Some(n),
                    AV::ModSeq(n) => f.modseq = Some(n),
                    AV::GmailMsgId(n) => f.gmail_msgid = Some(n),
                    AV::GmailThrId(n) => f.gmail_thrid = Some(n),
                    AV::GmailLabels(l) => f.gmail_labels = Some(strings(l)),
                    AV::BodySection {
                        section: None,
                        data,
                        ..
                    }
                    | AV::Rfc822(data) => {
                        f.body = Some(data.map(|d| slice_of(frame, d)).unwrap_or_default())
                    }
                    AV::BodySection {
                        section: Some(_),
                        data,
                        ..
                    }
                    | AV::Rfc822Header(data) => {
                        f.header = Some(data.map(|d| slice_of(frame, d)).unwrap_or_default())
                    }
                    _ => {}
                }
            }
            Response::Untagged(Untagged::Fetch(Box::new(f)))
        }
        R::MailboxData(md) => Response::Untagged(match md {
            MD::Exists(n) => Untagged::Exists(n),
            MD::Recent(n) => Untagged::Recent(n),
            MD::Flags(f) => Untagged::Flags(strings(f)),
            MD::Search(v) => Untagged::Search(v),
            MD::List(l) => Untagged::List(list_entry(
                l.name,
                l.delimiter,
                l.name_attributes.into_iter().map(name_attr).collect(),
            )),
            MD::Status {
                mailbox,
                status: items,
            } => {
                let raw = mailbox.into_owned();
                let mut s = StatusData {
                    mailbox: mutf7::decode(&raw).unwrap_or(raw),
                    ..Default::default()
                };
                for it in items {
                    use imap_proto::StatusAttribute as SA;
                    match it {
                        SA::Messages(n) => s.messages = Some(n),
                        SA::UidNext(n) => s.uid_next = Some(n),
                        SA::UidValidity(n) => s.uid_validity = Some(n),
                        SA::Unseen(n) => s.unseen = Some(n),
                        SA::HighestModSeq(n) => s.highest_modseq = Some(n),
                        _ => {}
                    }
                }
                Untagged::Status(s)
            }
            _ => Untagged::Other(frame.clone()),
        }),
        R::Id(map) => Response::Untagged(Untagged::Id(
            map.map(|m| {
                m.into_iter()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default(),
        )),
        _ => Response::Untagged(Untagged::Other(frame.clone())),
    })
}

// ---------- fallback for what imap-proto does not parse ----------

#[derive(Debug, PartialEq)]
enum Tok {
    Open,
    Close,
    Nil,
    Str(Vec<u8>),
    Atom(Vec<u8>),
}

/// Tokenizes a response line (with literals) into parens, NIL, strings and atoms.
fn tokenize(mut s: &[u8]) -> Option<Vec<Tok>> {
    let mut out = Vec::new();
    while let Some(&c) = s.first() {
        match c {
            b' ' | b'\r' | b'\n' => s = &s[1..],
            b'(' => {
                out.push(Tok::Open);
                s = &s[1..];
            }
            b')' => {
                out.push(Tok::Close);
                s = &s[1..];
            }
            b'"' => {
                let mut v = Vec::new();
                let mut i = 1;
                loop {
                    match *s.get(i)? {
                        b'\\' => {
                            v.push(*s.get(i + 1)?);
                            i += 2;
                        }
                        b'"' => break,
                        b => {
                            v.push(b);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(v));
                s = &s[i + 1..];
            }
            b'{' => {
                let close = s.iter().position(|&b| b == b'}')?;
                let n: usize = std::str::from_utf8(&s[1..close])
                    .ok()?
                    .trim_end_matches('+')
                    .parse()
                    .ok()?;
                let start = close + 3;
                out.push(Tok::Str(s.get(start..start.checked_add(n)?)?.to_vec()));
                s = &s[start + n..];
            }
            _ => {
                let end = s
                    .iter()
                    .position(|&b| matches!(b, b' ' | b'(' | b')' | b'\r' | b'\n'))
                    .unwrap_or(s.len());
                let a = s[..end].to_vec();
                out.push(if a.eq_ignore_ascii_case(b"NIL") {
                    Tok::Nil
                } else {
                    Tok::Atom(a)
                });
                s = &s[end..];
            }
        }
    }
    Some(out)
}

fn tok_str(t: &Tok) -> Option<String> {
    match t {
        Tok::Str(v) | Tok::Atom(v) => Some(String::from_utf8_lossy(v).into_owned()),
        _ => None,
    }
}

fn namespace_group(toks: &[Tok], i: &mut usize) -> Option<Vec<NamespaceEntry>> {
    match toks.get(*i)? {
        Tok::Nil => {
            *i += 1;
            Some(Vec::new())
        }
        Tok::Open => {
            *i += 1;
            let mut v = Vec::new();
            while let Some(Tok::Open) = toks.get(*i) {
                *i += 1;
                let prefix = tok_str(toks.get(*i)?)?;
                *i += 1;
                let delimiter = match toks.get(*i)? {
                    Tok::Nil => None,
                    t => tok_str(t)?.chars().next(),
                };
                *i += 1;
                // skip extensions up to the matching close paren
                let mut depth = 1;
                while depth > 0 {
                    match toks.get(*i)? {
                        Tok::Open => depth += 1,
                        Tok::Close => depth -= 1,
                        _ => {}
                    }
                    *i += 1;
                }
                let prefix = mutf7::decode(&prefix).unwrap_or(prefix);
                v.push(NamespaceEntry { prefix, delimiter });
            }
            match toks.get(*i)? {
                Tok::Close => *i += 1,
                _ => return None,
            }
            Some(v)
        }
        _ => None,
    }
}

fn fallback(frame: Bytes) -> Result<Response, Error> {
    let bad = || Error::protocol("malformed response", &frame);
    if !frame.ends_with(b"\n") {
        return Err(bad());
    }
    if let Some(rest) = frame.strip_prefix(b"* ") {
        let word_end = rest
            .iter()
            .position(|&b| b == b' ' || b == b'\r')
            .unwrap_or(rest.len());
        let word = &rest[..word_end];
        if word.eq_ignore_ascii_case(b"NAMESPACE") {
            let toks = tokenize(&rest[word_end..]).ok_or_else(bad)?;
            let mut i = 0;
            let personal = namespace_group(&toks, &mut i).ok_or_else(bad)?;
            let other_users = namespace_group(&toks, &mut i).ok_or_else(bad)?;
            let shared = namespace_group(&toks, &mut i).ok_or_else(bad)?;
            return Ok(Response::Untagged(Untagged::Namespace(Namespaces {
                personal,
                other_users,
                shared,
            })));
        }
        if word.eq_ignore_ascii_case(b"LIST") || word.eq_ignore_ascii_case(b"LSUB") {
            // LIST-EXTENDED or other shapes imap-proto rejects: (attrs) delim name [ext]
            let toks = tokenize(&rest[word_end..]).ok_or_else(bad)?;
            let mut i = 0;
            if toks.first() != Some(&Tok::Open) {
                return Err(bad());
            }
            i += 1;
            let mut attrs = Vec::new();
            while let Some(t) = toks.get(i) {
                i += 1;
                match t {
                    Tok::Close => break,
                    Tok::Atom(a) => attrs.push(String::from_utf8_lossy(a).into_owned()),
                    _ => return Err(bad()),
                }
            }
            let delim = match toks.get(i).ok_or_else(bad)? {
                Tok::Nil => None,
                t => Some(Cow::Owned(tok_str(t).ok_or_else(bad)?)),
            };
            let name = tok_str(toks.get(i + 1).ok_or_else(bad)?).ok_or_else(bad)?;
            let name = if name.eq_ignore_ascii_case("INBOX") {
                "INBOX".to_owned()
            } else {
                name
            };
            return Ok(Response::Untagged(Untagged::List(list_entry(
                Cow::Owned(name),
                delim,
                attrs,
            ))));
        }
        // A FETCH we cannot parse must not be dropped silently.
        let is_fetch = rest
            .split(|&b| b == b' ')
            .nth(1)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"FETCH") || w.starts_with(b"FETCH"));
        if is_fetch
            || word.eq_ignore_ascii_case(b"BYE")
            || word.eq_ignore_ascii_case(b"OK")
            || word.eq_ignore_ascii_case(b"NO")
            || word.eq_ignore_ascii_case(b"BAD")
        {
            if let Some(c) = lenient_condition(rest) {
                return Ok(Response::Untagged(Untagged::Condition(c)));
            }
            return Err(bad());
        }
        return Ok(Response::Untagged(Untagged::Other(frame)));
    }
    if let Some(rest) = frame.strip_prefix(b"+") {
        let text = String::from_utf8_lossy(rest).trim().to_owned();
        return Ok(Response::Continue { text });
    }
    // Tagged with something imap-proto rejected (odd code): parse leniently.
    let sp = frame.iter().position(|&b| b == b' ').ok_or_else(bad)?;
    let tag = std::str::from_utf8(&frame[..sp]).map_err(|_| bad())?;
    if tag.is_empty()
        || !tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    {
        return Err(bad());
    }
    let c = lenient_condition(&frame[sp + 1..]).ok_or_else(bad)?;
    Ok(Response::Tagged {
        tag: tag.to_owned(),
        condition: c,
    })
}

fn lenient_condition(s: &[u8]) -> Option<Condition> {
    let line = String::from_utf8_lossy(s);
    let line = line.trim_end();
    let (word, text) = line.split_once(' ').unwrap_or((line, ""));
    let st = match word.to_ascii_uppercase().as_str() {
        "OK" => Status::Ok,
        "NO" => Status::No,
        "BAD" => Status::Bad,
        "BYE" => Status::Bye,
        "PREAUTH" => Status::PreAuth,
        _ => return None,
    };
    let (code, rest) = split_code(text);
    Some(Condition {
        status: st,
        code: code.map(Code::Other),
        text: rest.to_owned(),
    })
}

/// Feeds `data` through a reader and collects everything until the data is used up.
///
/// This is the body of the fuzz target (`fuzz/fuzz_targets/responses.rs`); it is also run by
/// proptest in CI. It must never panic and never allocate more than the literal limit.
#[cfg(feature = "fuzzing")]
pub fn fuzz_responses(data: &[u8]) -> Vec<Result<Response, Error>> {
    let mut r = ResponseReader::new(64 * 1024);
    let mut out = Vec::new();
    // Feed in uneven chunks so partial-input paths are exercised.
    for chunk in data.chunks(7) {
        r.feed(chunk);
        loop {
            match r.poll() {
                Ok(Progress::Response(resp)) => out.push(Ok(resp)),
                Ok(Progress::LiteralAnnounced(_)) => {}
                Ok(Progress::NeedMore(_)) => break,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod nesting_tests {
    use super::*;

    #[test]
    fn deeply_nested_responses_are_refused_instead_of_overflowing_the_stack() {
        // Found by `cargo xtask fuzz`: 5,000 nested parentheses overflowed the parser's stack.
        let deep = [
            &b"* 1 FETCH (BODYSTRUCTURE "[..],
            &b"(".repeat(5000),
            &b")".repeat(5000),
            b")\r\n",
        ]
        .concat();
        let e = parse_frame(Bytes::from(deep)).expect_err("refused");
        assert!(e.to_string().contains("nested"), "{e}");
        // Parentheses inside quoted strings and literals do not count.
        let quoted = [
            &b"* 1 FETCH (UID 1 BODY[] {6000}\r\n"[..],
            &b"(".repeat(6000),
            b")\r\n",
        ]
        .concat();
        assert_eq!(nesting_depth(&quoted, MAX_NESTING), 1);
        let s = [&b"* OK \""[..], &b"(".repeat(600), b"\"\r\n"].concat();
        assert_eq!(nesting_depth(&s, MAX_NESTING), 0);
    }
}

#[cfg(test)]
mod buffer_tests {
    use super::*;

    /// Feeds `bytes` the way the driver does (straight into the buffer, in reads of at most
    /// `chunk`), returning the responses.
    fn drive(r: &mut ResponseReader, bytes: &[u8], chunk: usize) -> Vec<Response> {
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match r.poll().expect("poll") {
                Progress::Response(resp) => out.push(resp),
                Progress::LiteralAnnounced(_) => {}
                Progress::NeedMore(_) => {
                    if fed == bytes.len() {
                        return out;
                    }
                    let n = chunk.min(bytes.len() - fed);
                    let buf = r.buffer_mut();
                    if buf.capacity() - buf.len() < 16 * 1024 {
                        buf.reserve(256 * 1024);
                    }
                    buf.extend_from_slice(&bytes[fed..fed + n]);
                    fed += n;
                }
            }
        }
    }

    #[test]
    fn a_big_literal_is_allocated_only_after_it_was_announced_to_the_driver() {
        // The driver reserves budget on `LiteralAnnounced`; the reader must not allocate the
        // literal's memory before that (8 sessions waiting for budget would otherwise each
        // hold an allocation of their message's size).
        let mut r = ResponseReader::default();
        r.feed(b"* 1 FETCH (UID 7 BODY[] {30000000}\r\nabc");
        assert!(matches!(
            r.poll().unwrap(),
            Progress::LiteralAnnounced(30_000_000)
        ));
        assert!(
            r.buffer_mut().capacity() < 1024 * 1024,
            "allocated before the budget"
        );
        assert!(matches!(r.poll().unwrap(), Progress::NeedMore(_)));
        assert!(
            r.buffer_mut().capacity() >= 30_000_000,
            "sized for the frame once reserved"
        );
    }

    #[test]
    fn a_big_literal_gets_its_own_allocation_and_the_reader_lets_go_of_it() {
        let body = vec![b'x'; 3 * 1024 * 1024];
        let mut wire = format!("* 1 FETCH (UID 7 BODY[] {{{}}}\r\n", body.len()).into_bytes();
        wire.extend_from_slice(&body);
        wire.extend_from_slice(b")\r\n* 2 FETCH (UID 8 FLAGS ())\r\n");
        let mut r = ResponseReader::default();
        let responses = drive(&mut r, &wire, 16 * 1024);
        assert_eq!(responses.len(), 2);
        // The reader no longer holds the 3 MiB allocation: the message alone decides its life.
        assert!(
            r.buffer_mut().capacity() <= 256 * 1024,
            "reader kept {} bytes of capacity",
            r.buffer_mut().capacity()
        );
    }
}
