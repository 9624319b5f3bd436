//! Parsing with mail-parser and the normalized, target-neutral view of a message.

use std::borrow::Cow;
use std::sync::OnceLock;

use mail_parser::{
    Address, HeaderName, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders, PartType,
};
use sha2::{Digest, Sha256};

use crate::fingerprint::{hex, sane_message_id};
use crate::flags::InternalDate;
use crate::headers::scan;
use crate::problem::{Converted, Problem, ProblemKind, Severity};

/// A mailbox (display name and address) as found in an address header.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Mailbox {
    /// Display name, decoded (RFC 2047), if any.
    pub name: Option<String>,
    /// The address (`local@domain`), if any.
    pub address: Option<String>,
}

/// Importance of a message, from `Importance`, `Priority`, `X-Priority` or `X-MSMail-Priority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Importance {
    /// Low (`Importance: low`, `X-Priority: 4/5`, `Priority: non-urgent`).
    Low,
    /// Normal (default).
    #[default]
    Normal,
    /// High (`Importance: high`, `X-Priority: 1/2`, `Priority: urgent`).
    High,
}

impl Importance {
    /// The Graph spelling: `low`, `normal` or `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
        }
    }
}

/// What an attachment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AttachmentKind {
    /// An ordinary file (or an inline image).
    File,
    /// A nested message (`message/rfc822`), kept whole as an `.eml` file.
    Message,
    /// A detached signature (`application/pkcs7-signature`, `application/pgp-signature`).
    Signature,
    /// Encrypted or opaque-signed content (`application/pkcs7-mime`, `application/pgp-encrypted`).
    Encrypted,
    /// A calendar object (`text/calendar`, `application/ics`).
    Calendar,
    /// A text part that is not the body (e.g. a `.txt` attachment).
    Text,
}

/// Description of one attachment in the normalized view (no bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct AttachmentInfo {
    /// File name (decoded RFC 2231/2047), or a synthesised one such as `attachment-2.bin`.
    pub name: String,
    /// `type/subtype`, lowercase.
    pub content_type: String,
    /// Content-ID without angle brackets, if any.
    pub content_id: Option<String>,
    /// True when referenced from the body (has a Content-ID and is not marked `attachment`).
    pub is_inline: bool,
    /// What it is.
    pub kind: AttachmentKind,
    /// Size of the decoded bytes.
    pub size: usize,
    /// SHA-256 of the decoded bytes, lowercase hex.
    pub sha256: String,
}

/// The normalized, target-neutral view of a message (all text decoded to UTF-8).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NormalizedMessage {
    /// Sane Message-ID with angle brackets (see [`crate::Identity::message_id`]).
    pub message_id: Option<String>,
    /// `Date:` as RFC 3339 with the original offset, when present and valid.
    pub date: Option<String>,
    /// `From:` mailboxes (groups flattened).
    pub from: Vec<Mailbox>,
    /// `Sender:` mailbox.
    pub sender: Option<Mailbox>,
    /// `To:` mailboxes.
    pub to: Vec<Mailbox>,
    /// `Cc:` mailboxes.
    pub cc: Vec<Mailbox>,
    /// `Bcc:` mailboxes.
    pub bcc: Vec<Mailbox>,
    /// `Reply-To:` mailboxes.
    pub reply_to: Vec<Mailbox>,
    /// Decoded subject.
    pub subject: Option<String>,
    /// `In-Reply-To:` message ids (without brackets).
    pub in_reply_to: Vec<String>,
    /// `References:` message ids (without brackets).
    pub references: Vec<String>,
    /// Importance.
    pub importance: Importance,
    /// Where a read receipt is requested to (`Disposition-Notification-To:`).
    pub read_receipt_to: Vec<Mailbox>,
    /// Plain-text body (all inline text parts joined), if any.
    pub text_body: Option<String>,
    /// HTML body (all inline HTML parts joined), if any.
    pub html_body: Option<String>,
    /// Attachments in MIME order, including nested messages and signatures.
    pub attachments: Vec<AttachmentInfo>,
    /// `X-` headers as (name, decoded value), in order.
    pub x_headers: Vec<(String, String)>,
    /// Number of top-level header fields.
    pub header_count: usize,
}

