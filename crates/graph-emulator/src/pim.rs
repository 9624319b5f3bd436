//! Contacts and calendars: `contactFolders`, `contacts` (with `photo/$value`), `calendars`,
//! `calendar`, `events` (with `instances`, occurrence DELETE / PATCH and `attachments`).
//!
//! Follows Microsoft Graph v1.0 ("Create contact", "Create contactFolder", "Create calendar",
//! "Create event", "Update event", "List instances", "Update profilephoto"): a duplicate folder or
//! calendar name (compared case-insensitively) answers 409 `ErrorFolderExists`; `timeZone` must
//! be a supported Windows or IANA name (400 `TimeZoneNotSupportedException`); a recurrence is
//! validated ([`crate::recurrence`]); a create that repeats an earlier create's `transactionId`
//! answers the event already made ("avoid redundant POST operations in case of client
//! retries"); attendees of a created event count as invitations sent (an appointment sends
//! none). Lists take `$filter` on an extended property, `$expand` of extended properties,
//! `$select`, `$top` / `$skip` paging, the same code as messages ([`crate::mail`]).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::mail::{
    attachment_json, bad, body_json, decode_file_attachment, expand_ext_props, ext_prop,
    filtered_page, item_not_found, not_enabled, paged, select, top_skip,
};
use crate::recurrence::{Series, date_time_zone, validate_event};
use crate::server::Req;
use crate::util::{Resp, now_iso};
use crate::world::{Pim, PimFolder, PimItem, World};

/// The first path segments (after `/users/{id}/`) this module answers.
pub(crate) const KINDS: [&str; 6] = [
    "contactFolders",
    "contacts",
    "calendars",
    "calendar",
    "events",
    "todo",
];

/// Whether the resource is a contact one (permissions `Contacts.*`) or a calendar one.
pub(crate) fn is_contacts(kind: &str) -> bool {
    matches!(kind, "contactFolders" | "contacts")
}

/// Separates a series id from an occurrence's original start in an instance id.
const OCC: &str = "_OCC";

fn folder_exists() -> Resp {
    Resp::graph_error(
        409,
        "ErrorFolderExists",
        "A folder with the specified name already exists.",
    )
}

fn invalid((code, msg): (&str, String)) -> Resp {
    bad(code, &msg)
}

