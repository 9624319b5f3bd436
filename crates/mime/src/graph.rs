//! Conversion to a Microsoft Graph `message` resource for
//! `POST /users/{id}/mailFolders/{folder}/messages`.
//!
//! The JSON produced by [`GraphMessage`]'s `Serialize` is exactly the request body. Attachments
//! that fit are inside it as `#microsoft.graph.fileAttachment`; the others are in
//! [`GraphMessage::large_attachments`] for an upload session
//! (`POST /users/{id}/messages/{msg}/attachments/createUploadSession`) after the create.

use base64::Engine as _;
use bytes::Bytes;
use serde::Serialize;

use crate::fingerprint::synthesized_message_id;
use crate::flags::{Flags, InternalDate};
use crate::normalize::{Mailbox, extract, parse_message};
use crate::problem::{Converted, Problem, ProblemKind, Severity};

/// Attachments strictly smaller than this (decoded bytes) may go inline in the create
/// request (Graph: "under 3 MB").
pub const INLINE_ATTACHMENT_LIMIT: usize = 3 * 1024 * 1024;
/// Budget for the whole JSON request body (Graph caps requests at about 4 MB).
pub const REQUEST_LIMIT: usize = 4_000_000;
/// Largest attachment an upload session accepts (150 MB, as Microsoft counts: 150,000,000
/// bytes).
pub const UPLOAD_SESSION_LIMIT: usize = 150_000_000;
/// Graph accepts at most this many `internetMessageHeaders`, all named `x-…`.
pub const MAX_X_HEADERS: usize = 5;
/// Longest `internetMessageHeaders` value kept (longer ones are cut, with a problem).
pub const MAX_X_HEADER_VALUE: usize = 995;

/// `PidTagMessageFlags` bit: read.
pub const MSGFLAG_READ: u32 = 0x1;
/// `PidTagMessageFlags` bit: unsent (the item is a draft).
pub const MSGFLAG_UNSENT: u32 = 0x8;

/// Options for [`to_graph_with`]. `Default` gives Graph's documented limits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GraphOptions {
    /// Attachments smaller than this go inline if the request budget allows.
    pub inline_attachment_limit: usize,
    /// Budget for the whole JSON body in bytes.
    pub request_limit: usize,
    /// Attachments above this are not carried (reported as lost).
    pub upload_session_limit: usize,
    /// Maximum number of `x-` headers carried in `internetMessageHeaders`.
    pub max_x_headers: usize,
}

impl Default for GraphOptions {
    fn default() -> Self {
        Self {
            inline_attachment_limit: INLINE_ATTACHMENT_LIMIT,
            request_limit: REQUEST_LIMIT,
            upload_session_limit: UPLOAD_SESSION_LIMIT,
            max_x_headers: MAX_X_HEADERS,
        }
    }
}

/// Graph `itemBody`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemBody {
    /// `html` or `text`.
    pub content_type: &'static str,
    /// The body.
    pub content: String,
}

/// Graph `emailAddress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmailAddress {
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// SMTP address.
    pub address: String,
}

/// Graph `recipient`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    /// The address.
    pub email_address: EmailAddress,
}

/// Graph `followupFlag` (only `flagStatus` is set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowupFlag {
    /// `flagged` or `notFlagged`.
    pub flag_status: &'static str,
}

/// Graph `internetMessageHeader`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InternetMessageHeader {
    /// Header name (always starts with `x-`, any case).
    pub name: String,
    /// Decoded value.
    pub value: String,
}

/// Graph `singleValueLegacyExtendedProperty`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtendedProperty {
    /// Property id such as `Integer 0x0E07`.
    pub id: String,
    /// Value as a string (integers in decimal, times as ISO 8601 UTC).
    pub value: String,
}