/// An attachment with its bytes, borrowed from the parse where possible.
pub(crate) struct Attachment<'a> {
    pub(crate) info: AttachmentInfo,
    pub(crate) data: Cow<'a, [u8]>,
}

/// Everything the converters need from one parse.
pub(crate) struct Parsed<'a> {
    pub(crate) view: NormalizedMessage,
    pub(crate) attachments: Vec<Attachment<'a>>,
    pub(crate) date: Option<InternalDate>,
    pub(crate) first_received: Option<InternalDate>,
}

/// Parses raw bytes into the normalized view, listing what was odd about them.
///
/// Never panics; input that is not a message at all yields an empty view and an
/// `unparseable` problem.
///
/// ```
/// let raw = b"From: Ann <ann@example.com>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\nhello\r\n";
/// let n = o365_migrate_mime::normalize(raw);
/// assert_eq!(n.value.subject.as_deref(), Some("café"));
/// assert_eq!(n.value.text_body.as_deref(), Some("hello\r\n"));
/// assert!(n.problems.iter().any(|p| p.kind == o365_migrate_mime::ProblemKind::MissingMessageId));
/// ```
pub fn normalize(raw: &[u8]) -> Converted<NormalizedMessage> {
    let mut problems = Vec::new();
    let repaired = crate::repair::encode_eight_bit_headers_if_needed(raw);
    let src = repaired.as_deref().unwrap_or(raw);
    let msg = parse_message(src, &mut problems);
    let parsed = extract(&msg, src, raw, &mut problems);
    Converted {
        value: parsed.view,
        problems,
    }
}

/// The configured parser, built once.
fn parser() -> &'static MessageParser {
    static PARSER: OnceLock<MessageParser> = OnceLock::new();
    PARSER.get_or_init(|| {
        MessageParser::new()
            .with_mime_headers()
            .with_date_headers()
            .with_address_headers()
            .with_message_ids()
            .header_text(HeaderName::Subject)
            .header_text(HeaderName::Comments)
            .header_address(HeaderName::DispositionNotificationTo)
            .header_raw(HeaderName::Received)
            .default_header_text()
    })
}

/// The `Subject` of a message or header block, RFC 2047 encoded words and charsets decoded
/// (for reports and listings); `None` without one.
pub fn decoded_subject(header: &[u8]) -> Option<String> {
    let mut problems = Vec::new();
    let repaired = crate::repair::encode_eight_bit_headers_if_needed(header);
    let src = repaired.as_deref().unwrap_or(header);
    parse_message(src, &mut problems)
        .subject()
        .map(|s| s.trim().to_owned())
}

/// The `From` header of a header block for people and searches: encoded words decoded, each
/// address as `Name <address>` (or the bare address), joined by `, `; `None` without a
/// readable `From`.
pub fn decoded_from(header: &[u8]) -> Option<String> {
    let mut problems = Vec::new();
    let repaired = crate::repair::encode_eight_bit_headers_if_needed(header);
    let src = repaired.as_deref().unwrap_or(header);
    let message = parse_message(src, &mut problems);
    let from = message.from()?;
    let shown: Vec<String> = from
        .iter()
        .filter_map(|a| match (a.name(), a.address()) {
            (Some(n), Some(addr)) if !n.trim().is_empty() => Some(format!("{} <{addr}>", n.trim())),
            (_, Some(addr)) => Some(addr.to_owned()),
            (Some(n), None) => Some(n.trim().to_owned()),
            (None, None) => None,
        })
        .collect();
    (!shown.is_empty()).then(|| shown.join(", "))
}

