//! The inspection API for tests: stored messages with every property, counters, hooks.

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};

use crate::auth::DeviceState;
use crate::server::Shared;
use crate::throttle::MailboxCounters;
use crate::util::Resp;
use crate::world::{MailboxState, World};

/// A stored message as the emulator holds it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct StoredMessage {
    /// Graph id.
    pub id: String,
    /// Folder path from the top of the mailbox (`Inbox/Receipts`).
    pub folder_path: String,
    /// Every property as Graph would return it (subject, body, isDraft, receivedDateTime, ...).
    pub properties: Value,
    /// Single-value extended properties (`id`, `value`).
    pub extended_properties: Vec<(String, String)>,
    /// Attachments with their bytes.
    pub attachments: Vec<StoredAttachment>,
}

impl StoredMessage {
    /// A property as a string (`subject`, `receivedDateTime`, ...).
    pub fn str(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(Value::as_str)
    }

    /// A boolean property (`isDraft`, `isRead`, ...).
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.properties.get(name).and_then(Value::as_bool)
    }
}

/// A stored attachment.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct StoredAttachment {
    /// File name.
    pub name: String,
    /// MIME type.
    pub content_type: String,
    /// Content-ID for inline parts.
    pub content_id: Option<String>,
    /// Whether it is inline.
    pub is_inline: bool,
    /// The bytes.
    #[serde(skip)]
    pub data: Bytes,
    /// Size in bytes.
    pub size: usize,
}

/// A folder of a mailbox.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct StoredFolder {
    /// Graph id.
    pub id: String,
    /// Path from the top of the mailbox.
    pub path: String,
    /// Well-known name, if any.
    pub well_known: Option<String>,
    /// Number of messages.
    pub messages: usize,
}

pub(crate) fn messages(world: &World, mailbox: &str) -> Vec<StoredMessage> {
    let Some(user) = world.any_user(mailbox) else {
        return Vec::new();
    };
    let MailboxState::Ready(mb) = &user.mailbox else {
        return Vec::new();
    };
    mb.messages
        .values()
        .map(|m| {
            let mut props = m.props.clone();
            props.insert("id".into(), json!(m.id));
            StoredMessage {
                id: m.id.clone(),
                folder_path: mb.folder_path(&m.folder_id),
                properties: Value::Object(props),
                extended_properties: m.ext_props.clone(),
                attachments: m.attachments.iter().map(stored_attachment).collect(),
            }
        })
        .collect()
}

fn stored_attachment(a: &crate::world::Attachment) -> StoredAttachment {
    StoredAttachment {
        name: a.name.clone(),
        content_type: a.content_type.clone(),
        content_id: a.content_id.clone(),
        is_inline: a.is_inline,
        size: a.data.len(),
        data: a.data.clone(),
    }
}

/// A stored contact.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct StoredContact {
    /// Graph id.
    pub id: String,
    /// The contact folder's display name (`Contacts` for the default one).
    pub folder: String,
    /// Every property as Graph returns it.
    pub properties: Value,
    /// Single-value extended properties (`id`, `value`).
    pub extended_properties: Vec<(String, String)>,
    /// The photo's media type and size in bytes.
    pub photo: Option<(String, usize)>,
}

/// A stored event (a single event or a series master).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct StoredEvent {
    /// Graph id.
    pub id: String,
    /// The calendar's name (`Calendar` for the default one).
    pub calendar: String,
    /// Every property as Graph returns it.
    pub properties: Value,
    /// Single-value extended properties (`id`, `value`).
    pub extended_properties: Vec<(String, String)>,
    /// Original starts (UTC, RFC 3339) of the series' deleted occurrences.
    pub cancelled: Vec<String>,
    /// Original starts (UTC, RFC 3339) of the series' changed occurrences, with the changes.
    pub exceptions: Vec<(String, Value)>,
    /// Attachments with their bytes.
    pub attachments: Vec<StoredAttachment>,
    /// Start and end as instants (UTC, RFC 3339), read from `start` / `end` in their zones
    /// the way the emulator expands series; `None` when a zone is unknown.
    pub span_utc: Option<(String, String)>,
}

/// A stored Microsoft To Do task.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct StoredTask {
    /// Graph id.
    pub id: String,
    /// The list's display name (`Tasks` for the default one).
    pub list: String,
    /// Every property, `linkedResources` included.
    pub properties: Value,
}

impl StoredContact {
    /// An extended property's value by id (case-insensitive).
    pub fn extended(&self, id: &str) -> Option<&str> {
        ext_value(&self.extended_properties, id)
    }
}

impl StoredEvent {
    /// An extended property's value by id (case-insensitive).
    pub fn extended(&self, id: &str) -> Option<&str> {
        ext_value(&self.extended_properties, id)
    }
}