/// Graph `fileAttachment` carried inside the create request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileAttachment {
    /// Always `#microsoft.graph.fileAttachment`.
    #[serde(rename = "@odata.type")]
    pub odata_type: &'static str,
    /// File name.
    pub name: String,
    /// MIME type (`type/subtype`).
    pub content_type: String,
    /// The bytes, standard base64.
    pub content_bytes: String,
    /// True for images referenced from the HTML body by `cid:`.
    pub is_inline: bool,
    /// Content-ID without angle brackets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_id: Option<String>,
}

/// An attachment too large for the create request: upload it with an upload session
/// (`AttachmentItem { attachmentType: "file", name, size: data.len(), isInline, contentId }`,
/// chunks of at most 4 MB, in order) after creating the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LargeAttachment {
    /// File name.
    pub name: String,
    /// MIME type (`type/subtype`).
    pub content_type: String,
    /// Content-ID without angle brackets.
    pub content_id: Option<String>,
    /// True for images referenced from the HTML body by `cid:`.
    pub is_inline: bool,
    /// The decoded bytes.
    pub data: Bytes,
}

impl LargeAttachment {
    /// Size in bytes (the `size` of the upload session's `AttachmentItem`).
    pub fn size(&self) -> usize {
        self.data.len()
    }

    /// True when Graph documents an upload session for it (3 MB and more). Smaller ones
    /// end up here only when the create request had no room left; POST each of them to
    /// `/users/{id}/messages/{msg}/attachments` as [`LargeAttachment::to_file_attachment`].
    pub fn needs_upload_session(&self) -> bool {
        self.data.len() >= INLINE_ATTACHMENT_LIMIT
    }

    /// The attachment as a `fileAttachment` body (base64), for a single POST.
    pub fn to_file_attachment(&self) -> FileAttachment {
        FileAttachment {
            odata_type: "#microsoft.graph.fileAttachment",
            name: self.name.clone(),
            content_type: self.content_type.clone(),
            content_bytes: base64::engine::general_purpose::STANDARD.encode(&self.data),
            is_inline: self.is_inline,
            content_id: self.content_id.clone(),
        }
    }
}

/// A message ready to be created through Graph. `Serialize` gives the request body for
/// `POST /users/{id}/mailFolders/{folder}/messages` (large attachments are not in it).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphMessage {
    subject: String,
    body: ItemBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<Recipient>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sender: Option<Recipient>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    to_recipients: Vec<Recipient>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cc_recipients: Vec<Recipient>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    bcc_recipients: Vec<Recipient>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reply_to: Vec<Recipient>,
    #[serde(skip_serializing_if = "Option::is_none")]
    internet_message_id: Option<String>,
    importance: &'static str,
    is_read: bool,
    is_read_receipt_requested: bool,
    flag: FollowupFlag,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    categories: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    internet_message_headers: Vec<InternetMessageHeader>,
    single_value_extended_properties: Vec<ExtendedProperty>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<FileAttachment>,
    #[serde(skip)]
    large_attachments: Vec<LargeAttachment>,
    #[serde(skip)]
    is_draft: bool,
    #[serde(skip)]
    message_id_synthesized: bool,
}

impl GraphMessage {
    /// The `internetMessageId` (with angle brackets); synthesised deterministically when the
    /// source had no sane one (see [`GraphMessage::message_id_synthesized`]).
    pub fn internet_message_id(&self) -> Option<&str> {
        self.internet_message_id.as_deref()
    }

    /// True when the `internetMessageId` was synthesised (`…@o365-migrate.invalid`).
    pub fn message_id_synthesized(&self) -> bool {
        self.message_id_synthesized
    }

    /// Attachments that need an upload session after the create (in MIME order).
    pub fn large_attachments(&self) -> &[LargeAttachment] {
        &self.large_attachments
    }

    /// The attachments that need an upload session, keeping nothing else (once the create's
    /// body is serialized, the rest need not stay in memory).
    pub fn into_large_attachments(self) -> Vec<LargeAttachment> {
        self.large_attachments
    }