pub(crate) fn parse_message<'a>(raw: &'a [u8], problems: &mut Vec<Problem>) -> Message<'a> {
    // mail-parser promises not to panic; a bug there must still not take the caller
    // down, so a panic is reported like unparseable input.
    let parsed = std::panic::catch_unwind(|| parser().parse(raw));
    match parsed {
        Ok(Some(m)) => m,
        Err(_) => {
            problems.push(Problem::new(
                Severity::Lost,
                ProblemKind::Unparseable,
                "the MIME parser failed on this message; nothing could be read from it",
            ));
            Message::default()
        }
        Ok(None) => {
            problems.push(Problem::new(
                Severity::Lost,
                ProblemKind::Unparseable,
                "no header block could be found; the bytes are not a message",
            ));
            Message::default()
        }
    }
}

fn mailboxes(addr: Option<&Address<'_>>) -> Vec<Mailbox> {
    let Some(addr) = addr else {
        return Vec::new();
    };
    addr.iter()
        .map(|a| Mailbox {
            name: a
                .name
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            address: a
                .address
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        })
        .filter(|m| m.name.is_some() || m.address.is_some())
        .collect()
}

fn id_list(v: &HeaderValue<'_>) -> Vec<String> {
    match v {
        HeaderValue::Text(t) => vec![t.to_string()],
        HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn to_internal_date(d: &mail_parser::DateTime) -> Option<InternalDate> {
    if !d.is_valid() {
        return None;
    }
    let off =
        (i16::from(d.tz_hour) * 60 + i16::from(d.tz_minute)) * if d.tz_before_gmt { -1 } else { 1 };
    InternalDate::new(d.to_timestamp(), off)
}

fn importance(msg: &Message<'_>) -> Importance {
    let text = |name: &str| {
        root_headers(msg)
            .iter()
            .find(|h| h.name().eq_ignore_ascii_case(name))
            .and_then(|h| h.value().as_text())
            .map(|s| s.trim().to_ascii_lowercase())
    };
    if let Some(v) = text("Importance") {
        match v.as_str() {
            "high" => return Importance::High,
            "low" => return Importance::Low,
            "normal" => return Importance::Normal,
            _ => {}
        }
    }
    if let Some(v) = text("X-Priority") {
        match v.bytes().find(u8::is_ascii_digit) {
            Some(b'1' | b'2') => return Importance::High,
            Some(b'4' | b'5') => return Importance::Low,
            Some(b'3') => return Importance::Normal,
            _ => {}
        }
    }
    if let Some(v) = text("X-MSMail-Priority") {
        match v.as_str() {
            "high" => return Importance::High,
            "low" => return Importance::Low,
            _ => {}
        }
    }
    match text("Priority").as_deref() {
        Some("urgent") => Importance::High,
        Some("non-urgent") => Importance::Low,
        _ => Importance::Normal,
    }
}

fn content_type_of(part: &MessagePart<'_>) -> String {
    match part.content_type() {
        Some(ct) => {
            let mut s = ct.ctype().to_ascii_lowercase();
            s.push('/');
            s.push_str(&ct.subtype().unwrap_or("octet-stream").to_ascii_lowercase());
            s
        }
        None => match &part.body {
            PartType::Text(_) => "text/plain".into(),
            PartType::Html(_) => "text/html".into(),
            PartType::Message(_) => "message/rfc822".into(),
            _ => "application/octet-stream".into(),
        },
    }
}

fn kind_of(content_type: &str, body: &PartType<'_>) -> AttachmentKind {
    match content_type {
        "application/pkcs7-signature"
        | "application/x-pkcs7-signature"
        | "application/pgp-signature" => AttachmentKind::Signature,
        "application/pkcs7-mime" | "application/x-pkcs7-mime" | "application/pgp-encrypted" => {
            AttachmentKind::Encrypted
        }
        "text/calendar" | "application/ics" => AttachmentKind::Calendar,
        _ => match body {
            PartType::Message(_) => AttachmentKind::Message,
            PartType::Text(_) | PartType::Html(_) => AttachmentKind::Text,
            _ if content_type == "message/rfc822" => AttachmentKind::Message,
            _ => AttachmentKind::File,
        },
    }
}

fn extension_for(content_type: &str, kind: AttachmentKind) -> &'static str {
    match (kind, content_type) {
        (AttachmentKind::Message, _) => "eml",
        (AttachmentKind::Calendar, _) => "ics",
        (AttachmentKind::Signature, "application/pgp-signature") => "asc",
        (AttachmentKind::Signature, _) => "p7s",
        (AttachmentKind::Encrypted, "application/pgp-encrypted") => "pgp",
        (AttachmentKind::Encrypted, _) => "p7m",
        (_, "text/html") => "html",
        (_, "text/plain" | "message/delivery-status" | "text/rfc822-headers") => "txt",
        (_, "image/png") => "png",
        (_, "image/jpeg") => "jpg",
        (_, "image/gif") => "gif",
        (_, "application/pdf") => "pdf",
        _ => "bin",
    }
}

/// Turns a subject into a safe file name stem.
fn file_stem(subject: &str) -> String {
    let s: String = subject
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                '_'
            } else {
                c
            }
        })
        .take(80)
        .collect();
    let s = s.trim().trim_matches('.').to_string();
    if s.is_empty() { "message".into() } else { s }
}

fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Collects header-level problems from the raw header block.
/// What the raw header scan tells the extractor.
struct HeaderFacts<'a> {
    count: usize,
    first_message_id: Option<&'a [u8]>,
}

fn header_problems<'a>(raw: &'a [u8], problems: &mut Vec<Problem>) -> HeaderFacts<'a> {
    let (headers, body_start) = scan(raw);
    let block = raw.get(..body_start).unwrap_or_default();
    let bare_lf = block
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || block.get(i - 1) != Some(&b'\r')));
    if bare_lf {
        problems.push(Problem::new(
            Severity::Info,
            ProblemKind::BareLineEnding,
            "the header block uses bare LF line endings (repair `crlf` fixes them for IMAP targets)",
        ));
    }
    let mut seen: [u8; 7] = [0; 7];
    const SINGLE: [&str; 7] = [
        "from",
        "sender",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
    ];
    let mut eight_bit = Vec::new();
    for h in &headers {
        if let Some(i) = SINGLE.iter().position(|n| h.is(n))
            && let Some(count) = seen.get_mut(i)
        {
            *count = count.saturating_add(1);
            if *count == 2 {
                problems.push(Problem::new(
                    Severity::Info,
                    ProblemKind::DuplicateHeader,
                    format!(
                        "header {} appears more than once; the first one is used",
                        String::from_utf8_lossy(h.name)
                    ),
                ));
            }
        }
        if h.value.iter().any(|&b| b >= 0x80) {
            eight_bit.push(String::from_utf8_lossy(h.name).into_owned());
        }
    }
    if !eight_bit.is_empty() {
        eight_bit.dedup();
        let utf8 = headers.iter().all(|h| std::str::from_utf8(h.value).is_ok());
        problems.push(if utf8 {
            Problem::new(
                Severity::Info,
                ProblemKind::EightBitHeader,
                format!(
                    "raw UTF-8 (RFC 6532) in header(s) {}; read as UTF-8",
                    eight_bit.join(", ")
                ),
            )
        } else {
            Problem::new(
                Severity::Approximated,
                ProblemKind::EightBitHeader,
                format!(
                    "raw 8-bit bytes that are not UTF-8 in header(s) {}; read as windows-1252",
                    eight_bit.join(", ")
                ),
            )
        });
    }
    HeaderFacts {
        count: headers.len(),
        first_message_id: headers.iter().find(|h| h.is("message-id")).map(|h| h.value),
    }
}

