//! Mailbox resources: mailFolders, messages, attachments, upload sessions.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::server::{Req, Shared};
use crate::util::{Resp, iso, now_iso, parse_iso, pct_encode};
use crate::world::{Attachment, Folder, Mailbox, Message, UploadSession, World};

/// Properties a client may set when creating a message.
const WRITABLE: [&str; 20] = [
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
const IGNORED: [&str; 13] = [
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

/// The user's mailbox, or an early `MailboxNotEnabledForRESTAPI` answer.
macro_rules! mb {
    ($w:expr, $ti:expr, $ui:expr) => {
        match $w.tenants[$ti].users[$ui].mailbox_mut() {
            Some(m) => m,
            None => return not_enabled(),
        }
    };
}

fn bad(code: &str, msg: &str) -> Resp {
    Resp::graph_error(400, code, msg)
}

/// Checks an extended property id such as `Integer 0x0E07` or `String {guid} Name X`.
fn valid_ext_id(id: &str) -> bool {
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

fn ext_matches(id: &str, tag: &str) -> bool {
    let mut w = id.split_whitespace();
    let _ty = w.next();
    w.next().is_some_and(|t| t.eq_ignore_ascii_case(tag)) && w.next().is_none()
}

fn decode_file_attachment(v: &Value, id: String) -> Result<Attachment, Resp> {
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
fn message_from_json(world: &mut World, folder_id: &str, body: &Value) -> Result<Message, Resp> {
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
                    let id = p["id"].as_str().unwrap_or_default().trim().to_string();
                    if !valid_ext_id(&id) {
                        return Err(bad(
                            "ErrorInvalidProperty",
                            &format!("The extended property id '{id}' is invalid."),
                        ));
                    }
                    let value = p["value"].as_str().unwrap_or_default().to_string();
                    ext_props.push((id, value));
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

fn refresh_has_attachments(msg: &mut Message) {
    let has = msg.attachments.iter().any(|a| !a.is_inline);
    msg.props.insert("hasAttachments".into(), json!(has));
}

/// Builds a draft from a base64 MIME body, as `POST /users/{id}/messages` with text/plain does.
fn message_from_mime(world: &mut World, drafts_id: &str, body: &[u8]) -> Result<Message, Resp> {
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

/// A parsed `$filter` clause.
enum Filter {
    Eq(String, String),
    StartsWith(String, String),
    Ext(String, String),
}

fn unquote(s: &str) -> Option<String> {
    let s = s.trim();
    let inner = s.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(inner.replace("''", "'"))
}

fn parse_filter(f: &str) -> Result<Filter, Resp> {
    let invalid = || bad("BadRequest", &format!("Invalid filter clause: {f}"));
    let f = f.trim();
    if let Some(inner) = f
        .strip_prefix("singleValueExtendedProperties/any(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let (_, cond) = inner.split_once(':').ok_or_else(invalid)?;
        let (id_part, value_part) = cond.split_once(" and ").ok_or_else(invalid)?;
        let id = unquote(id_part.split_once(" eq ").ok_or_else(invalid)?.1).ok_or_else(invalid)?;
        let value =
            unquote(value_part.split_once(" eq ").ok_or_else(invalid)?.1).ok_or_else(invalid)?;
        return Ok(Filter::Ext(id, value));
    }
    if let Some(inner) = f
        .strip_prefix("startswith(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let (prop, lit) = inner.split_once(',').ok_or_else(invalid)?;
        return Ok(Filter::StartsWith(
            prop.trim().to_string(),
            unquote(lit).ok_or_else(invalid)?,
        ));
    }
    let (prop, lit) = f.split_once(" eq ").ok_or_else(invalid)?;
    let lit = lit.trim();
    let value = unquote(lit).unwrap_or_else(|| lit.to_string());
    Ok(Filter::Eq(prop.trim().to_string(), value))
}

fn value_matches(v: Option<&Value>, lit: &str) -> bool {
    match v {
        Some(Value::String(s)) => s == lit,
        Some(Value::Bool(b)) => lit == if *b { "true" } else { "false" },
        Some(Value::Number(n)) => n.to_string() == lit,
        _ => false,
    }
}

/// Applies a `$filter` to a JSON object (users or messages).
pub(crate) fn filter_matches(
    filter: &Option<String>,
    obj: &Map<String, Value>,
    ext: &[(String, String)],
) -> Result<bool, Resp> {
    let Some(f) = filter else { return Ok(true) };
    Ok(match parse_filter(f)? {
        Filter::Eq(p, lit) => value_matches(obj.get(&p), &lit),
        Filter::StartsWith(p, lit) => obj
            .get(&p)
            .and_then(Value::as_str)
            .is_some_and(|s| s.to_lowercase().starts_with(&lit.to_lowercase())),
        Filter::Ext(id, value) => ext
            .iter()
            .any(|(i, v)| i.eq_ignore_ascii_case(&id) && *v == value),
    })
}

/// Projects `$select`.
pub(crate) fn select(
    obj: Map<String, Value>,
    query: &HashMap<String, String>,
) -> Map<String, Value> {
    let Some(sel) = query.get("$select") else {
        return obj;
    };
    let wanted: Vec<&str> = sel.split(',').map(str::trim).collect();
    obj.into_iter()
        .filter(|(k, _)| k == "id" || wanted.iter().any(|w| w.eq_ignore_ascii_case(k)))
        .collect()
}

fn message_json(msg: &Message, query: &HashMap<String, String>) -> Value {
    let mut obj = msg.props.clone();
    obj.insert("id".into(), json!(msg.id));
    let mut obj = select(obj, query);
    if let Some(expand) = query.get("$expand") {
        if expand.starts_with("singleValueExtendedProperties") {
            let ids: Vec<String> = expand
                .split('\'')
                .enumerate()
                .filter(|(i, _)| i % 2 == 1)
                .map(|(_, s)| s.to_string())
                .collect();
            let props: Vec<Value> = msg
                .ext_props
                .iter()
                .filter(|(id, _)| ids.is_empty() || ids.iter().any(|w| w.eq_ignore_ascii_case(id)))
                .map(|(id, v)| json!({"id": id, "value": v}))
                .collect();
            obj.insert("singleValueExtendedProperties".into(), Value::Array(props));
        } else if expand.starts_with("attachments") {
            obj.insert(
                "attachments".into(),
                Value::Array(
                    msg.attachments
                        .iter()
                        .map(|a| attachment_json(a, true))
                        .collect(),
                ),
            );
        }
    }
    Value::Object(obj)
}

fn attachment_json(a: &Attachment, with_bytes: bool) -> Value {
    let mut v = json!({
        "@odata.type": "#microsoft.graph.fileAttachment",
        "id": a.id, "name": a.name, "contentType": a.content_type, "size": a.data.len(),
        "isInline": a.is_inline, "contentId": a.content_id, "lastModifiedDateTime": now_iso(),
    });
    if with_bytes {
        v["contentBytes"] = json!(STANDARD.encode(&a.data));
    }
    v
}

fn body_json(req: &Req) -> Result<Value, Resp> {
    serde_json::from_slice(&req.body).map_err(|e| {
        bad(
            "UnableToDeserializePostBody",
            &format!("were unable to deserialize: {e}"),
        )
    })
}

fn paged(
    values: Vec<Value>,
    total: usize,
    skip: usize,
    top: usize,
    req: &Req,
    count: bool,
) -> Resp {
    let mut out =
        json!({"@odata.context": format!("{}/v1.0/$metadata", req.base_url), "value": values});
    if count {
        out["@odata.count"] = json!(total);
    }
    if skip + top < total {
        let mut q: Vec<String> = req
            .query
            .iter()
            .filter(|(k, _)| k.as_str() != "$skip" && k.as_str() != "$skiptoken")
            .map(|(k, v)| format!("{}={}", pct_encode(k), pct_encode(v)))
            .collect();
        q.sort();
        q.push(format!("%24skip={}", skip + top));
        out["@odata.nextLink"] =
            json!(format!("{}/v1.0{}?{}", req.base_url, req.path, q.join("&")));
    }
    Resp::json(200, &out)
}

fn top_skip(req: &Req, default_top: usize, max_top: usize) -> Result<(usize, usize), Resp> {
    let top = match req.query.get("$top") {
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| bad("BadRequest", "Invalid $top value."))?,
        None => default_top,
    };
    if top == 0 || top > max_top {
        return Err(bad(
            "BadRequest",
            &format!("The value of $top must be between 1 and {max_top}."),
        ));
    }
    let skip = req
        .query
        .get("$skip")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((top, skip))
}

/// Handles `/users/{id}/{rest...}` for a provisioned mailbox. `rest[0]` is `mailFolders`,
/// `messages` or `mailboxSettings`.
pub(crate) fn mailbox_op(
    shared: &Shared,
    world: &mut World,
    ti: usize,
    ui: usize,
    app: &str,
    rest: &[String],
    req: &Req,
) -> Resp {
    let user_id = world.tenants[ti].users[ui].id.clone();
    let m = req.method.as_str();
    let r: Vec<&str> = rest.iter().map(String::as_str).collect();
    // Item ids and sessions need the world; the mailbox is borrowed in pieces below.
    match (m, r.as_slice()) {
        ("GET", ["mailboxSettings"]) => Resp::json(
            200,
            &json!({"@odata.context": format!("{}/v1.0/$metadata#users('{user_id}')/mailboxSettings", req.base_url),
                "timeZone": "UTC", "language": {"locale": "en-US", "displayName": "English (United States)"},
                "dateFormat": "M/d/yyyy", "timeFormat": "h:mm tt"}),
        ),
        ("GET", ["mailFolders"]) => {
            let mb = mb!(world, ti, ui);
            let root = mb
                .folder("msgfolderroot")
                .map(|f| f.id.clone())
                .unwrap_or_default();
            list_folders(mb, &root, req)
        }
        ("GET", ["mailFolders", f]) => {
            let mb = mb!(world, ti, ui);
            match mb.folder(f) {
                Some(folder) => Resp::json(
                    200,
                    &Value::Object(select(
                        mb.folder_json(folder)
                            .as_object()
                            .cloned()
                            .unwrap_or_default(),
                        &req.query,
                    )),
                ),
                None => folder_not_found(),
            }
        }
        ("GET", ["mailFolders", f, "childFolders"]) => {
            let mb = mb!(world, ti, ui);
            match mb.folder(f).map(|x| x.id.clone()) {
                Some(id) => list_folders(mb, &id, req),
                None => folder_not_found(),
            }
        }
        ("POST", ["mailFolders"]) | ("POST", ["mailFolders", _, "childFolders"]) => {
            let parent_ref = if r.len() == 3 { r[1] } else { "msgfolderroot" };
            let body = match body_json(req) {
                Ok(b) => b,
                Err(e) => return e,
            };
            let name = body["displayName"]
                .as_str()
                .unwrap_or_default()
                .trim()
                .to_string();
            if name.is_empty() {
                return bad("ErrorInvalidRequest", "displayName is required.");
            }
            let id = world.item_id("F");
            let mb = mb!(world, ti, ui);
            let Some(parent) = mb.folder(parent_ref).map(|p| p.id.clone()) else {
                return folder_not_found();
            };
            if mb.folders.iter().any(|f| {
                f.parent_id.as_deref() == Some(&parent)
                    && f.display_name.to_lowercase() == name.to_lowercase()
            }) {
                return Resp::graph_error(
                    409,
                    "ErrorFolderExists",
                    "A folder with the specified name already exists.",
                );
            }
            let folder = Folder {
                id,
                display_name: name,
                parent_id: Some(parent),
                well_known: None,
            };
            let json = mb.folder_json(&folder);
            mb.folders.push(folder);
            Resp::json(201, &json)
        }
        ("GET", ["mailFolders", f, "messages", "$count"]) => {
            let mb = mb!(world, ti, ui);
            match mb.folder(f).map(|x| x.id.clone()) {
                Some(id) => Resp::text(
                    200,
                    mb.messages
                        .values()
                        .filter(|m| m.folder_id == id)
                        .count()
                        .to_string(),
                ),
                None => folder_not_found(),
            }
        }
        ("GET", ["mailFolders", f, "messages"]) => {
            let mb = mb!(world, ti, ui);
            match mb.folder(f).map(|x| x.id.clone()) {
                Some(id) => list_messages(mb, Some(&id), req),
                None => folder_not_found(),
            }
        }
        ("GET", ["messages"]) => list_messages(mb!(world, ti, ui), None, req),
        ("POST", ["mailFolders", f, "messages"]) => {
            if !req.content_type.starts_with("application/json") {
                return bad("UnableToDeserializePostBody", "were unable to deserialize ");
            }
            let Some(folder_id) = mb!(world, ti, ui).folder(f).map(|x| x.id.clone()) else {
                return folder_not_found();
            };
            create_message(world, ti, ui, &folder_id, req)
        }
        ("POST", ["messages"]) => {
            let Some(drafts) = mb!(world, ti, ui).folder("drafts").map(|x| x.id.clone()) else {
                return folder_not_found();
            };
            if req.content_type.starts_with("text/plain") {
                match message_from_mime(world, &drafts, &req.body) {
                    Ok(msg) => insert_message(world, ti, ui, msg, req),
                    Err(e) => e,
                }
            } else {
                create_message(world, ti, ui, &drafts, req)
            }
        }
        ("GET", ["messages", id]) | ("GET", ["mailFolders", _, "messages", id]) => {
            match mb!(world, ti, ui).messages.values().find(|m| m.id == *id) {
                Some(msg) => Resp::json(200, &message_json(msg, &req.query)),
                None => item_not_found(),
            }
        }
        ("PATCH", ["messages", id]) | ("PATCH", ["mailFolders", _, "messages", id]) => {
            let body = match body_json(req) {
                Ok(Value::Object(b)) => b,
                Ok(_) => return bad("UnableToDeserializePostBody", "were unable to deserialize "),
                Err(e) => return e,
            };
            let mb = mb!(world, ti, ui);
            let Some(msg) = mb.messages.values_mut().find(|m| m.id == *id) else {
                return item_not_found();
            };
            for (k, v) in body {
                match k.as_str() {
                    "singleValueExtendedProperties" => {
                        for p in v.as_array().into_iter().flatten() {
                            let pid = p["id"].as_str().unwrap_or_default().trim().to_string();
                            if !valid_ext_id(&pid) {
                                return bad(
                                    "ErrorInvalidProperty",
                                    &format!("The extended property id '{pid}' is invalid."),
                                );
                            }
                            // PidTagMessageFlags is read-only after the first save: ignored.
                            if ext_matches(&pid, "0x0E07") {
                                continue;
                            }
                            let value = p["value"].as_str().unwrap_or_default().to_string();
                            match msg
                                .ext_props
                                .iter_mut()
                                .find(|(i, _)| i.eq_ignore_ascii_case(&pid))
                            {
                                Some(slot) => slot.1 = value,
                                None => msg.ext_props.push((pid, value)),
                            }
                        }
                    }
                    // isDraft cannot be changed after the first save; Graph ignores it.
                    "isDraft" => {}
                    _ if WRITABLE.contains(&k.as_str()) && k != "attachments" => {
                        msg.props.insert(k, v);
                    }
                    _ if IGNORED.contains(&k.as_str()) || k.starts_with('@') => {}
                    _ => {
                        return bad(
                            "RequestBodyRead",
                            &format!(
                                "The property '{k}' does not exist on type 'microsoft.graph.message'."
                            ),
                        );
                    }
                }
            }
            msg.props
                .insert("lastModifiedDateTime".into(), json!(now_iso()));
            Resp::json(200, &message_json(msg, &HashMap::new()))
        }
        ("DELETE", ["messages", id]) => {
            let mb = mb!(world, ti, ui);
            match mb
                .messages
                .iter()
                .find(|(_, m)| m.id == *id)
                .map(|(k, _)| *k)
            {
                Some(k) => {
                    mb.messages.remove(&k);
                    Resp::empty(204)
                }
                None => item_not_found(),
            }
        }
        ("GET", ["messages", id, "attachments"]) => {
            match mb!(world, ti, ui).messages.values().find(|m| m.id == *id) {
                Some(msg) => Resp::json(
                    200,
                    &json!({"value": msg.attachments.iter().map(|a| attachment_json(a, true)).collect::<Vec<_>>()}),
                ),
                None => item_not_found(),
            }
        }
        ("POST", ["messages", id, "attachments"]) => {
            let body = match body_json(req) {
                Ok(b) => b,
                Err(e) => return e,
            };
            let aid = world.item_id("A");
            let att = match decode_file_attachment(&body, aid) {
                Ok(a) => a,
                Err(e) => return e,
            };
            let limit = shared.config.limits.max_message_bytes;
            let Some(msg) = mb!(world, ti, ui)
                .messages
                .values_mut()
                .find(|m| m.id == *id)
            else {
                return item_not_found();
            };
            if message_size(msg) + att.data.len() as u64 > limit {
                return too_big(limit);
            }
            let json = attachment_json(&att, false);
            msg.attachments.push(att);
            refresh_has_attachments(msg);
            Resp::json(201, &json)
        }
        ("POST", ["messages", id, "attachments", "createUploadSession"]) => {
            let body = match body_json(req) {
                Ok(b) => b,
                Err(e) => return e,
            };
            let item = &body["AttachmentItem"];
            if item["attachmentType"].as_str() != Some("file") {
                return bad(
                    "ErrorInvalidRequest",
                    "AttachmentItem.attachmentType must be 'file'.",
                );
            }
            let size = item["size"].as_u64().unwrap_or(0);
            let limits = &shared.config.limits;
            if size == 0 || size > limits.max_attachment_bytes {
                return bad(
                    "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
                    &format!(
                        "Attachment size must be between 1 and {} bytes.",
                        limits.max_attachment_bytes
                    ),
                );
            }
            let sid = world.item_id("S");
            let token = format!(
                "{:016x}{:016x}",
                world.dice.next_u64(),
                world.dice.next_u64()
            );
            let aid = world.item_id("A");
            let Some(msg) = mb!(world, ti, ui).messages.values().find(|m| m.id == *id) else {
                return item_not_found();
            };
            if message_size(msg) + size > limits.max_message_bytes {
                return too_big(limits.max_message_bytes);
            }
            let expires = Instant::now() + Duration::from_secs(15 * 60);
            world.sessions.insert(
                sid.clone(),
                UploadSession {
                    app: app.to_string(),
                    user_id: user_id.clone(),
                    message_id: id.to_string(),
                    auth_token: token.clone(),
                    expires,
                    attachment: Attachment {
                        id: aid,
                        name: item["name"].as_str().unwrap_or("attachment").to_string(),
                        content_type: item["contentType"]
                            .as_str()
                            .unwrap_or("application/octet-stream")
                            .to_string(),
                        content_id: item["contentId"].as_str().map(String::from),
                        is_inline: item["isInline"].as_bool().unwrap_or(false),
                        data: Bytes::new(),
                    },
                    size,
                    received: Vec::new(),
                },
            );
            Resp::json(
                201,
                &json!({"@odata.context": format!("{}/v1.0/$metadata#microsoft.graph.uploadSession", req.base_url),
                    "uploadUrl": format!("{}/_upload/{sid}?authtoken={token}", req.base_url),
                    "expirationDateTime": iso(crate::util::unix_now() + 900),
                    "nextExpectedRanges": ["0-"]}),
            )
        }
        _ => Resp::graph_error(
            400,
            "BadRequest",
            &format!("Unsupported request: {m} /users/{{id}}/{}", rest.join("/")),
        ),
    }
}

pub(crate) fn not_enabled() -> Resp {
    Resp::graph_error(
        404,
        "MailboxNotEnabledForRESTAPI",
        "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
    )
}

fn message_size(msg: &Message) -> u64 {
    let body = serde_json::to_vec(&msg.props).map(|v| v.len()).unwrap_or(0) as u64;
    body + msg
        .attachments
        .iter()
        .map(|a| a.data.len() as u64)
        .sum::<u64>()
}

fn too_big(limit: u64) -> Resp {
    Resp::graph_error(
        413,
        "ErrorMessageSizeExceeded",
        &format!("The message exceeds the maximum supported size of {limit} bytes."),
    )
}

fn folder_not_found() -> Resp {
    Resp::graph_error(
        404,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

fn item_not_found() -> Resp {
    Resp::graph_error(
        404,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

fn list_folders(mb: &Mailbox, parent: &str, req: &Req) -> Resp {
    let (top, skip) = match top_skip(req, 10, 1000) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let all: Vec<&Folder> = mb
        .folders
        .iter()
        .filter(|f| f.parent_id.as_deref() == Some(parent))
        .collect();
    let mut values = Vec::new();
    for f in all.iter().skip(skip).take(top) {
        let obj = mb.folder_json(f).as_object().cloned().unwrap_or_default();
        match filter_matches(&req.query.get("$filter").cloned(), &obj, &[]) {
            Ok(true) => values.push(Value::Object(select(obj, &req.query))),
            Ok(false) => {}
            Err(e) => return e,
        }
    }
    paged(
        values,
        all.len(),
        skip,
        top,
        req,
        req.query.get("$count").is_some_and(|c| c == "true"),
    )
}

fn list_messages(mb: &Mailbox, folder: Option<&str>, req: &Req) -> Resp {
    let (top, skip) = match top_skip(req, 10, 1000) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let filter = req.query.get("$filter").cloned();
    let mut matching = Vec::new();
    for m in mb
        .messages
        .values()
        .filter(|m| folder.is_none_or(|f| m.folder_id == f))
    {
        match filter_matches(&filter, &m.props, &m.ext_props) {
            Ok(true) => matching.push(m),
            Ok(false) => {}
            Err(e) => return e,
        }
    }
    let values = matching
        .iter()
        .skip(skip)
        .take(top)
        .map(|m| message_json(m, &req.query))
        .collect();
    paged(
        values,
        matching.len(),
        skip,
        top,
        req,
        req.query.get("$count").is_some_and(|c| c == "true"),
    )
}

fn create_message(world: &mut World, ti: usize, ui: usize, folder_id: &str, req: &Req) -> Resp {
    let body = match body_json(req) {
        Ok(b) => b,
        Err(e) => return e,
    };
    match message_from_json(world, folder_id, &body) {
        Ok(msg) => insert_message(world, ti, ui, msg, req),
        Err(e) => e,
    }
}

fn insert_message(world: &mut World, ti: usize, ui: usize, msg: Message, req: &Req) -> Resp {
    let seq = world.seq();
    let json = message_json(&msg, &HashMap::new());
    let _ = req;
    mb!(world, ti, ui).messages.insert(seq, msg);
    Resp::json(201, &json)
}

/// `PUT {uploadUrl}`: one chunk of an attachment upload session.
pub(crate) fn upload_chunk(
    world: &mut World,
    limits: &crate::Limits,
    sid: &str,
    req: &Req,
) -> Resp {
    let Some(session) = world.sessions.get_mut(sid) else {
        return Resp::graph_error(
            404,
            "ErrorItemNotFound",
            "The upload session was not found or has expired.",
        );
    };
    if Instant::now() > session.expires {
        world.sessions.remove(sid);
        return Resp::graph_error(404, "ErrorItemNotFound", "The upload session has expired.");
    }
    let range = req.content_range.clone().unwrap_or_default();
    let parsed = range.strip_prefix("bytes ").and_then(|r| {
        let (span, total) = r.split_once('/')?;
        let (a, b) = span.split_once('-')?;
        Some((
            a.trim().parse::<u64>().ok()?,
            b.trim().parse::<u64>().ok()?,
            total.trim().parse::<u64>().ok()?,
        ))
    });
    let Some((start, end, total)) = parsed else {
        return bad(
            "InvalidContentRange",
            &format!(
                "The Content-Range header '{range}' is invalid; expected 'bytes start-end/total'."
            ),
        );
    };
    let len = req.body.len() as u64;
    if total != session.size || end < start || end >= total || end - start + 1 != len {
        return bad(
            "InvalidContentRange",
            &format!(
                "The Content-Range '{range}' does not match the session size {} or the body length {len}.",
                session.size
            ),
        );
    }
    if start != session.received.len() as u64 {
        return Resp::graph_error(
            416,
            "InvalidContentRange",
            &format!(
                "Expected the next range to start at {}.",
                session.received.len()
            ),
        );
    }
    if len > limits.max_chunk_bytes {
        return Resp::graph_error(
            413,
            "RequestBodyTooLarge",
            &format!("A chunk may hold at most {} bytes.", limits.max_chunk_bytes),
        );
    }
    session.received.extend_from_slice(&req.body);
    session.expires = Instant::now() + Duration::from_secs(15 * 60);
    if (session.received.len() as u64) < session.size {
        return Resp::json(
            200,
            &json!({"expirationDateTime": iso(crate::util::unix_now() + 900), "nextExpectedRanges": [session.received.len().to_string()]}),
        );
    }
    let Some(session) = world.sessions.remove(sid) else {
        return item_not_found();
    };
    let mut att = session.attachment;
    att.data = Bytes::from(session.received);
    let aid = att.id.clone();
    for t in &mut world.tenants {
        for u in &mut t.users {
            if u.id != session.user_id {
                continue;
            }
            if let Some(msg) = u.mailbox_mut().and_then(|mb| {
                mb.messages
                    .values_mut()
                    .find(|m| m.id == session.message_id)
            }) {
                msg.attachments.push(att);
                refresh_has_attachments(msg);
                return Resp::empty(201).with_header(
                    "location",
                    format!(
                        "{}/v1.0/users('{}')/messages('{}')/attachments('{aid}')",
                        req.base_url, session.user_id, session.message_id
                    ),
                );
            }
        }
    }
    item_not_found()
}

impl crate::server::Shared {
    /// The session's (app, user) for throttling and its auth token check.
    pub(crate) fn session_owner(
        &self,
        world: &World,
        sid: &str,
        token: &str,
    ) -> Option<(String, String)> {
        world
            .sessions
            .get(sid)
            .filter(|s| s.auth_token == token)
            .map(|s| (s.app.clone(), s.user_id.clone()))
    }
}
