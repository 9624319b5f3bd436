//! Mailbox resources: mailFolders, messages, attachments, upload sessions.
//!
//! This file routes `/users/{id}/...` mailbox requests ([`mailbox_op`]) and renders messages and
//! attachments as JSON. The submodules build messages from create bodies (`create`), apply the
//! OData query options `$filter`, `$select`, `$top` / `$skip` (`query`) and take attachment
//! upload chunks (`upload`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::server::{Req, Shared};
use crate::util::{Resp, iso, now_iso};
use crate::world::{Attachment, Folder, Mailbox, Message, UploadSession, World};

mod create;
mod mime_out;
mod query;
mod upload;

use create::{
    IGNORED, WRITABLE, ext_matches, message_from_json, message_from_mime, refresh_has_attachments,
    valid_ext_id,
};
pub(crate) use create::{decode_file_attachment, ext_prop};
pub(crate) use query::{expand_ext_props, filter_matches, filtered_page, paged, select, top_skip};
pub(crate) use upload::upload_chunk;

/// The user's mailbox, or an early `MailboxNotEnabledForRESTAPI` answer.
macro_rules! mb {
    ($w:expr, $ti:expr, $ui:expr) => {
        match $w.tenants[$ti].users[$ui].mailbox_mut() {
            Some(m) => m,
            None => return not_enabled(),
        }
    };
}

pub(crate) fn bad(code: &str, msg: &str) -> Resp {
    Resp::graph_error(400, code, msg)
}

fn message_json(msg: &Message, query: &HashMap<String, String>) -> Value {
    let mut obj = msg.props.clone();
    obj.insert("id".into(), json!(msg.id));
    let mut obj = select(obj, query);
    if let Some(expand) = query.get("$expand") {
        if expand.starts_with("singleValueExtendedProperties") {
            expand_ext_props(&mut obj, &msg.ext_props, expand);
        } else if expand.starts_with("attachments") {
            // `attachments($select=name,size)` lists them without their bytes.
            let with_bytes = !expand.contains("$select");
            obj.insert(
                "attachments".into(),
                Value::Array(
                    msg.attachments
                        .iter()
                        .map(|a| attachment_json(a, with_bytes))
                        .collect(),
                ),
            );
        }
    }
    Value::Object(obj)
}

pub(crate) fn attachment_json(a: &Attachment, with_bytes: bool) -> Value {
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

pub(crate) fn body_json(req: &Req) -> Result<Value, Resp> {
    serde_json::from_slice(&req.body).map_err(|e| {
        bad(
            "UnableToDeserializePostBody",
            &format!("were unable to deserialize: {e}"),
        )
    })
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
            // Exchange Online keeps a hidden `Files` folder at the top of every mailbox: a
            // folder of that name cannot be created there.
            let at_root = mb.folder("msgfolderroot").map(|f| f.id.as_str()) == Some(&parent);
            if at_root && name.eq_ignore_ascii_case("Files") {
                return Resp::graph_error(
                    409,
                    "ErrorFolderExists",
                    "A folder named Files is reserved.",
                );
            }
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
        ("GET", ["messages", id, "$value"])
        | ("GET", ["mailFolders", _, "messages", id, "$value"]) => {
            match mb!(world, ti, ui).messages.values().find(|m| m.id == *id) {
                Some(msg) => Resp::text(
                    200,
                    String::from_utf8_lossy(&mime_out::render(msg)).into_owned(),
                ),
                None => item_not_found(),
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
            if world.faults.refuse_deletes {
                return Resp::graph_error(
                    500,
                    "ErrorInternalServerError",
                    "The item could not be deleted (injected).",
                );
            }
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
        // https://learn.microsoft.com/en-us/graph/api/message-move : a copy of the message
        // in the destination folder (by id or well-known name) with a new id, the original
        // gone; 201 with the moved message.
        ("POST", ["messages", id, "move"])
        | ("POST", ["mailFolders", _, "messages", id, "move"]) => {
            let body = match body_json(req) {
                Ok(b) => b,
                Err(e) => return e,
            };
            let Some(dest) = body["destinationId"].as_str().map(str::to_owned) else {
                return bad("ErrorInvalidRequest", "destinationId is required.");
            };
            let new_id = world.item_id("M");
            let mb = mb!(world, ti, ui);
            let Some(dest_id) = mb.folder(&dest).map(|f| f.id.clone()) else {
                return item_not_found();
            };
            let Some(msg) = mb.messages.values_mut().find(|m| m.id == *id) else {
                return item_not_found();
            };
            msg.id = new_id;
            msg.folder_id = dest_id.clone();
            msg.props.insert("parentFolderId".into(), json!(dest_id));
            msg.props
                .insert("lastModifiedDateTime".into(), json!(now_iso()));
            Resp::json(201, &message_json(msg, &HashMap::new()))
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
            if size < limits.min_upload_session_bytes {
                return bad(
                    "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize",
                    "Attachment size must be greater than the minimum size.",
                );
            }
            if size > limits.max_attachment_bytes {
                return bad(
                    "ErrorAttachmentSizeShouldNotBeGreaterThanMaximumSize",
                    &format!(
                        "Attachment size must not be greater than {} bytes.",
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

pub(crate) fn item_not_found() -> Resp {
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
    filtered_page(
        mb.messages
            .values()
            .filter(|m| folder.is_none_or(|f| m.folder_id == f)),
        |m| (&m.props, &m.ext_props),
        |m| message_json(m, &req.query),
        req,
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