/// The top-level headers (empty for an unparseable message; mail-parser's own accessor
/// indexes `parts[0]` and panics there).
fn root_headers<'m>(msg: &'m Message<'m>) -> &'m [mail_parser::Header<'m>] {
    msg.parts.first().map_or(&[], |p| p.headers.as_slice())
}

/// The first occurrence of a top-level header (mail-parser's accessors return the last).
fn first<'m>(msg: &'m Message<'m>, name: HeaderName<'static>) -> Option<&'m HeaderValue<'m>> {
    msg.parts
        .first()
        .and_then(|p| p.headers.iter().find(|h| h.name == name))
        .map(|h| &h.value)
}

fn first_address<'m>(msg: &'m Message<'m>, name: HeaderName<'static>) -> Option<&'m Address<'m>> {
    first(msg, name).and_then(|v| v.as_address())
}

/// A part declared US-ASCII whose decoded text holds U+0080–U+00FF characters that are
/// really UTF-8 bytes (mail-parser maps unknown 8-bit bytes one to one): the UTF-8 text.
fn declared_ascii_but_utf8(part: &MessagePart<'_>, text: &str) -> Option<String> {
    let cs = part.content_type()?.attribute("charset")?;
    if !(cs.eq_ignore_ascii_case("us-ascii") || cs.eq_ignore_ascii_case("ascii")) {
        return None;
    }
    if text.is_ascii() {
        return None;
    }
    let bytes: Option<Vec<u8>> = text
        .chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// The transfer-decoded bytes of a leaf part, from the buffer it was parsed from.
fn original_bytes<'a>(part: &MessagePart<'_>, raw: &'a [u8]) -> Option<Cow<'a, [u8]>> {
    if part.is_encoding_problem {
        return None;
    }
    let slice = raw.get(part.offset_body as usize..part.offset_end as usize)?;
    match part.encoding {
        mail_parser::Encoding::None => Some(Cow::Borrowed(slice)),
        mail_parser::Encoding::QuotedPrintable => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(slice).map(Cow::Owned)
        }
        mail_parser::Encoding::Base64 => {
            mail_parser::decoders::base64::base64_decode(slice).map(Cow::Owned)
        }
    }
}

/// A part declared UTF-8 whose bytes are not UTF-8 (a classic mislabelled Latin-1 or
/// windows-1252 body): the text read as windows-1252.
fn declared_utf8_but_not(part: &MessagePart<'_>, text: &str, raw: &[u8]) -> Option<String> {
    if !text.contains('\u{FFFD}') {
        return None;
    }
    let cs = part.content_type()?.attribute("charset")?;
    if !(cs.eq_ignore_ascii_case("utf-8") || cs.eq_ignore_ascii_case("utf8")) {
        return None;
    }
    let bytes = original_bytes(part, raw)?;
    if std::str::from_utf8(&bytes).is_ok() {
        return None;
    }
    mail_parser::decoders::charsets::map::charset_decoder(b"windows-1252").map(|f| f(&bytes))
}

fn charset_known(charset: &str) -> bool {
    mail_parser::decoders::charsets::map::charset_decoder(charset.as_bytes()).is_some()
        || matches!(
            charset.trim().to_ascii_lowercase().as_str(),
            "us-ascii" | "ascii" | "utf-8" | "utf8"
        )
}