fn ext_value<'a>(ext: &'a [(String, String)], id: &str) -> Option<&'a str> {
    ext.iter()
        .find(|(i, _)| i.eq_ignore_ascii_case(id))
        .map(|(_, v)| v.as_str())
}

fn pim_of<'a>(world: &'a World, mailbox: &str) -> Option<&'a crate::world::Pim> {
    match &world.any_user(mailbox)?.mailbox {
        MailboxState::Ready(mb) => Some(&mb.pim),
        _ => None,
    }
}

fn folder_name(folders: &[crate::world::PimFolder], id: &str) -> String {
    folders
        .iter()
        .find(|f| f.id == id)
        .map(|f| f.name.clone())
        .unwrap_or_default()
}

fn utc_text(t: i64) -> String {
    crate::util::iso(t)
}

pub(crate) fn contacts(world: &World, mailbox: &str) -> Vec<StoredContact> {
    let Some(pim) = pim_of(world, mailbox) else {
        return Vec::new();
    };
    pim.contacts
        .iter()
        .map(|c| {
            let mut props = c.props.clone();
            props.insert("id".into(), json!(c.id));
            StoredContact {
                id: c.id.clone(),
                folder: folder_name(&pim.contact_folders, &c.folder_id),
                properties: Value::Object(props),
                extended_properties: c.ext_props.clone(),
                photo: c.photo.as_ref().map(|(t, b)| (t.clone(), b.len())),
            }
        })
        .collect()
}

pub(crate) fn events(world: &World, mailbox: &str) -> Vec<StoredEvent> {
    let Some(pim) = pim_of(world, mailbox) else {
        return Vec::new();
    };
    pim.events
        .iter()
        .map(|e| {
            let mut props = e.props.clone();
            props.insert("id".into(), json!(e.id));
            StoredEvent {
                id: e.id.clone(),
                calendar: folder_name(&pim.calendars, &e.folder_id),
                properties: Value::Object(props),
                extended_properties: e.ext_props.clone(),
                cancelled: e.cancelled.iter().map(|t| utc_text(*t)).collect(),
                exceptions: e
                    .exceptions
                    .iter()
                    .map(|(t, p)| (utc_text(*t), Value::Object(p.clone())))
                    .collect(),
                attachments: e.attachments.iter().map(stored_attachment).collect(),
                span_utc: {
                    let at = |k: &str| {
                        crate::recurrence::date_time_zone(&e.props[k], k)
                            .ok()
                            .map(|(_, _, t)| utc_text(t.timestamp()))
                    };
                    at("start").zip(at("end"))
                },
            }
        })
        .collect()
}

pub(crate) fn event_instances(
    world: &World,
    mailbox: &str,
    event_id: &str,
    from: &str,
    to: &str,
) -> Option<Vec<Value>> {
    let pim = pim_of(world, mailbox)?;
    let e = pim.events.iter().find(|e| e.id == event_id)?;
    let parse = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.with_timezone(&chrono::Utc))
    };
    Some(crate::pim::instances(e, parse(from)?, parse(to)?))
}

pub(crate) fn tasks(world: &World, mailbox: &str) -> Vec<StoredTask> {
    let Some(pim) = pim_of(world, mailbox) else {
        return Vec::new();
    };
    pim.tasks
        .iter()
        .map(|t| StoredTask {
            id: t.id.clone(),
            list: folder_name(&pim.task_lists, &t.folder_id),
            properties: Value::Object(t.props.clone()),
        })
        .collect()
}

pub(crate) fn invitations_sent(world: &World, mailbox: &str) -> u64 {
    pim_of(world, mailbox).map_or(0, |p| p.invitations_sent)
}

pub(crate) fn replace_attachment(
    world: &mut World,
    mailbox: &str,
    message_id: &str,
    index: usize,
    data: Bytes,
) -> bool {
    let Some(user) = world.any_user_mut(mailbox) else {
        return false;
    };
    let MailboxState::Ready(mb) = &mut user.mailbox else {
        return false;
    };
    let Some(a) = mb
        .messages
        .values_mut()
        .find(|m| m.props.get("internetMessageId").and_then(Value::as_str) == Some(message_id))
        .and_then(|m| m.attachments.get_mut(index))
    else {
        return false;
    };
    a.data = data;
    true
}