    /// Adds a single-value extended property to the create body (a writer's own marker, such
    /// as the fingerprint it finds the item by later).
    pub fn push_extended_property(&mut self, id: impl Into<String>, value: impl Into<String>) {
        self.single_value_extended_properties
            .push(ExtendedProperty {
                id: id.into(),
                value: value.into(),
            });
    }

    /// Attachments carried inside the create request.
    pub fn inline_attachments(&self) -> &[FileAttachment] {
        &self.attachments
    }

    /// True when the item is created as a draft (the source had `\Draft`).
    pub fn is_draft(&self) -> bool {
        self.is_draft
    }

    /// The subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The sender (`from`), if the message names one.
    pub fn from(&self) -> Option<&Recipient> {
        self.from.as_ref()
    }

    /// The To recipients.
    pub fn to_recipients(&self) -> &[Recipient] {
        &self.to_recipients
    }

    /// The Cc recipients.
    pub fn cc_recipients(&self) -> &[Recipient] {
        &self.cc_recipients
    }

    /// The categories (from IMAP keywords).
    pub fn categories(&self) -> &[String] {
        &self.categories
    }

    /// Replaces the categories (a writer's spelling of them: the name the mailbox's master
    /// category list already uses for one that differs only in case).
    pub fn set_categories(&mut self, categories: Vec<String>) {
        self.categories = categories;
    }

    /// The body.
    pub fn body(&self) -> &ItemBody {
        &self.body
    }

    /// The extended properties (0x0E07, 0x0E06, 0x0039).
    pub fn extended_properties(&self) -> &[ExtendedProperty] {
        &self.single_value_extended_properties
    }

    /// The request body as JSON bytes (same as serializing with `serde_json`).
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain strings, bools and vectors into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Length of the JSON serialization without building it.
fn json_len(message: &GraphMessage) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing plain strings, bools and vectors to a counter cannot fail.
    let _ = serde_json::to_writer(&mut count, message);
    count.0
}

fn recipient(m: &Mailbox) -> Option<Recipient> {
    Some(Recipient {
        email_address: EmailAddress {
            name: m.name.clone(),
            address: m.address.clone()?,
        },
    })
}

fn recipients(list: &[Mailbox], field: &str, problems: &mut Vec<Problem>) -> Vec<Recipient> {
    let mut out = Vec::with_capacity(list.len());
    for m in list {
        match recipient(m) {
            Some(r) => out.push(r),
            None => problems.push(Problem::new(
                Severity::Approximated,
                ProblemKind::Address,
                format!(
                    "{field}: entry {:?} has no e-mail address and is left out",
                    m.name.as_deref().unwrap_or_default()
                ),
            )),
        }
    }
    out
}

/// The Outlook categories IMAP keywords become (what [`to_graph`] sets and what `sync` sets
/// again when they change): protocol keywords such as `$Forwarded` are left out, `$label1`–
/// `$label5` get Thunderbird's names, duplicates (case-insensitive) are kept once.
///
/// ```
/// let f = o365_migrate_mime::Flags::from_imap(["\\Seen", "$Forwarded", "Projekt", "$label2"]);
/// assert_eq!(o365_migrate_mime::graph::categories(&f), ["Projekt", "Work"]);
/// ```
pub fn categories(flags: &Flags) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in &flags.keywords {
        if let Some(c) = keyword_category(k)
            && !out.iter().any(|x| x.eq_ignore_ascii_case(c))
        {
            out.push(c.to_string());
        }
    }
    out
}

/// Well-known IMAP keywords that are protocol state, not user categories.
fn keyword_category(keyword: &str) -> Option<&str> {
    let lower = keyword.to_ascii_lowercase();
    match lower.as_str() {
        "$forwarded" | "$mdnsent" | "$junk" | "$notjunk" | "junk" | "nonjunk" | "notjunk"
        | "$phishing" | "$submitpending" | "$submitted" | "$hasattachment" | "$hasnoattachment"
        | "$important" => None,
        "$label1" => Some("Important"),
        "$label2" => Some("Work"),
        "$label3" => Some("Personal"),
        "$label4" => Some("To Do"),
        "$label5" => Some("Later"),
        _ => Some(keyword),
    }
}

