//! Building messages from create bodies: JSON (`POST .../messages`, following Graph's rules on
//! writable, ignored and extended properties and inline file attachments) and base64 MIME
//! (always a draft).

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::bad;
use crate::util::{Resp, iso, now_iso, parse_iso};
use crate::world::{Attachment, Message, World};

/// Properties a client may set when creating a message.
pub(super) const WRITABLE: [&str; 20] = [
    "subject",
    "body",
    "from",
    "sender",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "internetMessageId",
    "internetMessageHeaders",
    "importance",
    "categories",
    "flag",
    "isRead",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "singleValueExtendedProperties",
    "multiValueExtendedProperties",
    "attachments",
    "inferenceClassification",
];

/// Read-only properties Graph accepts in a create body and ignores.
pub(super) const IGNORED: [&str; 13] = [
    "id",
    "isDraft",
    "receivedDateTime",
    "sentDateTime",
    "createdDateTime",
    "lastModifiedDateTime",
    "hasAttachments",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "webLink",
    "changeKey",
    "bodyPreview",
];

const EXT_TYPES: [&str; 12] = [
    "Binary",
    "Boolean",
    "Currency",
    "Double",
    "Float",
    "Integer",
    "Long",
    "Object",
    "Short",
    "String",
    "SystemTime",
    "CLSID",
];

/// One `singleValueExtendedProperties` entry of a body: its id (checked) and value.
pub(crate) fn ext_prop(p: &Value) -> Result<(String, String), Resp> {
    let id = p["id"].as_str().unwrap_or_default().trim().to_string();
    if !valid_ext_id(&id) {
        return Err(bad(
            "ErrorInvalidProperty",
            &format!("The extended property id '{id}' is invalid."),
        ));
    }
    Ok((id, p["value"].as_str().unwrap_or_default().to_string()))
}

