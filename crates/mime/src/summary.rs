//! What `verify` compares of one message's content, whichever side it was read from: the
//! source's raw bytes, a Graph item's properties, or the MIME a target serves back
//! (`GET …/messages/{id}/$value`).
//!
//! Both raw forms go through the same conversion ([`crate::to_graph`]) so that the source and
//! the target are read alike: the body Graph was given (HTML preferred), the attachments Graph
//! was given (names, decoded sizes, SHA-256). Fields a side cannot tell are `None` and are not
//! compared.

use sha2::{Digest, Sha256};

use crate::graph::GraphMessage;
use crate::{Flags, to_graph};

/// One attachment as verify compares it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AttachmentSummary {
    /// File name.
    pub name: String,
    /// Size in bytes (decoded), as the side reports it.
    pub size: u64,
    /// SHA-256 of the decoded bytes (hex), when the side gave the bytes.
    pub sha256: Option<String>,
}

/// The comparable content of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentSummary {
    /// Subject (trimmed).
    pub subject: Option<String>,
    /// Sender address (lower case).
    pub from: Option<String>,
    /// To addresses (lower case, sorted).
    pub to: Vec<String>,
    /// Cc addresses (lower case, sorted).
    pub cc: Vec<String>,
    /// Sent date (`Date:`), Unix seconds.
    pub sent: Option<i64>,
    /// Categories (sorted), where the side carries them.
    pub categories: Option<Vec<String>>,
    /// Attachments (sorted by name, then size), where the side listed them.
    pub attachments: Option<Vec<AttachmentSummary>>,
    /// SHA-256 (hex) of the body's normalized text ([`normalized_text`]), where the side gave
    /// the body.
    pub text_sha256: Option<String>,
}

/// How much a Graph-reported attachment `size` may exceed the decoded bytes: Exchange counts
/// the attachment's own properties too.
pub const ATTACHMENT_SIZE_SLACK: u64 = 4096;

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn lower_sorted<'a>(list: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut v: Vec<String> = list.map(|a| a.trim().to_lowercase()).collect();
    v.sort();
    v
}