fn extended(id: &str, value: String) -> ExtendedProperty {
    ExtendedProperty {
        id: id.to_string(),
        value,
    }
}

/// Converts raw message bytes plus IMAP state into a Graph message, with Graph's
/// documented limits. See [`to_graph_with`].
///
/// ```
/// use o365_migrate_mime::{Flags, InternalDate, to_graph};
/// let raw = b"From: Ann <ann@example.com>\r\nTo: bob@example.com\r\nSubject: Hi\r\n\
/// Date: Tue, 1 Jul 2025 10:00:00 +0200\r\nMessage-ID: <1@example.com>\r\n\r\nHello\r\n";
/// let flags = Flags::from_imap(["\\Seen"]);
/// let received = InternalDate::new(1_751_357_000, 120).unwrap();
/// let g = to_graph(raw, &flags, Some(&received));
/// let json = serde_json::to_value(&g.value).unwrap();
/// assert_eq!(json["subject"], "Hi");
/// assert_eq!(json["isRead"], true);
/// assert_eq!(json["singleValueExtendedProperties"][0]["value"], "1");
/// assert_eq!(json["singleValueExtendedProperties"][2]["value"], "2025-07-01T08:00:00Z");
/// assert_eq!(g.value.internet_message_id(), Some("<1@example.com>"));
/// assert!(!g.value.is_draft());
/// ```
pub fn to_graph(
    raw: &[u8],
    flags: &Flags,
    internal_date: Option<&InternalDate>,
) -> Converted<GraphMessage> {
    to_graph_with(raw, flags, internal_date, &GraphOptions::default())
}