/// Renders an instant as Graph's `dateTimeTimeZone` in UTC.
fn utc_dtz(at: DateTime<Utc>) -> Value {
    json!({"dateTime": format!("{}.0000000", at.format("%Y-%m-%dT%H:%M:%S")), "timeZone": "UTC"})
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Handles `/users/{id}/{rest...}` for contacts and calendars.
pub(crate) fn pim_op(world: &mut World, ti: usize, ui: usize, rest: &[String], req: &Req) -> Resp {
    let r: Vec<&str> = rest.iter().map(String::as_str).collect();
    let new_id = world.item_id(if is_contacts(r[0]) { "C" } else { "K" });
    let Some(mb) = world.tenants[ti].users[ui].mailbox_mut() else {
        return not_enabled();
    };
    let pim = &mut mb.pim;
    if r[0] == "todo" {
        return crate::todo::todo_op(pim, new_id, &r[1..], req);
    }
    let m = req.method.as_str();
    match (m, r.as_slice()) {
        ("GET", ["contactFolders"]) => {
            let default = pim.contact_folders[0].id.clone();
            let all: Vec<Value> = pim.contact_folders[1..]
                .iter()
                .map(|f| contact_folder_json(f, &default))
                .collect();
            list(all, req)
        }
        ("POST", ["contactFolders"]) => {
            let name = match folder_name(req, "displayName") {
                Ok(n) => n,
                Err(e) => return e,
            };
            create_folder(&mut pim.contact_folders, new_id, name, |f, all| {
                contact_folder_json(f, &all[0].id)
            })
        }
        ("GET", ["contactFolders", f]) => match pim.contact_folders.iter().find(|x| x.id == *f) {
            Some(x) => Resp::json(200, &contact_folder_json(x, &pim.contact_folders[0].id)),
            None => item_not_found(),
        },
        ("GET", ["calendars"]) => {
            let all: Vec<Value> = pim
                .calendars
                .iter()
                .enumerate()
                .map(|(i, c)| calendar_json(c, i == 0))
                .collect();
            list(all, req)
        }
        ("POST", ["calendars"]) => {
            let name = match folder_name(req, "name") {
                Ok(n) => n,
                Err(e) => return e,
            };
            create_folder(&mut pim.calendars, new_id, name, |c, all| {
                calendar_json(c, c.id == all[0].id)
            })
        }
        ("GET", ["calendar"]) => Resp::json(200, &calendar_json(&pim.calendars[0], true)),
        ("GET", ["calendars", c]) => match pim.calendars.iter().position(|x| x.id == *c) {
            Some(i) => Resp::json(200, &calendar_json(&pim.calendars[i], i == 0)),
            None => item_not_found(),
        },
        (_, ["contacts"]) | (_, ["contactFolders", _, "contacts"]) => {
            let folder = if r.len() == 1 {
                Some(pim.contact_folders[0].id.clone())
            } else {
                pim.contact_folders
                    .iter()
                    .find(|x| x.id == r[1])
                    .map(|x| x.id.clone())
            };
            let Some(folder) = folder else {
                return item_not_found();
            };
            match m {
                "GET" => list_items(&pim.contacts, &folder, req, contact_json),
                "POST" => create_contact(pim, folder, new_id, req),
                _ => unsupported(req),
            }
        }
        (_, ["calendar", "events"]) | (_, ["events"]) | (_, ["calendars", _, "events"]) => {
            let folder = if r.len() == 3 {
                pim.calendars
                    .iter()
                    .find(|x| x.id == r[1])
                    .map(|x| x.id.clone())
            } else {
                Some(pim.calendars[0].id.clone())
            };
            let Some(folder) = folder else {
                return item_not_found();
            };
            match m {
                "GET" => list_items(&pim.events, &folder, req, event_json),
                "POST" => create_event(pim, folder, new_id, req),
                _ => unsupported(req),
            }
        }
        (_, ["contacts", id, "photo", "$value"])
        | (_, ["contactFolders", _, "contacts", id, "photo", "$value"]) => {
            let Some(c) = pim.contacts.iter_mut().find(|c| c.id == *id) else {
                return item_not_found();
            };
            match m {
                "PUT" => {
                    if req.body.is_empty() || !req.content_type.starts_with("image/") {
                        return bad(
                            "ErrorInvalidRequest",
                            "The photo must be sent as image bytes with an image/* content type.",
                        );
                    }
                    c.photo = Some((req.content_type.clone(), req.body.clone()));
                    Resp::empty(200)
                }
                "GET" => match &c.photo {
                    Some((ct, bytes)) => Resp {
                        status: 200,
                        headers: vec![("content-type".into(), ct.clone())],
                        body: bytes.clone(),
                        reset: false,
                    },
                    None => Resp::graph_error(404, "ErrorItemNotFound", "The photo wasn't found."),
                },
                _ => unsupported(req),
            }
        }
        (_, ["contacts", id]) | (_, ["contactFolders", _, "contacts", id]) => {
            item_op(&mut pim.contacts, id, req, contact_json, None)
        }
        ("GET", ["events", id, "instances"]) => instances_op(pim, id, req),
        (_, ["events", id, "attachments"]) => {
            let Some(e) = pim.events.iter_mut().find(|e| e.id == *id) else {
                return item_not_found();
            };
            match m {
                "GET" => Resp::json(
                    200,
                    &json!({"value": e.attachments.iter().map(|a| attachment_json(a, true)).collect::<Vec<_>>()}),
                ),
                "POST" => {
                    let body = match body_json(req) {
                        Ok(b) => b,
                        Err(e) => return e,
                    };
                    match decode_file_attachment(&body, format!("{}A{}", e.id, e.attachments.len()))
                    {
                        Ok(a) => {
                            let out = attachment_json(&a, false);
                            e.attachments.push(a);
                            e.props.insert("hasAttachments".into(), json!(true));
                            Resp::json(201, &out)
                        }
                        Err(resp) => resp,
                    }
                }
                _ => unsupported(req),
            }
        }
        (_, ["events", id])
        | (_, ["calendar", "events", id])
        | (_, ["calendars", _, "events", id]) => {
            if let Some((series, at)) = id.rsplit_once(OCC) {
                return occurrence_op(pim, series, at, req);
            }
            item_op(&mut pim.events, id, req, event_json, Some(validate))
        }
        _ => unsupported(req),
    }
}

pub(crate) fn unsupported(req: &Req) -> Resp {
    bad(
        "BadRequest",
        &format!("Unsupported request: {} {}", req.method, req.path),
    )
}

pub(crate) fn folder_name(req: &Req, field: &str) -> Result<String, Resp> {
    let body = body_json(req)?;
    let name = body[field].as_str().unwrap_or_default().trim().to_string();
    if name.is_empty() {
        return Err(bad("ErrorInvalidRequest", &format!("{field} is required.")));
    }
    Ok(name)
}

fn create_folder(
    all: &mut Vec<PimFolder>,
    id: String,
    name: String,
    render: impl Fn(&PimFolder, &[PimFolder]) -> Value,
) -> Resp {
    if all
        .iter()
        .any(|f| f.name.to_lowercase() == name.to_lowercase())
    {
        return folder_exists();
    }
    all.push(PimFolder { id, name });
    let f = &all[all.len() - 1];
    Resp::json(201, &render(f, all))
}

fn contact_folder_json(f: &PimFolder, default: &str) -> Value {
    json!({"id": f.id, "displayName": f.name, "parentFolderId": default})
}

fn calendar_json(c: &PimFolder, default: bool) -> Value {
    json!({"id": c.id, "name": c.name, "isDefaultCalendar": default, "canEdit": true,
        "canShare": true, "canViewPrivateItems": true, "color": "auto",
        "defaultOnlineMeetingProvider": "teamsForBusiness"})
}

pub(crate) fn list(values: Vec<Value>, req: &Req) -> Resp {
    let (top, skip) = match top_skip(req, 10, 1000) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let total = values.len();
    let page: Vec<Value> = values
        .into_iter()
        .skip(skip)
        .take(top)
        .map(|v| {
            Value::Object(select(
                v.as_object().cloned().unwrap_or_default(),
                &req.query,
            ))
        })
        .collect();
    paged(page, total, skip, top, req, false)
}

pub(crate) type Render = fn(&PimItem) -> Map<String, Value>;

/// Validates an item's properties after a PATCH.
pub(crate) type Check = fn(&Map<String, Value>) -> Result<(), Resp>;

pub(crate) fn render(item: &PimItem, req: &Req, base: Render) -> Value {
    let mut obj = select(base(item), &req.query);
    if let Some(expand) = req
        .query
        .get("$expand")
        .filter(|e| e.starts_with("singleValueExtendedProperties"))
    {
        expand_ext_props(&mut obj, &item.ext_props, expand);
    }
    Value::Object(obj)
}

pub(crate) fn list_items(items: &[PimItem], folder: &str, req: &Req, base: Render) -> Resp {
    filtered_page(
        items.iter().filter(|i| i.folder_id == folder),
        |i| (&i.props, &i.ext_props),
        |i| render(i, req, base),
        req,
    )
}

fn contact_json(c: &PimItem) -> Map<String, Value> {
    let mut obj = c.props.clone();
    obj.insert("id".into(), json!(c.id));
    obj.insert("parentFolderId".into(), json!(c.folder_id));
    obj
}

fn event_json(e: &PimItem) -> Map<String, Value> {
    let mut obj = e.props.clone();
    obj.insert("id".into(), json!(e.id));
    let series = obj.get("recurrence").is_some_and(|r| !r.is_null());
    obj.insert(
        "type".into(),
        json!(if series {
            "seriesMaster"
        } else {
            "singleInstance"
        }),
    );
    obj.insert("hasAttachments".into(), json!(!e.attachments.is_empty()));
    obj
}

/// Splits a create / update body into properties and extended properties (validated ids).
pub(crate) fn split_body(
    body: Value,
    props: &mut Map<String, Value>,
    ext: &mut Vec<(String, String)>,
) -> Result<(), Resp> {
    let Value::Object(body) = body else {
        return Err(bad(
            "UnableToDeserializePostBody",
            "were unable to deserialize ",
        ));
    };
    for (k, v) in body {
        match k.as_str() {
            "singleValueExtendedProperties" => {
                for p in v.as_array().into_iter().flatten() {
                    let (pid, value) = ext_prop(p)?;
                    match ext.iter_mut().find(|(i, _)| i.eq_ignore_ascii_case(&pid)) {
                        Some(slot) => slot.1 = value,
                        None => ext.push((pid, value)),
                    }
                }
            }
            "id"
            | "type"
            | "createdDateTime"
            | "lastModifiedDateTime"
            | "changeKey"
            | "parentFolderId"
            | "hasAttachments"
            | "attachments" => {}
            _ if k.starts_with('@') => {}
            _ => {
                props.insert(k, v);
            }
        }
    }
    Ok(())
}

pub(crate) fn new_item(folder: String, id: String, req: &Req) -> Result<PimItem, Resp> {
    let body = body_json(req)?;
    let mut item = PimItem {
        id,
        folder_id: folder,
        props: Map::new(),
        ext_props: Vec::new(),
        photo: None,
        attachments: Vec::new(),
        cancelled: Vec::new(),
        exceptions: Default::default(),
    };
    split_body(body, &mut item.props, &mut item.ext_props)?;
    let now = now_iso();
    item.props.insert("createdDateTime".into(), json!(now));
    item.props.insert("lastModifiedDateTime".into(), json!(now));
    Ok(item)
}

fn create_contact(pim: &mut Pim, folder: String, id: String, req: &Req) -> Resp {
    let item = match new_item(folder, id, req) {
        Ok(i) => i,
        Err(e) => return e,
    };
    let out = Value::Object(contact_json(&item));
    pim.contacts.push(item);
    Resp::json(201, &out)
}

fn validate(props: &Map<String, Value>) -> Result<(), Resp> {
    validate_event(props).map(|_| ()).map_err(invalid)
}

fn create_event(pim: &mut Pim, folder: String, id: String, req: &Req) -> Resp {
    let item = match new_item(folder, id, req) {
        Ok(i) => i,
        Err(e) => return e,
    };
    if let Err(e) = validate(&item.props) {
        return e;
    }
    if let Some(tid) = item.props.get("transactionId").and_then(Value::as_str)
        && let Some(existing) = pim
            .events
            .iter()
            .find(|e| e.props.get("transactionId").and_then(Value::as_str) == Some(tid))
    {
        return Resp::json(201, &Value::Object(event_json(existing)));
    }
    pim.invitations_sent += item
        .props
        .get("attendees")
        .and_then(Value::as_array)
        .map_or(0, |a| a.len() as u64);
    let out = Value::Object(event_json(&item));
    pim.events.push(item);
    Resp::json(201, &out)
}

/// GET, PATCH or DELETE of one contact or event.
pub(crate) fn item_op(
    items: &mut Vec<PimItem>,
    id: &str,
    req: &Req,
    base: Render,
    check: Option<Check>,
) -> Resp {
    let Some(pos) = items.iter().position(|i| i.id == id) else {
        return item_not_found();
    };
    match req.method.as_str() {
        "GET" => Resp::json(200, &render(&items[pos], req, base)),
        "DELETE" => {
            items.remove(pos);
            Resp::empty(204)
        }
        "PATCH" => {
            let body = match body_json(req) {
                Ok(b) => b,
                Err(e) => return e,
            };
            let mut props = items[pos].props.clone();
            let mut ext = items[pos].ext_props.clone();
            if let Err(e) = split_body(body, &mut props, &mut ext) {
                return e;
            }
            if let Some(Err(e)) = check.map(|c| c(&props)) {
                return e;
            }
            props.insert("lastModifiedDateTime".into(), json!(now_iso()));
            let item = &mut items[pos];
            item.props = props;
            item.ext_props = ext;
            Resp::json(200, &Value::Object(base(item)))
        }
        _ => unsupported(req),
    }
}

fn series_of(e: &PimItem) -> Option<Series> {
    validate_event(&e.props).ok().flatten()
}

/// The instance of series `e` whose original start is `at`, as Graph renders it.
fn instance_json(
    e: &PimItem,
    s: &Series,
    at: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>, Value) {
    let mut obj = e.props.clone();
    obj.remove("recurrence");
    obj.remove("transactionId");
    let (mut start, mut end) = (at, at + s.duration);
    let kind = match e.exceptions.get(&at.timestamp()) {
        Some(patch) => {
            for (k, v) in patch {
                obj.insert(k.clone(), v.clone());
            }
            if let Some(Ok((_, _, t))) = patch.get("start").map(|v| date_time_zone(v, "start")) {
                start = t;
            }
            if let Some(Ok((_, _, t))) = patch.get("end").map(|v| date_time_zone(v, "end")) {
                end = t;
            }
            "exception"
        }
        None => "occurrence",
    };
    obj.insert(
        "id".into(),
        json!(format!("{}{OCC}{}", e.id, at.timestamp())),
    );
    obj.insert("type".into(), json!(kind));
    obj.insert("seriesMasterId".into(), json!(e.id));
    obj.insert("originalStart".into(), json!(rfc3339(at)));
    obj.insert("start".into(), utc_dtz(start));
    obj.insert("end".into(), utc_dtz(end));
    (start, end, Value::Object(obj))
}

/// The instances of a series overlapping `[from, to)`, sorted by start.
pub(crate) fn instances(e: &PimItem, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Value> {
    let Some(s) = series_of(e) else {
        return Vec::new();
    };
    // An exception moved into the window from an original start after it still shows.
    let last_exception = e
        .exceptions
        .keys()
        .max()
        .and_then(|t| DateTime::from_timestamp(*t + 1, 0));
    let until = last_exception.map_or(to, |l| l.max(to));
    let mut out: Vec<(DateTime<Utc>, Value)> = s
        .starts_before(until)
        .into_iter()
        .filter(|at| !e.cancelled.contains(&at.timestamp()))
        .map(|at| instance_json(e, &s, at))
        .filter(|(start, end, _)| *start < to && (*end > from || *start >= from))
        .map(|(start, _, v)| (start, v))
        .collect();
    out.sort_by_key(|(s, _)| *s);
    out.into_iter().map(|(_, v)| v).collect()
}

fn query_instant(req: &Req, name: &str) -> Result<DateTime<Utc>, Resp> {
    req.query
        .get(name)
        .and_then(|v| {
            DateTime::parse_from_rfc3339(v)
                .ok()
                .map(|d| d.with_timezone(&Utc))
                .or_else(|| crate::recurrence::parse_local(v).map(|l| l.and_utc()))
        })
        .ok_or_else(|| {
            bad(
                "ErrorInvalidParameter",
                &format!("The parameter '{name}' is missing or is not a date and time."),
            )
        })
}

fn instances_op(pim: &Pim, id: &str, req: &Req) -> Resp {
    let (from, to) = match (
        query_instant(req, "startDateTime"),
        query_instant(req, "endDateTime"),
    ) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let Some(e) = pim.events.iter().find(|e| e.id == id) else {
        return item_not_found();
    };
    let all = instances(e, from, to);
    let values: Vec<Value> = match series_of(e) {
        Some(_) => all,
        // A single event is its own only instance.
        None => {
            let mut obj = event_json(e);
            obj.insert("type".into(), json!("singleInstance"));
            vec![Value::Object(obj)]
        }
    };
    list(values, req)
}

/// GET, PATCH or DELETE of one occurrence (`{series}_OCC{unix}`).
fn occurrence_op(pim: &mut Pim, series: &str, at: &str, req: &Req) -> Resp {
    let Some(e) = pim.events.iter_mut().find(|e| e.id == series) else {
        return item_not_found();
    };
    let Some(s) = series_of(e) else {
        return item_not_found();
    };
    let Some(at) = at
        .parse::<i64>()
        .ok()
        .and_then(|t| DateTime::from_timestamp(t, 0))
    else {
        return item_not_found();
    };
    if !s.has_occurrence(at) || e.cancelled.contains(&at.timestamp()) {
        return item_not_found();
    }
    match req.method.as_str() {
        "GET" => Resp::json(200, &instance_json(e, &s, at).2),
        "DELETE" => {
            e.cancelled.push(at.timestamp());
            e.exceptions.remove(&at.timestamp());
            Resp::empty(204)
        }
        "PATCH" => {
            let mut patch = e
                .exceptions
                .get(&at.timestamp())
                .cloned()
                .unwrap_or_default();
            let mut ext = Vec::new();
            let body = match body_json(req) {
                Ok(b) => b,
                Err(e) => return e,
            };
            if let Err(r) = split_body(body, &mut patch, &mut ext) {
                return r;
            }
            if patch.contains_key("recurrence") {
                return bad(
                    "ErrorInvalidRecurrence",
                    "An occurrence cannot be given a recurrence.",
                );
            }
            for what in ["start", "end"] {
                if let Some(Err(x)) = patch.get(what).map(|v| date_time_zone(v, what)) {
                    return invalid(x);
                }
            }
            e.exceptions.insert(at.timestamp(), patch);
            Resp::json(200, &instance_json(e, &s, at).2)
        }
        _ => unsupported(req),
    }
}