/// Checks an extended property id such as `Integer 0x0E07` or `String {guid} Name X`.
pub(super) fn valid_ext_id(id: &str) -> bool {
    let mut words = id.split_whitespace();
    let (Some(ty), Some(second)) = (words.next(), words.next()) else {
        return false;
    };
    if !EXT_TYPES.iter().any(|t| t.eq_ignore_ascii_case(ty)) {
        return false;
    }
    if let Some(hex) = second
        .strip_prefix("0x")
        .or_else(|| second.strip_prefix("0X"))
    {
        return words.next().is_none()
            && !hex.is_empty()
            && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    second.starts_with('{') && second.ends_with('}') && matches!(words.next(), Some("Name" | "Id"))
}

pub(super) fn ext_matches(id: &str, tag: &str) -> bool {
    let mut w = id.split_whitespace();
    let _ty = w.next();
    w.next().is_some_and(|t| t.eq_ignore_ascii_case(tag)) && w.next().is_none()
}

pub(crate) fn decode_file_attachment(v: &Value, id: String) -> Result<Attachment, Resp> {
    let ty = v["@odata.type"].as_str().unwrap_or_default();
    if !ty.eq_ignore_ascii_case("#microsoft.graph.fileAttachment") {
        return Err(bad(
            "ErrorInvalidRequest",
            &format!(
                "The attachment type '{ty}' is not supported here; use #microsoft.graph.fileAttachment."
            ),
        ));
    }
    let data = STANDARD
        .decode(v["contentBytes"].as_str().unwrap_or_default())
        .map_err(|_| bad("ErrorInvalidRequest", "contentBytes is not valid base64."))?;
    Ok(Attachment {
        id,
        name: v["name"].as_str().unwrap_or("attachment").to_string(),
        content_type: v["contentType"]
            .as_str()
            .unwrap_or("application/octet-stream")
            .to_string(),
        content_id: v["contentId"].as_str().map(String::from),
        is_inline: v["isInline"].as_bool().unwrap_or(false),
        data: Bytes::from(data),
    })
}

/// Builds a message from a JSON create body, following Graph's rules.
pub(super) fn message_from_json(
    world: &mut World,
    folder_id: &str,
    body: &Value,
) -> Result<Message, Resp> {
    let Some(obj) = body.as_object() else {
        return Err(bad(
            "UnableToDeserializePostBody",
            "were unable to deserialize ",
        ));
    };
    let mut props = Map::new();
    let mut ext_props = Vec::new();
    let mut attachments = Vec::new();
    for (k, v) in obj {
        if k.starts_with('@') || IGNORED.contains(&k.as_str()) {
            continue;
        }
        if !WRITABLE.contains(&k.as_str()) {
            return Err(bad(
                "RequestBodyRead",
                &format!(
                    "The property '{k}' does not exist on type 'microsoft.graph.message'. Make sure to only use property names that are defined by the type or mark the type as open type."
                ),
            ));
        }
        match k.as_str() {
            "singleValueExtendedProperties" => {
                for p in v.as_array().into_iter().flatten() {
                    ext_props.push(ext_prop(p)?);
                }
            }
            "attachments" => {
                for a in v.as_array().into_iter().flatten() {
                    let id = world.item_id("A");
                    attachments.push(decode_file_attachment(a, id)?);
                }
            }
            "internetMessageHeaders" => {
                let headers = v.as_array().cloned().unwrap_or_default();
                if headers.len() > 5 {
                    return Err(bad(
                        "InvalidInternetMessageHeader",
                        "The maximum number of custom Internet message headers is 5.",
                    ));
                }
                for h in &headers {
                    let name = h["name"].as_str().unwrap_or_default();
                    if !name.to_ascii_lowercase().starts_with("x-") {
                        return Err(bad(
                            "InvalidInternetMessageHeader",
                            &format!(
                                "The internet message header name '{name}' should start with 'x-' or 'X-'."
                            ),
                        ));
                    }
                }
                props.insert(k.clone(), v.clone());
            }
            _ => {
                props.insert(k.clone(), v.clone());
            }
        }
    }
    let find = |tag: &str| {
        ext_props
            .iter()
            .find(|(id, _)| ext_matches(id, tag))
            .map(|(_, v)| v.clone())
    };
    let flags = match find("0x0E07") {
        Some(v) => Some(v.trim().parse::<i64>().map_err(|_| {
            bad(
                "ErrorInvalidProperty",
                "PidTagMessageFlags (0x0E07) must be an integer.",
            )
        })?),
        None => None,
    };
    let date = |tag: &str, what: &str| -> Result<Option<i64>, Resp> {
        match find(tag) {
            Some(v) => parse_iso(&v).map(Some).ok_or_else(|| {
                bad(
                    "ErrorInvalidProperty",
                    &format!("{what} ({tag}) must be an ISO 8601 date."),
                )
            }),
            None => Ok(None),
        }
    };
    let received = date("0x0E06", "PidTagMessageDeliveryTime")?;
    let sent = date("0x0039", "PidTagClientSubmitTime")?;
    let is_draft = flags.is_none_or(|f| f & 0x8 != 0);
    let is_read = match obj.get("isRead").and_then(Value::as_bool) {
        Some(r) => r,
        None => flags.is_none_or(|f| f & 0x1 != 0),
    };
    let now = now_iso();
    let received_iso = received.map(iso).unwrap_or_else(|| now.clone());
    props.insert("isDraft".into(), json!(is_draft));
    props.insert("isRead".into(), json!(is_read));
    props.insert("receivedDateTime".into(), json!(received_iso));
    let sent_iso = sent
        .map(iso)
        .or_else(|| (!is_draft).then(|| received_iso.clone()));
    props.insert("sentDateTime".into(), json!(sent_iso));
    props.insert("createdDateTime".into(), json!(now));
    props.insert("lastModifiedDateTime".into(), json!(now));
    props
        .entry("flag")
        .or_insert_with(|| json!({"flagStatus": "notFlagged"}));
    props.entry("importance").or_insert_with(|| json!("normal"));
    props.entry("categories").or_insert_with(|| json!([]));
    props.entry("subject").or_insert_with(|| json!(""));
    props
        .entry("body")
        .or_insert_with(|| json!({"contentType": "text", "content": ""}));
    let id = world.item_id("M");
    props
        .entry("internetMessageId")
        .or_insert_with(|| json!(format!("<{}@emulator.local>", &id[..20.min(id.len())])));
    props.insert("parentFolderId".into(), json!(folder_id));
    props.insert("conversationId".into(), json!(format!("C{}", &id[1..])));
    let mut msg = Message {
        id,
        folder_id: folder_id.to_string(),
        props,
        ext_props,
        attachments,
    };
    refresh_has_attachments(&mut msg);
    Ok(msg)
}

pub(super) fn refresh_has_attachments(msg: &mut Message) {
    let has = msg.attachments.iter().any(|a| !a.is_inline);
    msg.props.insert("hasAttachments".into(), json!(has));
}

/// Builds a draft from a base64 MIME body, as `POST /users/{id}/messages` with text/plain does.
pub(super) fn message_from_mime(
    world: &mut World,
    drafts_id: &str,
    body: &[u8],
) -> Result<Message, Resp> {
    let cleaned: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let raw = STANDARD.decode(&cleaned).map_err(|_| {
        bad(
            "ErrorMimeContentInvalidBase64String",
            "The MIME content is not a valid base64 string.",
        )
    })?;
    let text = String::from_utf8_lossy(&raw);
    let (head, content) = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .unwrap_or((&text, ""));
    let mut headers: HashMap<String, String> = HashMap::new();
    let mut last: Option<String> = None;
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(v) = last.as_ref().and_then(|k| headers.get_mut(k)) {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            headers
                .entry(k.clone())
                .or_insert_with(|| v.trim().to_string());
            last = Some(k);
        }
    }
    let mut json_body = json!({
        "subject": headers.get("subject").cloned().unwrap_or_default(),
        "body": {"contentType": "text", "content": content},
    });
    if let Some(mid) = headers.get("message-id") {
        json_body["internetMessageId"] = json!(mid);
    }
    if let Some(from) = headers.get("from") {
        let addr = from
            .rsplit('<')
            .next()
            .unwrap_or(from)
            .trim_end_matches('>')
            .trim();
        json_body["from"] = json!({"emailAddress": {"address": addr}});
    }
    // No 0x0E07: a MIME create always yields a draft.
    message_from_json(world, drafts_id, &json_body)
}