/// The text of a body for comparison: HTML tags and comments dropped, the common entities
/// decoded, every run of whitespace one space, trimmed. Two bodies that show the same text
/// compare equal even when a server re-wraps or re-indents the markup.
pub fn normalized_text(content: &str, html: bool) -> String {
    let text = if html {
        strip_html(content)
    } else {
        content.to_owned()
    };
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(&decode_entities(&rest[..lt]));
        out.push(' ');
        let after = &rest[lt..];
        let skip_to = if let Some(body) = after.strip_prefix("<!--") {
            body.find("-->").map(|i| lt + 4 + i + 3)
        } else if starts_with_ci(after, "<style") || starts_with_ci(after, "<script") {
            let close = if starts_with_ci(after, "<style") {
                "</style"
            } else {
                "</script"
            };
            find_ci(after, close).and_then(|i| after[i..].find('>').map(|j| lt + i + j + 1))
        } else {
            after.find('>').map(|i| lt + i + 1)
        };
        match skip_to {
            Some(i) => rest = &rest[i..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(&decode_entities(rest));
    out
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn find_ci(s: &str, needle: &str) -> Option<usize> {
    let n = needle.len();
    (0..=s.len().saturating_sub(n))
        .filter(|&i| s.is_char_boundary(i))
        .find(|&i| {
            s.as_bytes()[i..].len() >= n
                && s.as_bytes()[i..i + n].eq_ignore_ascii_case(needle.as_bytes())
        })
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let end = after.find(';').filter(|&i| i <= 10);
        let decoded = end.and_then(|i| {
            let name = &after[1..i];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => {
                    let num = name.strip_prefix('#')?;
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(h) => u32::from_str_radix(h, 16).ok()?,
                        None => num.parse().ok()?,
                    };
                    char::from_u32(code)
                }
            }?;
            Some((c, i + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &after[len..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn unix_of_iso(s: &str) -> Option<i64> {
    // `YYYY-MM-DDTHH:MM:SS[.fff]Z` (what the conversion writes and Graph answers).
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

impl ContentSummary {
    /// The content of raw message bytes as the Graph conversion sees it: what the Graph writer
    /// sends for a source message, and what a target's `$value` MIME holds.
    pub fn of_mime(raw: &[u8]) -> ContentSummary {
        Self::of_graph(&to_graph(raw, &Flags::default(), None).value)
    }

    /// The content of a converted message (bodies and attachment bytes included).
    pub fn of_graph(g: &GraphMessage) -> ContentSummary {
        let addresses = |list: &[crate::graph::Recipient]| {
            lower_sorted(list.iter().map(|r| r.email_address.address.as_str()))
        };
        let mut s = ContentSummary {
            subject: Some(g.subject().trim().to_owned()),
            from: g
                .from()
                .map(|r| r.email_address.address.trim().to_lowercase()),
            to: addresses(g.to_recipients()),
            cc: addresses(g.cc_recipients()),
            sent: None,
            // As Graph's JSON: no categories means the property is absent.
            categories: (!g.categories().is_empty()).then(|| {
                let mut v = g.categories().to_vec();
                v.sort();
                v
            }),
            attachments: None,
            text_sha256: None,
        };
        // The create request carries no sentDateTime: the sent date is PidTagClientSubmitTime.
        s.sent = g
            .extended_properties()
            .iter()
            .find(|p| p.id.eq_ignore_ascii_case("SystemTime 0x0039"))
            .and_then(|p| unix_of_iso(&p.value));
        let mut atts: Vec<AttachmentSummary> = Vec::new();
        for a in g.inline_attachments() {
            let data = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                a.content_bytes.as_bytes(),
            )
            .unwrap_or_default();
            atts.push(AttachmentSummary {
                name: a.name.clone(),
                size: data.len() as u64,
                sha256: Some(sha256_hex(&data)),
            });
        }
        for a in g.large_attachments() {
            atts.push(AttachmentSummary {
                name: a.name.clone(),
                size: a.data.len() as u64,
                sha256: Some(sha256_hex(&a.data)),
            });
        }
        atts.sort();
        s.attachments = Some(atts);
        let body = g.body();
        s.text_sha256 = Some(sha256_hex(
            normalized_text(&body.content, body.content_type == "html").as_bytes(),
        ));
        s
    }

    /// The content of a Graph `message` resource as Graph answers it (`subject`, `from`,
    /// `toRecipients`, `ccRecipients`, `sentDateTime`, `categories`, and, when expanded,
    /// `attachments` with `name` and `size`; `body` when selected). Attachment bytes are not
    /// read here.
    pub fn of_graph_json(m: &serde_json::Value) -> ContentSummary {
        let addresses = |field: &str| {
            lower_sorted(
                m[field]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r["emailAddress"]["address"].as_str()),
            )
        };
        let attachments = m["attachments"].as_array().map(|list| {
            let mut v: Vec<AttachmentSummary> = list
                .iter()
                .map(|a| AttachmentSummary {
                    name: a["name"].as_str().unwrap_or_default().to_owned(),
                    size: a["size"].as_u64().unwrap_or(0),
                    sha256: None,
                })
                .collect();
            v.sort();
            v
        });
        let text_sha256 = m["body"]["content"].as_str().map(|c| {
            let html = m["body"]["contentType"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("html"));
            sha256_hex(normalized_text(c, html).as_bytes())
        });
        ContentSummary {
            subject: m["subject"].as_str().map(|s| s.trim().to_owned()),
            from: m["from"]["emailAddress"]["address"]
                .as_str()
                .map(|a| a.trim().to_lowercase()),
            to: addresses("toRecipients"),
            cc: addresses("ccRecipients"),
            sent: m["sentDateTime"].as_str().and_then(unix_of_iso),
            categories: m["categories"].as_array().map(|c| {
                let mut v: Vec<String> = c
                    .iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect();
                v.sort();
                v
            }),
            attachments,
            text_sha256,
        }
    }

    /// What differs between this (the source) and `target`, one phrase per difference;
    /// empty when they agree on every field both sides carry.
    pub fn differences(&self, target: &ContentSummary) -> Vec<String> {
        let mut out = Vec::new();
        let shown = |o: &Option<String>| o.clone().unwrap_or_else(|| "(none)".into());
        if let (Some(a), Some(b)) = (&self.subject, &target.subject)
            && a != b
        {
            out.push(format!("subject {a:?} in the source, {b:?} in the target"));
        }
        if self.from.is_some() && target.from.is_some() && self.from != target.from {
            out.push(format!(
                "from {} in the source, {} in the target",
                shown(&self.from),
                shown(&target.from)
            ));
        }
        if self.to != target.to {
            out.push(format!(
                "to {:?} in the source, {:?} in the target",
                self.to, target.to
            ));
        }
        if self.cc != target.cc {
            out.push(format!(
                "cc {:?} in the source, {:?} in the target",
                self.cc, target.cc
            ));
        }
        if let (Some(a), Some(b)) = (self.sent, target.sent)
            && a != b
        {
            out.push(format!("sent {a} in the source, {b} in the target"));
        }
        if let (Some(a), Some(b)) = (&self.categories, &target.categories)
            && a != b
        {
            out.push(format!(
                "categories {a:?} in the source, {b:?} in the target"
            ));
        }
        if let (Some(a), Some(b)) = (&self.attachments, &target.attachments) {
            out.extend(attachment_differences(a, b));
        }
        if let (Some(a), Some(b)) = (&self.text_sha256, &target.text_sha256)
            && a != b
        {
            out.push("body text differs".to_owned());
        }
        out
    }
}

fn attachment_differences(
    source: &[AttachmentSummary],
    target: &[AttachmentSummary],
) -> Vec<String> {
    let mut out = Vec::new();
    if source.len() != target.len() {
        out.push(format!(
            "{} attachments in the source, {} in the target",
            source.len(),
            target.len()
        ));
        return out;
    }
    let mut left: Vec<&AttachmentSummary> = target.iter().collect();
    for s in source {
        // The same name and content first, then the same name.
        let pos = left
            .iter()
            .position(|t| t.name == s.name && t.sha256.is_some() && t.sha256 == s.sha256)
            .or_else(|| left.iter().position(|t| t.name == s.name));
        let Some(pos) = pos else {
            out.push(format!("attachment {:?} is not in the target", s.name));
            continue;
        };
        let t = left.remove(pos);
        if t.size < s.size || t.size > s.size + ATTACHMENT_SIZE_SLACK {
            out.push(format!(
                "attachment {:?}: {} bytes in the source, {} in the target",
                s.name, s.size, t.size
            ));
        } else if let (Some(a), Some(b)) = (&s.sha256, &t.sha256)
            && a != b
        {
            out.push(format!(
                "attachment {:?}: content differs (SHA-256 {} in the source, {} in the target)",
                s.name,
                &a[..12],
                &b[..12]
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &[u8] =
        b"From: Ann <Ann@Example.com>\r\nTo: bob@example.com, Carl <carl@example.com>\r\n\
Cc: dee@example.com\r\nSubject: Report\r\nDate: Mon, 3 Mar 2025 09:00:00 +0000\r\n\
Message-ID: <r1@example.com>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n\
<p>Hello&nbsp;<b>world</b></p>\r\n--b\r\nContent-Type: application/octet-stream; name=a.bin\r\n\
Content-Disposition: attachment; filename=a.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n\
AAECAw==\r\n--b--\r\n";

    #[test]
    fn the_mime_form_reads_headers_body_and_attachments() {
        let s = ContentSummary::of_mime(RAW);
        assert_eq!(s.subject.as_deref(), Some("Report"));
        assert_eq!(s.from.as_deref(), Some("ann@example.com"));
        assert_eq!(s.to, ["bob@example.com", "carl@example.com"]);
        assert_eq!(s.cc, ["dee@example.com"]);
        assert_eq!(s.sent, Some(1_740_992_400));
        let a = s.attachments.as_ref().unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].name.as_str(), a[0].size), ("a.bin", 4));
        assert_eq!(
            a[0].sha256.as_deref(),
            Some("054edec1d0211f624fed0cbca9d4f9400b0e491c43742af2c5b0abebf0c990d8")
        );
        assert_eq!(
            s.text_sha256,
            Some(sha256_hex(b"Hello world")),
            "{:?}",
            normalized_text("<p>Hello&nbsp;<b>world</b></p>", true)
        );
        assert!(s.differences(&s).is_empty());
    }

    #[test]
    fn a_changed_attachment_byte_or_body_word_is_named() {
        let source = ContentSummary::of_mime(RAW);
        let changed = String::from_utf8(RAW.to_vec())
            .unwrap()
            .replace("AAECAw==", "AAECBA==");
        let target = ContentSummary::of_mime(changed.as_bytes());
        let d = source.differences(&target);
        assert_eq!(d.len(), 1, "{d:?}");
        assert!(
            d[0].starts_with("attachment \"a.bin\": content differs"),
            "{d:?}"
        );
        let reworded = String::from_utf8(RAW.to_vec())
            .unwrap()
            .replace("world", "word");
        let d = source.differences(&ContentSummary::of_mime(reworded.as_bytes()));
        assert_eq!(d, ["body text differs"]);
    }

    #[test]
    fn the_graph_json_form_compares_what_graph_lists() {
        let source = ContentSummary::of_mime(RAW);
        let json = serde_json::json!({
            "subject": "Report",
            "from": {"emailAddress": {"address": "ann@example.com"}},
            "toRecipients": [{"emailAddress": {"address": "carl@example.com"}},
                             {"emailAddress": {"address": "BOB@example.com"}}],
            "ccRecipients": [{"emailAddress": {"address": "dee@example.com"}}],
            "sentDateTime": "2025-03-03T09:00:00Z",
            "attachments": [{"name": "a.bin", "size": 180}],
        });
        let target = ContentSummary::of_graph_json(&json);
        assert!(
            source.differences(&target).is_empty(),
            "{:?}",
            source.differences(&target)
        );
        let mut cut = json.clone();
        cut["attachments"][0]["size"] = 3.into();
        cut["ccRecipients"] = serde_json::json!([]);
        let d = source.differences(&ContentSummary::of_graph_json(&cut));
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].starts_with("cc "), "{d:?}");
        assert!(
            d[1].contains("4 bytes in the source, 3 in the target"),
            "{d:?}"
        );
    }

    #[test]
    fn html_normalization_ignores_markup_and_spacing() {
        assert_eq!(
            normalized_text(
                "<html><head><style>p{x}</style></head><body><p>a &amp;\n b</p><!-- c --></body></html>",
                true
            ),
            "a & b"
        );
        assert_eq!(normalized_text(" a\r\n\tb ", false), "a b");
    }
}
