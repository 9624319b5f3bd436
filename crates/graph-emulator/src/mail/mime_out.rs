//! `GET …/messages/{id}/$value`: the MIME form of a stored item, as Exchange Online serves it
//! (built from the item's properties, not the bytes a client once sent): headers from
//! `from`, `toRecipients`, `ccRecipients`, `subject`, `sentDateTime` and `internetMessageId`,
//! the body as one text part (base64), inline attachments beside it in `multipart/related`,
//! the others in `multipart/mixed`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::util::parse_iso;
use crate::world::{Attachment, Message};

fn encoded_word(s: &str) -> String {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        s.to_owned()
    } else {
        format!("=?UTF-8?B?{}?=", STANDARD.encode(s.as_bytes()))
    }
}

fn mailbox(v: &Value) -> Option<String> {
    let addr = v["emailAddress"]["address"].as_str()?;
    Some(match v["emailAddress"]["name"].as_str() {
        Some(n) if !n.is_empty() => format!("{} <{addr}>", encoded_word(n)),
        _ => format!("<{addr}>"),
    })
}

fn rfc2822(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc2822)
                .ok()
        })
        .unwrap_or_else(|| "Thu, 01 Jan 1970 00:00:00 +0000".into())
}

fn base64_lines(data: &[u8], out: &mut String) {
    let b = STANDARD.encode(data);
    for chunk in b.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push_str("\r\n");
    }
}

fn attachment_part(a: &Attachment, out: &mut String) {
    let name = a.name.replace(['"', '\\', '\r', '\n'], "_");
    let name = encoded_word(&name);
    out.push_str(&format!(
        "Content-Type: {}; name=\"{name}\"\r\nContent-Disposition: {}; filename=\"{name}\"\r\n",
        if a.content_type.is_empty() {
            "application/octet-stream"
        } else {
            &a.content_type
        },
        if a.is_inline { "inline" } else { "attachment" },
    ));
    if let Some(cid) = &a.content_id {
        out.push_str(&format!("Content-ID: <{cid}>\r\n"));
    }
    out.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
    base64_lines(&a.data, out);
}

/// The MIME of `msg`.
pub(crate) fn render(msg: &Message) -> Vec<u8> {
    let p = &msg.props;
    let mut out = String::new();
    if let Some(f) = p.get("from").and_then(mailbox) {
        out.push_str(&format!("From: {f}\r\n"));
    }
    for (field, header) in [("toRecipients", "To"), ("ccRecipients", "Cc")] {
        let list: Vec<String> = p
            .get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(mailbox)
            .collect();
        if !list.is_empty() {
            out.push_str(&format!("{header}: {}\r\n", list.join(", ")));
        }
    }
    if let Some(s) = p.get("subject").and_then(Value::as_str) {
        out.push_str(&format!("Subject: {}\r\n", encoded_word(s)));
    }
    if let Some(t) = p
        .get("sentDateTime")
        .and_then(Value::as_str)
        .and_then(parse_iso)
    {
        out.push_str(&format!("Date: {}\r\n", rfc2822(t)));
    }
    if let Some(id) = p.get("internetMessageId").and_then(Value::as_str) {
        out.push_str(&format!("Message-ID: {id}\r\n"));
    }
    out.push_str("MIME-Version: 1.0\r\n");
    let html = p["body"]["contentType"]
        .as_str()
        .is_some_and(|t| t.eq_ignore_ascii_case("html"));
    let content = p["body"]["content"].as_str().unwrap_or_default();
    let mut body = format!(
        "Content-Type: text/{}; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n",
        if html { "html" } else { "plain" }
    );
    base64_lines(content.as_bytes(), &mut body);
    let (inline, files): (Vec<&Attachment>, Vec<&Attachment>) =
        msg.attachments.iter().partition(|a| a.is_inline);
    let related = if inline.is_empty() {
        body
    } else {
        let mut r = String::from(
            "Content-Type: multipart/related; boundary=\"_rel_\"; type=\"text/html\"\r\n\r\n--_rel_\r\n",
        );
        r.push_str(&body);
        for a in inline {
            r.push_str("--_rel_\r\n");
            attachment_part(a, &mut r);
        }
        r.push_str("--_rel_--\r\n");
        r
    };
    if files.is_empty() {
        out.push_str(&related);
    } else {
        out.push_str("Content-Type: multipart/mixed; boundary=\"_mix_\"\r\n\r\n--_mix_\r\n");
        out.push_str(&related);
        for a in files {
            out.push_str("--_mix_\r\n");
            attachment_part(a, &mut out);
        }
        out.push_str("--_mix_--\r\n");
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc_2822() {
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822(1_740_992_400), "Mon, 03 Mar 2025 09:00:00 +0000");
    }
}