/// `raw` is the buffer `msg` was parsed from; `original` the caller's bytes (they differ
/// when 8-bit headers were encoded before parsing).
pub(crate) fn extract<'a>(
    msg: &'a Message<'a>,
    raw: &'a [u8],
    original: &'a [u8],
    problems: &mut Vec<Problem>,
) -> Parsed<'a> {
    let facts = header_problems(original, problems);
    let header_count = facts.count;

    let message_id = facts.first_message_id.and_then(sane_message_id);
    if message_id.is_none() {
        problems.push(Problem::new(
            Severity::Info,
            ProblemKind::MissingMessageId,
            match facts.first_message_id {
                Some(_) => "Message-ID is not sane (not one <left@right> token of printable ASCII)",
                None => "no Message-ID header",
            },
        ));
    }
    let date = first(msg, HeaderName::Date)
        .and_then(|v| v.as_datetime())
        .and_then(to_internal_date);
    if date.is_none() {
        problems.push(Problem::new(
            Severity::Info,
            ProblemKind::MissingDate,
            match first(msg, HeaderName::Date) {
                Some(_) => "Date header could not be read",
                None => "no Date header",
            },
        ));
    }
    let first_received = first(msg, HeaderName::Received)
        .and_then(|v| v.as_text())
        .and_then(|v| v.rsplit_once(';'))
        .and_then(|(_, d)| mail_parser::DateTime::parse_rfc822(d.trim()))
        .as_ref()
        .and_then(to_internal_date);

    // Bodies: HTML when there is an HTML part (inline text parts converted), else text.
    let mut charset_fixed: Vec<(u32, &'static str)> = Vec::new();
    let mut text_of =
        |i: u32, t: &'a str| -> Cow<'a, str> {
            let fixed =
                msg.part(i).and_then(|p| {
                    declared_ascii_but_utf8(p, t)
                        .map(|f| (f, "is declared US-ASCII but holds UTF-8; read as UTF-8"))
                        .or_else(|| {
                            declared_utf8_but_not(p, t, raw).map(|f| {
                        (f, "is declared UTF-8 but is not valid UTF-8; read as windows-1252")
                    })
                        })
                });
            match fixed {
                Some((text, why)) => {
                    if !charset_fixed.iter().any(|(j, _)| *j == i) {
                        charset_fixed.push((i, why));
                    }
                    Cow::Owned(text)
                }
                None => Cow::Borrowed(t),
            }
        };
    let has_html = msg
        .html_body
        .iter()
        .any(|&i| matches!(msg.part(i).map(|p| &p.body), Some(PartType::Html(_))));
    let html_body = if has_html {
        let mut out = String::new();
        for &i in &msg.html_body {
            match msg.part(i).map(|p| &p.body) {
                Some(PartType::Html(t)) => out.push_str(&text_of(i, t)),
                Some(PartType::Text(t)) => {
                    out.push_str(&mail_parser::decoders::html::text_to_html(&text_of(i, t)));
                }
                _ => {}
            }
        }
        Some(out)
    } else {
        None
    };
    let mut text_body: Option<String> = None;
    for &i in &msg.text_body {
        if let Some(PartType::Text(t)) = msg.part(i).map(|p| &p.body) {
            text_body
                .get_or_insert_with(String::new)
                .push_str(&text_of(i, t));
        }
    }
    for (i, why) in &charset_fixed {
        problems.push(Problem::new(
            Severity::Repaired,
            ProblemKind::Charset,
            format!("MIME part {i} {why}"),
        ));
    }

    // Charset and encoding problems on every part.
    let mut unknown_charset = false;
    for (i, part) in msg.parts.iter().enumerate() {
        let declared_multipart = part
            .content_type()
            .is_some_and(|ct| ct.ctype().eq_ignore_ascii_case("multipart"));
        if declared_multipart && !matches!(part.body, PartType::Multipart(_)) {
            problems.push(Problem::new(
                Severity::Approximated,
                ProblemKind::BrokenPart,
                format!(
                    "MIME part {i} is declared {} but its boundary is missing or never found; its content is kept as one attachment",
                    content_type_of(part)
                ),
            ));
        } else if part.is_encoding_problem && !part.contents().is_empty() {
            problems.push(Problem::new(
                Severity::Approximated,
                ProblemKind::BrokenPart,
                format!(
                    "MIME part {i} ({}) has a broken structure or transfer encoding; kept as raw text",
                    content_type_of(part)
                ),
            ));
        }
        if matches!(part.body, PartType::Text(_) | PartType::Html(_))
            && let Some(cs) = part.content_type().and_then(|ct| ct.attribute("charset"))
            && !charset_known(cs)
        {
            unknown_charset = true;
            problems.push(Problem::new(
                Severity::Approximated,
                ProblemKind::Charset,
                format!(
                    "MIME part {i} declares unknown charset {:?}; decoded as UTF-8 with replacement characters",
                    cs.chars().take(40).collect::<String>()
                ),
            ));
        }
    }

    // Text that did not decode cleanly in its declared charset.
    for (i, part) in msg.parts.iter().enumerate() {
        if let PartType::Text(t) | PartType::Html(t) = &part.body
            && t.contains('\u{FFFD}')
            && !part.is_encoding_problem
        {
            let raw_part = raw
                .get(part.offset_body as usize..part.offset_end as usize)
                .unwrap_or_default();
            // Literal U+FFFD in the source is not a decoding problem.
            let fixed = charset_fixed.iter().any(|(j, _)| *j as usize == i);
            if !raw_part.windows(3).any(|w| w == "\u{FFFD}".as_bytes())
                && !unknown_charset
                && !fixed
            {
                problems.push(Problem::new(
                    Severity::Approximated,
                    ProblemKind::Charset,
                    format!(
                        "MIME part {i} has bytes that are invalid in its declared charset {:?}; they were replaced with U+FFFD",
                        part.content_type()
                            .and_then(|ct| ct.attribute("charset"))
                            .unwrap_or("us-ascii")
                    ),
                ));
            }
        }
    }

    // Attachments.
    let subject = first(msg, HeaderName::Subject)
        .and_then(|v| v.as_text())
        .map(str::to_string);
    let mut attachments = Vec::with_capacity(msg.attachments.len());
    for (n, &id) in msg.attachments.iter().enumerate() {
        let Some(part) = msg.part(id) else { continue };
        let content_type = content_type_of(part);
        let kind = kind_of(&content_type, &part.body);
        let data: Cow<'a, [u8]> = match &part.body {
            // Text attachments keep their original bytes (original charset), not the
            // UTF-8 the parser decoded them to; the decoded text is the fallback.
            PartType::Text(t) | PartType::Html(t) => {
                original_bytes(part, raw).unwrap_or(Cow::Borrowed(t.as_bytes()))
            }
            PartType::Binary(b) | PartType::InlineBinary(b) => Cow::Borrowed(b.as_ref()),
            PartType::Message(m) => {
                // Unencoded nested messages share the outer buffer: use the part's own range.
                if part.encoding == mail_parser::Encoding::None {
                    let start = part.offset_body as usize;
                    let end = part.offset_end as usize;
                    Cow::Borrowed(raw.get(start..end).unwrap_or_else(|| m.raw_message()))
                } else {
                    Cow::Borrowed(m.raw_message())
                }
            }
            PartType::Multipart(_) => continue,
        };
        let content_id = part
            .content_id()
            .map(|c| {
                c.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
            .filter(|c| !c.is_empty());
        let marked_attachment = part
            .content_disposition()
            .is_some_and(|d| d.is_attachment());
        let is_inline = content_id.is_some() && !marked_attachment;
        let name = part
            .attachment_name()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| {
                let ext = extension_for(&content_type, kind);
                match (&part.body, kind) {
                    (PartType::Message(m), _) => {
                        format!(
                            "{}.{ext}",
                            file_stem(
                                first(m, HeaderName::Subject)
                                    .and_then(|v| v.as_text())
                                    .unwrap_or("message"),
                            )
                        )
                    }
                    (_, AttachmentKind::Signature) => {
                        format!("smime.{ext}").replace("smime.asc", "signature.asc")
                    }
                    (_, AttachmentKind::Encrypted) => {
                        format!("smime.{ext}").replace("smime.pgp", "encrypted.pgp")
                    }
                    (_, AttachmentKind::Calendar) => format!("invite.{ext}"),
                    _ => format!("attachment-{}.{ext}", n + 1),
                }
            });
        match kind {
            AttachmentKind::Signature => problems.push(Problem::new(
                Severity::Approximated,
                ProblemKind::Signature,
                format!(
                    "signature {name} is kept as an attachment, but the signed bytes cannot be kept byte-for-byte in a converted item, so it will not verify there"
                ),
            )),
            AttachmentKind::Encrypted => problems.push(Problem::new(
                Severity::Approximated,
                ProblemKind::Encrypted,
                format!("encrypted or opaque-signed content is kept as the attachment {name}; the body is not readable in a converted item"),
            )),
            AttachmentKind::Calendar => problems.push(Problem::new(
                Severity::Approximated,
                ProblemKind::Calendar,
                format!("calendar object kept as the attachment {name}, not as a meeting request"),
            )),
            _ => {}
        }
        let info = AttachmentInfo {
            name,
            content_type,
            content_id,
            is_inline,
            kind,
            size: data.len(),
            sha256: sha256_hex(&data),
        };
        attachments.push(Attachment { info, data });
    }

    let x_headers = root_headers(msg)
        .iter()
        .filter(|h| {
            let n = h.name();
            n.len() > 2 && n.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("x-"))
        })
        .map(|h| {
            let v = match h.value() {
                HeaderValue::Text(t) => t.trim().to_string(),
                HeaderValue::TextList(l) => l.join(", "),
                _ => raw
                    .get(h.offset_start as usize..h.offset_end as usize)
                    .map(|b| String::from_utf8_lossy(b).trim().to_string())
                    .unwrap_or_default(),
            };
            (h.name().to_string(), v)
        })
        .collect();

    let view = NormalizedMessage {
        message_id,
        date: date.map(|d| d.to_rfc3339()),
        from: mailboxes(first_address(msg, HeaderName::From)),
        sender: mailboxes(first_address(msg, HeaderName::Sender))
            .into_iter()
            .next(),
        to: mailboxes(first_address(msg, HeaderName::To)),
        cc: mailboxes(first_address(msg, HeaderName::Cc)),
        bcc: mailboxes(first_address(msg, HeaderName::Bcc)),
        reply_to: mailboxes(first_address(msg, HeaderName::ReplyTo)),
        subject,
        in_reply_to: first(msg, HeaderName::InReplyTo).map_or_else(Vec::new, id_list),
        references: first(msg, HeaderName::References).map_or_else(Vec::new, id_list),
        importance: importance(msg),
        read_receipt_to: mailboxes(first_address(msg, HeaderName::DispositionNotificationTo)),
        text_body,
        html_body,
        attachments: attachments.iter().map(|a| a.info.clone()).collect(),
        x_headers,
        header_count,
    };
    Parsed {
        view,
        attachments,
        date,
        first_received,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_is_decoded_for_people_and_searches() {
        let h = b"From: =?UTF-8?Q?S=C3=B8ren_=C3=98stergaard?= <soren@beispiel.de>\r\nSubject: x\r\n\r\n";
        assert_eq!(
            decoded_from(h).as_deref(),
            Some("S\u{f8}ren \u{d8}stergaard <soren@beispiel.de>")
        );
        let h = b"From: \"Dave O'Neil\" <dave@example.com>, bare@example.org\r\n\r\n";
        assert_eq!(
            decoded_from(h).as_deref(),
            Some("Dave O'Neil <dave@example.com>, bare@example.org")
        );
        // Raw 8-bit UTF-8 (no encoded words) is read too.
        let h = "From: Jos\u{e9} <jose@example.es>\r\n\r\n".as_bytes();
        assert_eq!(
            decoded_from(h).as_deref(),
            Some("Jos\u{e9} <jose@example.es>")
        );
        assert_eq!(decoded_from(b"Subject: no sender\r\n\r\n"), None);
    }
}