pub(crate) fn master_categories(world: &World, mailbox: &str) -> Vec<(String, String)> {
    match world.any_user(mailbox).map(|u| &u.mailbox) {
        Some(MailboxState::Ready(mb)) => mb
            .master_categories
            .iter()
            .map(|c| (c.display_name.clone(), c.color.clone()))
            .collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn add_master_category(
    world: &mut World,
    mailbox: &str,
    name: &str,
    color: &str,
) -> bool {
    let id = world.guid();
    match world.any_user_mut(mailbox).and_then(|u| u.mailbox_mut()) {
        Some(mb) => crate::categories::add(mb, id, name, color),
        None => false,
    }
}

pub(crate) fn message_count(world: &World, mailbox: &str) -> usize {
    match world.any_user(mailbox).map(|u| &u.mailbox) {
        Some(MailboxState::Ready(mb)) => mb.messages.len(),
        _ => 0,
    }
}

pub(crate) fn folders(world: &World, mailbox: &str) -> Vec<StoredFolder> {
    let Some(user) = world.any_user(mailbox) else {
        return Vec::new();
    };
    let MailboxState::Ready(mb) = &user.mailbox else {
        return Vec::new();
    };
    mb.folders
        .iter()
        .map(|f| StoredFolder {
            id: f.id.clone(),
            path: mb.folder_path(&f.id),
            well_known: f.well_known.map(String::from),
            messages: mb.messages.values().filter(|m| m.folder_id == f.id).count(),
        })
        .collect()
}

/// Counters summed over apps for one mailbox (max for the concurrency high-water mark).
pub(crate) fn counters(world: &World, mailbox: &str) -> MailboxCounters {
    let Some(user) = world.any_user(mailbox) else {
        return MailboxCounters::default();
    };
    let mut total = MailboxCounters::default();
    for ((_, uid), t) in &world.throttle {
        if *uid != user.id {
            continue;
        }
        let c = &t.counters;
        total.requests += c.requests;
        total.upload_bytes += c.upload_bytes;
        total.max_concurrent_seen = total.max_concurrent_seen.max(c.max_concurrent_seen);
        total.concurrency_violations += c.concurrency_violations;
        total.request_budget_refusals += c.request_budget_refusals;
        total.upload_budget_refusals += c.upload_budget_refusals;
        total.faults_injected += c.faults_injected;
    }
    total
}

pub(crate) fn all_counters(world: &World) -> Vec<(String, String, MailboxCounters)> {
    let mut out: Vec<_> = world
        .throttle
        .iter()
        .map(|((app, uid), t)| {
            let upn = world
                .any_user(uid)
                .map(|u| u.upn())
                .unwrap_or_else(|| uid.clone());
            (app.clone(), upn, t.counters.clone())
        })
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

pub(crate) fn set_device_state(world: &mut World, user_code: &str, state: DeviceState) -> bool {
    let mut found = false;
    for d in world.device_codes.values_mut() {
        if d.user_code.eq_ignore_ascii_case(user_code) && d.state == DeviceState::Pending {
            d.state = state.clone();
            found = true;
        }
    }
    found
}

/// `/_emulator/...` endpoints.
pub(crate) fn http(shared: &Shared, method: &str, rest: &[&str], body: &[u8]) -> Resp {
    let mut world = shared.lock();
    crate::auth::purge_device_codes(&mut world.device_codes);
    match (method, rest) {
        ("GET", ["mailboxes", m, "messages"]) => Resp::json(200, &json!(messages(&world, m))),
        ("GET", ["mailboxes", m, "folders"]) => Resp::json(200, &json!(folders(&world, m))),
        ("GET", ["mailboxes", m, "masterCategories"]) => {
            Resp::json(200, &json!(master_categories(&world, m)))
        }
        ("GET", ["mailboxes", m, "contacts"]) => Resp::json(200, &json!(contacts(&world, m))),
        ("GET", ["mailboxes", m, "events"]) => Resp::json(200, &json!(events(&world, m))),
        ("GET", ["mailboxes", m, "counters"]) => Resp::json(200, &json!(counters(&world, m))),
        ("GET", ["counters"]) => Resp::json(
            200,
            &json!(
                all_counters(&world)
                    .into_iter()
                    .map(|(a, m, c)| json!({"app": a, "mailbox": m, "counters": c}))
                    .collect::<Vec<_>>()
            ),
        ),
        ("POST", ["devicecode", code, "approve"]) => {
            let upn = String::from_utf8_lossy(body).trim().to_string();
            let ok = set_device_state(&mut world, code, DeviceState::Approved(upn));
            Resp::json(if ok { 200 } else { 404 }, &json!({"approved": ok}))
        }
        ("POST", ["devicecode", code, "decline"]) => {
            let ok = set_device_state(&mut world, code, DeviceState::Declined);
            Resp::json(if ok { 200 } else { 404 }, &json!({"declined": ok}))
        }
        ("PUT", ["faults"]) => match serde_json::from_slice::<crate::Faults>(body) {
            Ok(f) => {
                world.fault_dice = crate::util::Dice::new(f.seed);
                world.faults = f;
                Resp::empty(204)
            }
            Err(e) => Resp::graph_error(400, "BadRequest", &format!("faults: {e}")),
        },
        _ => Resp::graph_error(404, "NotFound", "Unknown emulator endpoint."),
    }
}