/// Converts raw message bytes plus IMAP state into a Graph message.
///
/// - body: HTML when there is an HTML part, else text (inline text parts joined);
/// - `isRead` from `\Seen`; `flag` from `\Flagged`; `categories` from keywords (protocol
///   keywords such as `$Forwarded` and `$MDNSent` are not categories; Thunderbird's
///   `$label1`–`$label5` get their display names);
/// - `Integer 0x0E07` = 1 when read, 0 when unread, plus 0x8 (unsent) when `\Draft`;
///   `SystemTime 0x0E06` from `internal_date` (else Date, else first Received) and
///   `SystemTime 0x0039` from Date (else `internal_date`, else first Received), in UTC;
/// - `internetMessageHeaders`: the first five `x-` headers (not `x-ms-exchange-…`);
/// - attachments under `inline_attachment_limit` go inline while the JSON stays within
///   `request_limit`; the rest (up to `upload_session_limit`) are large attachments.
///
/// Raw 8-bit header bytes that are not UTF-8 are read as windows-1252. Everything not
/// carried over is listed in the problems.
pub fn to_graph_with(
    raw: &[u8],
    flags: &Flags,
    internal_date: Option<&InternalDate>,
    options: &GraphOptions,
) -> Converted<GraphMessage> {
    let mut problems = Vec::new();
    let repaired = crate::repair::encode_eight_bit_headers_if_needed(raw);
    let src: &[u8] = repaired.as_deref().unwrap_or(raw);
    let msg = parse_message(src, &mut problems);
    let parsed = extract(&msg, src, raw, &mut problems);
    let mut parsed = parsed;
    let html_body = parsed.view.html_body.take();
    let text_body = parsed.view.text_body.take();
    let subject = parsed.view.subject.take().unwrap_or_default();
    let attachments = std::mem::take(&mut parsed.attachments);
    let view = &parsed.view;

    // Body: HTML preferred (moved out of the view, not copied).
    let mut body = match (html_body, text_body) {
        (Some(content), _) => ItemBody {
            content_type: "html",
            content,
        },
        (None, Some(content)) => ItemBody {
            content_type: "text",
            content,
        },
        (None, None) => ItemBody {
            content_type: "text",
            content: String::new(),
        },
    };
    if body.content.contains('\0') {
        body.content.retain(|c| c != '\0');
        problems.push(Problem::new(
            Severity::Approximated,
            ProblemKind::BrokenPart,
            "NUL characters removed from the body; an Exchange item body cannot be relied on to keep them",
        ));
    }
    if view.from.is_empty() {
        problems.push(Problem::new(
            Severity::Approximated,
            ProblemKind::Address,
            "no From address; Exchange will show the item without a sender or as the mailbox owner",
        ));
    }
    if view.from.len() > 1 {
        problems.push(Problem::new(
            Severity::Approximated,
            ProblemKind::Address,
            format!(
                "From has {} mailboxes; Graph keeps only the first",
                view.from.len()
            ),
        ));
    }
    let from = view.from.iter().find_map(recipient);
    let sender = view.sender.as_ref().and_then(recipient);
    let to_recipients = recipients(&view.to, "To", &mut problems);
    let cc_recipients = recipients(&view.cc, "Cc", &mut problems);
    let bcc_recipients = recipients(&view.bcc, "Bcc", &mut problems);
    let reply_to = recipients(&view.reply_to, "Reply-To", &mut problems);

    let (internet_message_id, message_id_synthesized) = match &view.message_id {
        Some(id) => (id.clone(), false),
        None => {
            let id = synthesized_message_id(raw);
            problems.push(Problem::new(
                Severity::Repaired,
                ProblemKind::MissingMessageId,
                format!("internetMessageId synthesised from the content hash: {id}"),
            ));
            (id, true)
        }
    };

    // Flags.
    let categories = categories(flags);
    for k in &flags.keywords {
        if keyword_category(k).is_none() {
            problems.push(Problem::new(
                Severity::Info,
                ProblemKind::Flag,
                format!("IMAP keyword {k} is protocol state, not a category; not carried"),
            ));
        }
    }
    if flags.answered {
        problems.push(Problem::new(
            Severity::Approximated,
            ProblemKind::Flag,
            "\\Answered has no Graph field; the replied state is not carried",
        ));
    }
    if flags.deleted {
        problems.push(Problem::new(
            Severity::Info,
            ProblemKind::Flag,
            "\\Deleted is not carried; the item is created as a normal message",
        ));
    }
    let message_flags =
        if flags.seen { MSGFLAG_READ } else { 0 } | if flags.draft { MSGFLAG_UNSENT } else { 0 };

    // Times.
    let received = internal_date
        .copied()
        .or(parsed.date)
        .or(parsed.first_received);
    let sent = parsed
        .date
        .or(internal_date.copied())
        .or(parsed.first_received);
    let mut props = vec![extended("Integer 0x0E07", message_flags.to_string())];
    match received {
        Some(t) => props.push(extended("SystemTime 0x0E06", t.to_utc_iso8601())),
        None => problems.push(Problem::new(
            Severity::Approximated,
            ProblemKind::Date,
            "no INTERNALDATE, Date or Received time: the received time is left to Exchange",
        )),
    }
    match sent {
        Some(t) => props.push(extended("SystemTime 0x0039", t.to_utc_iso8601())),
        None => problems.push(Problem::new(
            Severity::Approximated,
            ProblemKind::Date,
            "no Date, INTERNALDATE or Received time: the sent time is left to Exchange",
        )),
    }

    // x- headers.
    let mut internet_message_headers = Vec::new();
    let mut dropped = 0usize;
    for (name, value) in &view.x_headers {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("x-ms-exchange-") {
            dropped += 1;
            continue;
        }
        if internet_message_headers.len() >= options.max_x_headers {
            dropped += 1;
            continue;
        }
        let mut value = value.clone();
        if value.len() > MAX_X_HEADER_VALUE {
            let mut cut = MAX_X_HEADER_VALUE;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            value.truncate(cut);
            problems.push(Problem::new(
                Severity::Approximated,
                ProblemKind::Headers,
                format!("header {name} cut to {MAX_X_HEADER_VALUE} bytes"),
            ));
        }
        internet_message_headers.push(InternetMessageHeader {
            name: name.clone(),
            value,
        });
    }
    let not_mapped = view.header_count.saturating_sub(view.x_headers.len());
    if dropped > 0 {
        problems.push(Problem::new(
            Severity::Info,
            ProblemKind::Headers,
            format!(
                "{dropped} x- header(s) not carried (Graph takes at most {} and no x-ms-exchange-)",
                options.max_x_headers
            ),
        ));
    }
    let _ = not_mapped;

    let mut message = GraphMessage {
        subject,
        body,
        from,
        sender,
        to_recipients,
        cc_recipients,
        bcc_recipients,
        reply_to,
        internet_message_id: Some(internet_message_id),
        importance: view.importance.as_str(),
        is_read: flags.seen,
        is_read_receipt_requested: !view.read_receipt_to.is_empty(),
        flag: FollowupFlag {
            flag_status: if flags.flagged {
                "flagged"
            } else {
                "notFlagged"
            },
        },
        categories,
        internet_message_headers,
        single_value_extended_properties: props,
        attachments: Vec::new(),
        large_attachments: Vec::new(),
        is_draft: flags.draft,
        message_id_synthesized,
    };

    // Attachments: inline while the budget allows, else upload session.
    // The exact JSON size matters only for the attachment budget and for bodies that may
    // approach the limit: every raw byte yields at most 30 JSON bytes (charset widening,
    // text-to-HTML escaping, JSON escaping, recipient objects) plus a fixed part well under
    // 16 KiB, so small messages without attachments skip the count.
    let may_be_large =
        raw.len().saturating_mul(30).saturating_add(16 * 1024) > options.request_limit;
    let base_len = if attachments.is_empty() && !may_be_large {
        0
    } else {
        json_len(&message) + 16 // + `,"attachments":[]`
    };
    if base_len > options.request_limit {
        problems.push(Problem::new(
            Severity::Lost,
            ProblemKind::RequestTooLarge,
            format!(
                "the message without attachments is {base_len} bytes of JSON, over the {}-byte request limit; Graph will refuse it",
                options.request_limit
            ),
        ));
    }
    let mut used = base_len;
    let engine = base64::engine::general_purpose::STANDARD;
    for att in attachments {
        let info = att.info;
        let size = att.data.len();
        if size > options.upload_session_limit {
            problems.push(Problem::new(
                Severity::Lost,
                ProblemKind::AttachmentTooLarge,
                format!(
                    "attachment {} is {size} bytes, over the {}-byte upload session limit; not carried",
                    info.name, options.upload_session_limit
                ),
            ));
            continue;
        }
        // JSON cost: base64 + names + fixed keys (~150 bytes), names escaped at most 6x.
        let cost = size.div_ceil(3) * 4
            + 150
            + 6 * (info.name.len()
                + info.content_type.len()
                + info.content_id.as_ref().map_or(0, String::len));
        if size < options.inline_attachment_limit && used + cost <= options.request_limit {
            used += cost;
            message.attachments.push(FileAttachment {
                odata_type: "#microsoft.graph.fileAttachment",
                name: info.name,
                content_type: info.content_type,
                content_bytes: engine.encode(&att.data),
                is_inline: info.is_inline,
                content_id: info.content_id,
            });
        } else {
            let data = Bytes::copy_from_slice(&att.data);
            message.large_attachments.push(LargeAttachment {
                name: info.name,
                content_type: info.content_type,
                content_id: info.content_id,
                is_inline: info.is_inline,
                data,
            });
        }
    }

    Converted {
        value: message,
        problems,
    }
}
