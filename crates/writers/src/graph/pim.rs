//! Contacts and calendars into Exchange Online through Microsoft Graph: [`GraphPimWriter`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use super::client::{Body, Call, GraphClient, Reply, q, seg};
use super::throttle::MailboxLimiter;
use crate::Error;
use crate::pim::{
    FINGERPRINT_PROPERTY_ID, PimAttachment, PimBody, PimCollection, PimCollectionSpec, PimInstance,
    PimKind, PimOccurrenceChange, PimReadBack, PimStored, PimWriteItem, PimWriteOutcome, PimWriter,
};
use crate::writer::BoxFuture;

/// The extended property that says whether an item's work after creation is done
/// (`incomplete` / `complete`); in the fingerprint's property set.
pub const PIM_STATE_PROPERTY_ID: &str =
    "String {6d3b1f52-8f0e-4d4a-9c8e-1f0a5e7c2b90} Name o365-migrate-pim-state";

/// The collection id of the mailbox's default contact folder (Graph addresses it as
/// `/users/{id}/contacts`).
pub const DEFAULT_CONTACTS: &str = "contacts";

/// Attachments this large or larger need an upload session (not written yet).
const INLINE_ATTACHMENT_LIMIT: usize = 3 * 1024 * 1024;

/// Attempts at a create whose answer keeps getting lost.
const CREATE_ATTEMPTS: u32 = 4;

/// What the index knows of an item.
#[derive(Debug, Clone)]
struct Found {
    id: String,
    complete: bool,
}

/// Writes contacts and events into one Exchange Online mailbox: the [`PimWriter`] of a
/// [`GraphTarget`](super::GraphTarget), from
/// [`GraphTarget::open_pim_writer`](super::GraphTarget::open_pim_writer).
///
/// * Collections: the default contact folder (`/contacts`, collection id [`DEFAULT_CONTACTS`])
///   or a `contactFolders` entry by display name; the default calendar (`/calendar`) or a
///   `calendars` entry by name. A create answered 409 (another writer made it first) lists
///   again.
/// * Every item carries the fingerprint ([`FINGERPRINT_PROPERTY_ID`]); one with work after its
///   creation (a contact's photo; an event's cancelled and changed occurrences and attachments)
///   also carries [`PIM_STATE_PROPERTY_ID`] = `incomplete` until that work is done, then
///   `complete`. A write finds items by fingerprint in a per-collection index filled by one
///   list and kept current; a complete one is [`PimWriteOutcome::AlreadyPresent`], an
///   incomplete one has its work after creation done again (each step is idempotent).
/// * Events are created with a `transactionId` (the fingerprint unless the body has one), so a
///   POST sent again cannot make a second event, and without `attendees` (an appointment: no
///   invitation is ever sent).
/// * A create whose answer was lost (`Error::Transport`: the client says the outcome is
///   unknown) is looked up by fingerprint (`$filter` on the extended property) before it is
///   sent again.
/// * Requests go through the mailbox's own limiter, shared with the mail writer.
/// * Tasks go into Microsoft To Do lists (the `defaultList` or one by display name); a task
///   carries its fingerprint in a `linkedResource` of application [`TASK_LINK_APPLICATION`]
///   (`externalId`), as To Do tasks have no extended properties; a lost create is looked up by
///   listing the list again.
/// * Not yet: event attachments of 3 MB or more (they need an upload session) answer
///   [`Error::TooLarge`] before anything is written.
pub struct GraphPimWriter {
    client: Arc<GraphClient>,
    limiter: Arc<MailboxLimiter>,
    mailbox: String,
    user_path: String,
    /// Per collection id: fingerprint → item, once listed.
    index: Mutex<HashMap<String, HashMap<String, Found>>>,
    /// Held while a collection is listed for the first time.
    loading: Mutex<()>,
    /// Fingerprints whose create may have been carried out without our knowing.
    unsure: std::sync::Mutex<HashSet<String>>,
}

impl std::fmt::Debug for GraphPimWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphPimWriter")
            .field("mailbox", &self.mailbox)
            .finish_non_exhaustive()
    }
}

fn protocol(context: &str, message: impl Into<String>) -> Error {
    Error::Protocol {
        context: context.into(),
        message: message.into(),
    }
}

/// The value of extended property `id` in an item rendered with them expanded.
fn ext_value(item: &Value, id: &str) -> Option<String> {
    item["singleValueExtendedProperties"]
        .as_array()?
        .iter()
        .find(|p| p["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(id)))
        .and_then(|p| p["value"].as_str())
        .map(String::from)
}

/// The `applicationName` of the `linkedResource` that carries a task's fingerprint (in its
/// `externalId`): To Do tasks have no extended properties.
pub const TASK_LINK_APPLICATION: &str = "o365-migrate";

/// A task's fingerprint, from its expanded `linkedResources`.
fn task_fingerprint(item: &Value) -> Option<String> {
    item["linkedResources"]
        .as_array()?
        .iter()
        .find(|l| l["applicationName"].as_str() == Some(TASK_LINK_APPLICATION))
        .and_then(|l| l["externalId"].as_str())
        .map(String::from)
}

fn found_of(item: &Value) -> Option<(String, Found)> {
    let fp = ext_value(item, FINGERPRINT_PROPERTY_ID).or_else(|| task_fingerprint(item))?;
    let id = item["id"].as_str()?.to_string();
    let complete = ext_value(item, PIM_STATE_PROPERTY_ID).as_deref() != Some("incomplete");
    Some((fp, Found { id, complete }))
}

/// `$expand` of the fingerprint (and state): extended properties, or a task's linked resources.
fn expand(kind: PimKind) -> String {
    if kind == PimKind::Tasks {
        return "linkedResources".into();
    }
    q(&format!(
        "singleValueExtendedProperties($filter=id eq '{FINGERPRINT_PROPERTY_ID}' or id eq '{PIM_STATE_PROPERTY_ID}')"
    ))
}

/// Parses an RFC 3339 instant to Unix seconds.
fn instant(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// UTC RFC 3339 (`2027-01-04T09:00:00Z`) through the MIME crate's one date type.
fn rfc3339(unix: i64) -> String {
    o365_migrate_mime::InternalDate::from_unix_utc(unix)
        .map(|d| d.to_utc_iso8601())
        .unwrap_or_default()
}

/// A Graph `dateTimeTimeZone` in UTC (as `instances` answers without a time-zone preference)
/// as RFC 3339.
fn utc_of(v: &Value) -> Option<String> {
    let zone = v["timeZone"].as_str().unwrap_or("UTC");
    if !matches!(zone, "UTC" | "Etc/UTC" | "tzone://Microsoft/Utc") {
        return None;
    }
    let dt = v["dateTime"].as_str()?;
    let base = dt.split('.').next().unwrap_or(dt);
    instant(&format!("{base}Z")).map(rfc3339)
}

/// A media type Graph takes for a contact photo.
fn photo_type(media: &str) -> &'static str {
    let m = media.to_ascii_lowercase();
    if m.contains("png") {
        "image/png"
    } else if m.contains("gif") {
        "image/gif"
    } else if m.contains("bmp") {
        "image/bmp"
    } else {
        "image/jpeg"
    }
}

/// Whether an item has work after its creation.
fn has_work(body: &PimBody) -> bool {
    match body {
        PimBody::Contact { photo, .. } => photo.is_some(),
        PimBody::Event {
            occurrences,
            attachments,
            ..
        } => !occurrences.is_empty() || !attachments.is_empty(),
        _ => false,
    }
}

fn unsupported_kind() -> Error {
    Error::Refused {
        operation: "write".into(),
        context: "contacts, calendars and tasks".into(),
        code: "NotSupported".into(),
        message: "this kind of item is not written by the Graph target".into(),
    }
}

/// An item's Graph body, which must be a JSON object.
fn json_object(json: &str) -> Result<Map<String, Value>, Error> {
    match serde_json::from_str(json) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(Error::Conversion(
            "the item's Graph body is not a JSON object".into(),
        )),
    }
}

/// A task's create body: its JSON with a `linkedResource` carrying the fingerprint.
fn task_body(json: &str, fingerprint: &str) -> Result<Bytes, Error> {
    let mut obj = json_object(json)?;
    let mut links: Vec<Value> = obj
        .remove("linkedResources")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|l| l["applicationName"].as_str() != Some(TASK_LINK_APPLICATION))
        .collect();
    links.push(json!({"applicationName": TASK_LINK_APPLICATION,
        "displayName": "o365-migrate fingerprint", "externalId": fingerprint}));
    obj.insert("linkedResources".into(), Value::Array(links));
    Ok(Bytes::from(Value::Object(obj).to_string()))
}

/// The create body: the item's JSON with the fingerprint (and, with work after creation, the
/// state `incomplete`); an event also with a `transactionId` and never with attendees.
fn create_body(item: &PimWriteItem) -> Result<Bytes, Error> {
    let (json, event) = match &item.body {
        PimBody::Contact { json, .. } => (json, false),
        PimBody::Event { json, .. } => (json, true),
        PimBody::Task { json } => return task_body(json, &item.fingerprint),
    };
    let mut obj = json_object(json)?;
    let mut props: Vec<Value> = obj
        .remove("singleValueExtendedProperties")
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            p["id"].as_str().is_none_or(|i| {
                !i.eq_ignore_ascii_case(FINGERPRINT_PROPERTY_ID)
                    && !i.eq_ignore_ascii_case(PIM_STATE_PROPERTY_ID)
            })
        })
        .collect();
    props.push(json!({"id": FINGERPRINT_PROPERTY_ID, "value": item.fingerprint}));
    if has_work(&item.body) {
        props.push(json!({"id": PIM_STATE_PROPERTY_ID, "value": "incomplete"}));
    }
    obj.insert("singleValueExtendedProperties".into(), Value::Array(props));
    if event {
        // An appointment: attendees would make Exchange send invitations.
        obj.remove("attendees");
        if obj.get("transactionId").and_then(Value::as_str).is_none() {
            obj.insert("transactionId".into(), json!(item.fingerprint));
        }
    }
    Ok(Bytes::from(Value::Object(obj).to_string()))
}

impl GraphPimWriter {
    pub(super) fn new(client: Arc<GraphClient>, mailbox: &str) -> Self {
        Self {
            limiter: client.limiter(mailbox),
            client,
            mailbox: mailbox.to_string(),
            user_path: format!("/users/{}", seg(mailbox)),
            index: Mutex::new(HashMap::new()),
            loading: Mutex::new(()),
            unsure: Default::default(),
        }
    }

    fn call(&self, method: reqwest::Method, url: String, body: Body, idempotent: bool) -> Call<'_> {
        let mut c = Call::get(url, Some(&self.limiter));
        c.method = method;
        c.body = body;
        c.idempotent = idempotent;
        c
    }

    async fn get_json(&self, url: String) -> Result<Value, Error> {
        let reply = self
            .client
            .call(self.call(reqwest::Method::GET, url.clone(), Body::None, true))
            .await?;
        reply.ok("GET", &url)?.json(&url)
    }

    async fn get_all(&self, url: String) -> Result<Vec<Value>, Error> {
        self.client.get_all(url, Some(&self.limiter)).await
    }

    /// PATCH / PUT / DELETE, safe to send again; 404 answered `None`.
    async fn idempotent(
        &self,
        method: reqwest::Method,
        url: String,
        body: Body,
    ) -> Result<Option<Reply>, Error> {
        let m = method.to_string();
        let reply = self
            .client
            .call(self.call(method, url.clone(), body, true))
            .await?;
        if reply.status == 404 {
            return Ok(None);
        }
        reply.ok(&m, &url).map(Some)
    }

    /// Where a collection's items are listed and created.
    fn items_path(&self, c: &PimCollection) -> Result<String, Error> {
        match c.kind {
            PimKind::Contacts if c.id == DEFAULT_CONTACTS => {
                Ok(format!("{}/contacts", self.user_path))
            }
            PimKind::Contacts => Ok(format!(
                "{}/contactFolders/{}/contacts",
                self.user_path,
                seg(&c.id)
            )),
            PimKind::Calendar => Ok(format!(
                "{}/calendars/{}/events",
                self.user_path,
                seg(&c.id)
            )),
            PimKind::Tasks => Ok(format!(
                "{}/todo/lists/{}/tasks",
                self.user_path,
                seg(&c.id)
            )),
        }
    }

    /// An item's address in its collection (a task's goes through its list).
    fn path_in(&self, c: &PimCollection, id: &str) -> Result<String, Error> {
        match c.kind {
            PimKind::Tasks => Ok(format!("{}/{}", self.items_path(c)?, seg(id))),
            kind => self.item_path(kind, id),
        }
    }

    /// One item's address.
    fn item_path(&self, kind: PimKind, id: &str) -> Result<String, Error> {
        match kind {
            PimKind::Contacts => Ok(format!("{}/contacts/{}", self.user_path, seg(id))),
            PimKind::Calendar => Ok(format!("{}/events/{}", self.user_path, seg(id))),
            _ => Err(unsupported_kind()),
        }
    }

    async fn find(&self, spec: &PimCollectionSpec) -> Result<Option<PimCollection>, Error> {
        let collection = |id: &str, name: &str| PimCollection {
            kind: spec.kind,
            id: id.to_string(),
            name: name.to_string(),
            created: false,
        };
        let (list_url, field) = match (spec.kind, &spec.name) {
            (PimKind::Contacts, None) => {
                return Ok(Some(collection(DEFAULT_CONTACTS, "Contacts")));
            }
            (PimKind::Calendar, None) => {
                let v = self
                    .get_json(format!("{}/calendar?$select=id,name", self.user_path))
                    .await?;
                let id = v["id"]
                    .as_str()
                    .ok_or_else(|| protocol("GET calendar", "no id"))?;
                return Ok(Some(collection(
                    id,
                    v["name"].as_str().unwrap_or("Calendar"),
                )));
            }
            (PimKind::Contacts, Some(_)) => (
                format!("{}/contactFolders?$top=100", self.user_path),
                "displayName",
            ),
            (PimKind::Calendar, Some(_)) => {
                (format!("{}/calendars?$top=100", self.user_path), "name")
            }
            (PimKind::Tasks, _) => (format!("{}/todo/lists", self.user_path), "displayName"),
        };
        let wanted = spec.name.as_deref().map(str::to_lowercase);
        let all = self.get_all(list_url).await?;
        Ok(all.iter().find_map(|f| {
            let name = f[field].as_str()?;
            let id = f["id"].as_str()?;
            let hit = match &wanted {
                Some(w) => name.to_lowercase() == *w,
                // The default To Do list.
                None => f["wellknownListName"].as_str() == Some("defaultList"),
            };
            hit.then(|| collection(id, name))
        }))
    }

    async fn ensure(&self, spec: &PimCollectionSpec) -> Result<PimCollection, Error> {
        if let Some(c) = self.find(spec).await? {
            return Ok(c);
        }
        let name = spec.name.clone().unwrap_or_default();
        let (url, body) = match spec.kind {
            PimKind::Contacts => (
                format!("{}/contactFolders", self.user_path),
                json!({"displayName": name}),
            ),
            PimKind::Calendar => (
                format!("{}/calendars", self.user_path),
                json!({"name": name}),
            ),
            PimKind::Tasks => (
                format!("{}/todo/lists", self.user_path),
                json!({"displayName": name}),
            ),
        };
        let sent = self
            .client
            .call(Call::post_json(
                url.clone(),
                Some(&self.limiter),
                Bytes::from(body.to_string()),
            ))
            .await;
        match sent {
            Ok(reply) if reply.status == 409 => {}
            Ok(reply) => {
                let v = reply.ok("POST", &url)?.json(&url)?;
                if let Some(id) = v["id"].as_str() {
                    return Ok(PimCollection {
                        kind: spec.kind,
                        id: id.to_string(),
                        name,
                        created: true,
                    });
                }
            }
            // The answer was lost: it may exist now; look.
            Err(Error::Transport(_)) => {}
            Err(e) => return Err(e),
        }
        self.find(spec).await?.ok_or_else(|| Error::Folder {
            mailbox: self.mailbox.clone(),
            path: name,
            reason: "could not be created nor found".into(),
        })
    }

    /// Lists a collection with each item's fingerprint and state, refreshing its index.
    async fn load(&self, c: &PimCollection) -> Result<Vec<(Option<String>, Found)>, Error> {
        let url = format!(
            "{}?$select=id&$expand={}&$top=100",
            self.items_path(c)?,
            expand(c.kind)
        );
        let items = self.get_all(url).await?;
        let out: Vec<(Option<String>, Found)> = items
            .iter()
            .filter_map(|i| match found_of(i) {
                Some((fp, f)) => Some((Some(fp), f)),
                None => Some((
                    None,
                    Found {
                        id: i["id"].as_str()?.to_string(),
                        complete: true,
                    },
                )),
            })
            .collect();
        // Merged into what the index knows: an item this writer created while the list was on
        // its way may be missing from it, and must not be forgotten (it would be written twice).
        let mut index = self.index.lock().await;
        let map = index.entry(c.id.clone()).or_default();
        for (fp, f) in &out {
            if let Some(fp) = fp {
                map.insert(fp.clone(), f.clone());
            }
        }
        Ok(out)
    }

    /// The item with `fingerprint` in the collection, from the index (listed once).
    async fn lookup_indexed(
        &self,
        c: &PimCollection,
        fingerprint: &str,
    ) -> Result<Option<Found>, Error> {
        if let Some(map) = self.index.lock().await.get(&c.id) {
            return Ok(map.get(fingerprint).cloned());
        }
        // One first list per writer at a time; whoever waited finds the index filled.
        let _loading = self.loading.lock().await;
        if let Some(map) = self.index.lock().await.get(&c.id) {
            return Ok(map.get(fingerprint).cloned());
        }
        self.load(c).await?;
        let index = self.index.lock().await;
        Ok(index.get(&c.id).and_then(|m| m.get(fingerprint).cloned()))
    }

    /// Asks the service for the item with `fingerprint` (after an unknown outcome).
    async fn lookup_remote(
        &self,
        c: &PimCollection,
        fingerprint: &str,
    ) -> Result<Option<Found>, Error> {
        if c.kind == PimKind::Tasks {
            // Linked resources cannot be filtered on: the list is read again.
            let all = self.load(c).await?;
            return Ok(all
                .into_iter()
                .find(|(fp, _)| fp.as_deref() == Some(fingerprint))
                .map(|(_, f)| f));
        }
        let filter = format!(
            "singleValueExtendedProperties/any(ep:ep/id eq '{FINGERPRINT_PROPERTY_ID}' and ep/value eq '{}')",
            fingerprint.replace('\'', "''")
        );
        let url = format!(
            "{}?$select=id&$filter={}&$expand={}&$top=1",
            self.items_path(c)?,
            q(&filter),
            expand(c.kind)
        );
        let v = self.get_json(url).await?;
        let found = v["value"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(found_of)
            .map(|(_, f)| f);
        Ok(found)
    }

    async fn remember(&self, c: &PimCollection, fingerprint: &str, found: Option<Found>) {
        let mut index = self.index.lock().await;
        if let Some(map) = index.get_mut(&c.id) {
            match found {
                Some(f) => {
                    map.insert(fingerprint.to_string(), f);
                }
                None => {
                    map.remove(fingerprint);
                }
            }
        }
    }

    fn set_unsure(&self, fingerprint: &str, unsure: bool) {
        let mut set = self.unsure.lock().unwrap_or_else(|e| e.into_inner());
        if unsure {
            set.insert(fingerprint.to_string());
        } else {
            set.remove(fingerprint);
        }
    }

    fn is_unsure(&self, fingerprint: &str) -> bool {
        self.unsure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(fingerprint)
    }

    /// POSTs the item; a lost answer is looked up by fingerprint before it is sent again.
    async fn create(&self, c: &PimCollection, item: &PimWriteItem) -> Result<String, Error> {
        let body = create_body(item)?;
        let url = self.items_path(c)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self
                .client
                .call(Call::post_json(
                    url.clone(),
                    Some(&self.limiter),
                    body.clone(),
                ))
                .await;
            match sent {
                Ok(reply) => {
                    self.set_unsure(&item.fingerprint, false);
                    let v = reply.ok("POST", &url)?.json(&url)?;
                    return v["id"].as_str().map(String::from).ok_or_else(|| {
                        protocol(&format!("POST {url}"), "the answer carries no id")
                    });
                }
                Err(Error::Transport(why)) => {
                    self.set_unsure(&item.fingerprint, true);
                    if let Some(f) = self.lookup_remote(c, &item.fingerprint).await? {
                        self.set_unsure(&item.fingerprint, false);
                        return Ok(f.id);
                    }
                    // Not there (yet): sent again; if this was the last attempt the next
                    // write looks again first.
                    if attempt >= CREATE_ATTEMPTS {
                        return Err(Error::Transport(why));
                    }
                }
                Err(e) => {
                    if matches!(e, Error::RetriesExhausted { .. }) {
                        self.set_unsure(&item.fingerprint, true);
                    }
                    return Err(e);
                }
            }
        }
    }

    /// The work after creation; each step is safe to do again.
    async fn after_creation(&self, id: &str, item: &PimWriteItem) -> Result<(), Error> {
        match &item.body {
            PimBody::Contact {
                photo: Some((media, bytes)),
                ..
            } => {
                let url = format!("{}/photo/$value", self.item_path(PimKind::Contacts, id)?);
                self.idempotent(
                    reqwest::Method::PUT,
                    url.clone(),
                    Body::Raw(bytes.clone(), photo_type(media)),
                )
                .await?
                .ok_or_else(|| protocol(&format!("PUT {url}"), "the contact is gone"))?;
            }
            PimBody::Event {
                occurrences,
                attachments,
                ..
            } => {
                if !occurrences.is_empty() {
                    self.change_occurrences(id, occurrences).await?;
                }
                if !attachments.is_empty() {
                    self.attach(id, attachments).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    async fn change_occurrences(
        &self,
        id: &str,
        changes: &[PimOccurrenceChange],
    ) -> Result<(), Error> {
        let mut starts: Vec<i64> = Vec::new();
        for ch in changes {
            let t = instant(&ch.original_start_utc).ok_or_else(|| {
                Error::Conversion(format!(
                    "occurrence start '{}' is not an RFC 3339 instant",
                    ch.original_start_utc
                ))
            })?;
            starts.push(t);
            // A moved occurrence (already patched by an earlier attempt) is listed where it
            // is now: widen the window to its new date.
            if let Some(date) = ch
                .patch_json
                .as_deref()
                .and_then(|p| serde_json::from_str::<Value>(p).ok())
                .and_then(|v| {
                    v["start"]["dateTime"]
                        .as_str()
                        .map(|s| s.chars().take(10).collect::<String>())
                })
                .and_then(|d| instant(&format!("{d}T00:00:00Z")))
            {
                starts.push(date);
            }
        }
        let day = 86_400;
        let from = starts.iter().min().copied().unwrap_or(0) - 2 * day;
        let to = starts.iter().max().copied().unwrap_or(0) + 3 * day;
        let url = format!(
            "{}/instances?startDateTime={}&endDateTime={}&$select=id,originalStart&$top=100",
            self.item_path(PimKind::Calendar, id)?,
            q(&rfc3339(from)),
            q(&rfc3339(to))
        );
        let instances = self.get_all(url).await?;
        for ch in changes {
            let want = instant(&ch.original_start_utc);
            let found = instances
                .iter()
                .find(|i| i["originalStart"].as_str().and_then(instant) == want && want.is_some());
            let inst_id = found.and_then(|i| i["id"].as_str());
            match (&ch.patch_json, inst_id) {
                // Already cancelled (an earlier attempt), or not an occurrence at all.
                (None, None) => {}
                (None, Some(iid)) => {
                    self.idempotent(
                        reqwest::Method::DELETE,
                        self.item_path(PimKind::Calendar, iid)?,
                        Body::None,
                    )
                    .await?;
                }
                (Some(patch), Some(iid)) => {
                    self.idempotent(
                        reqwest::Method::PATCH,
                        self.item_path(PimKind::Calendar, iid)?,
                        Body::Json(Bytes::from(patch.clone())),
                    )
                    .await?;
                }
                (Some(_), None) => {
                    return Err(protocol(
                        "instances",
                        format!(
                            "the series has no occurrence starting {} to change",
                            ch.original_start_utc
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Adds the attachments the event does not have yet (by name).
    async fn attach(&self, id: &str, attachments: &[PimAttachment]) -> Result<(), Error> {
        let base = format!("{}/attachments", self.item_path(PimKind::Calendar, id)?);
        let names = |list: Vec<Value>| -> Vec<String> {
            list.iter()
                .filter_map(|a| a["name"].as_str().map(String::from))
                .collect()
        };
        let mut have = names(self.get_all(format!("{base}?$select=name")).await?);
        for a in attachments {
            if have.contains(&a.name) {
                continue;
            }
            let body = json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": a.name,
                "contentType": a.content_type,
                "contentBytes": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &a.bytes)});
            let sent = self
                .client
                .call(Call::post_json(
                    base.clone(),
                    Some(&self.limiter),
                    Bytes::from(body.to_string()),
                ))
                .await;
            match sent {
                Ok(reply) => {
                    reply.ok("POST", &base)?;
                }
                // Lost answer: the next pass (or the next write) sees whether it arrived.
                Err(Error::Transport(_)) => {
                    have = names(self.get_all(format!("{base}?$select=name")).await?);
                    if !have.contains(&a.name) {
                        return Err(Error::Transport(format!(
                            "attachment {} of event: the answer was lost and it is not there",
                            a.name
                        )));
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
            have.push(a.name.clone());
        }
        Ok(())
    }

    async fn mark_complete(&self, kind: PimKind, id: &str) -> Result<(), Error> {
        let url = self.item_path(kind, id)?;
        let body = json!({"singleValueExtendedProperties": [{"id": PIM_STATE_PROPERTY_ID, "value": "complete"}]});
        self.idempotent(
            reqwest::Method::PATCH,
            url.clone(),
            Body::Json(Bytes::from(body.to_string())),
        )
        .await?
        .ok_or_else(|| protocol(&format!("PATCH {url}"), "the item is gone"))?;
        Ok(())
    }

    /// Finishes an item's work after creation and marks it complete.
    async fn finish(&self, c: &PimCollection, id: &str, item: &PimWriteItem) -> Result<(), Error> {
        self.after_creation(id, item).await?;
        self.mark_complete(c.kind, id).await?;
        self.remember(
            c,
            &item.fingerprint,
            Some(Found {
                id: id.to_string(),
                complete: true,
            }),
        )
        .await;
        Ok(())
    }

    async fn write_one(
        &self,
        c: &PimCollection,
        item: &PimWriteItem,
    ) -> Result<PimWriteOutcome, Error> {
        if item.kind() != c.kind {
            return Err(Error::Conversion(format!(
                "a {} item cannot go into a {} collection",
                item.kind(),
                c.kind
            )));
        }
        if let PimBody::Event { attachments, .. } = &item.body
            && let Some(big) = attachments
                .iter()
                .find(|a| a.bytes.len() >= INLINE_ATTACHMENT_LIMIT)
        {
            return Err(Error::TooLarge {
                size: big.bytes.len() as u64,
                limit: INLINE_ATTACHMENT_LIMIT as u64 - 1,
            });
        }
        let mut found = self.lookup_indexed(c, &item.fingerprint).await?;
        if found.is_none() && self.is_unsure(&item.fingerprint) {
            found = self.lookup_remote(c, &item.fingerprint).await?;
            self.set_unsure(&item.fingerprint, false);
            if let Some(f) = &found {
                self.remember(c, &item.fingerprint, Some(f.clone())).await;
            }
        }
        if let Some(f) = found {
            if f.complete {
                return Ok(PimWriteOutcome::AlreadyPresent { id: f.id });
            }
            self.finish(c, &f.id, item).await?;
            return Ok(PimWriteOutcome::Created { id: f.id });
        }
        let id = self.create(c, item).await?;
        let work = has_work(&item.body);
        self.remember(
            c,
            &item.fingerprint,
            Some(Found {
                id: id.clone(),
                complete: !work,
            }),
        )
        .await;
        if work {
            self.finish(c, &id, item).await?;
        }
        Ok(PimWriteOutcome::Created { id })
    }

    async fn read_one(
        &self,
        c: &PimCollection,
        id: &str,
        window: (&str, &str),
    ) -> Result<PimReadBack, Error> {
        let path = self.path_in(c, id)?;
        let mut v = self
            .get_json(format!("{path}?$expand={}", expand(c.kind)))
            .await?;
        let fingerprint = found_of(&v).map(|(fp, _)| fp);
        let mut instances = Vec::new();
        let series = v.get("recurrence").is_some_and(|r| !r.is_null());
        if c.kind == PimKind::Calendar && series {
            let url = format!(
                "{path}/instances?startDateTime={}&endDateTime={}&$top=100",
                q(window.0),
                q(window.1)
            );
            for i in self.get_all(url).await? {
                let (Some(start), Some(end)) = (utc_of(&i["start"]), utc_of(&i["end"])) else {
                    return Err(protocol(
                        "instances",
                        "an instance without a UTC start or end",
                    ));
                };
                instances.push(PimInstance {
                    start_utc: start,
                    end_utc: end,
                    original_start_utc: i["originalStart"].as_str().and_then(instant).map(rfc3339),
                    json: i.to_string(),
                });
            }
            instances.sort_by(|a, b| a.start_utc.cmp(&b.start_utc));
        }
        let photo_len = if c.kind == PimKind::Contacts {
            self.idempotent(
                reqwest::Method::GET,
                format!("{path}/photo/$value"),
                Body::None,
            )
            .await?
            .map(|r| r.body.len() as u64)
        } else {
            None
        };
        if let Some(o) = v.as_object_mut() {
            o.remove("singleValueExtendedProperties");
            o.remove("linkedResources");
            o.retain(|k, _| !k.starts_with("@odata"));
        }
        Ok(PimReadBack {
            id: id.to_string(),
            fingerprint,
            json: v.to_string(),
            instances,
            photo_len,
        })
    }
}

impl PimWriter for GraphPimWriter {
    fn mailbox(&self) -> &str {
        &self.mailbox
    }

    fn ensure_collection<'a>(
        &'a self,
        spec: &'a PimCollectionSpec,
    ) -> BoxFuture<'a, Result<PimCollection, Error>> {
        Box::pin(self.ensure(spec))
    }

    fn find_collection<'a>(
        &'a self,
        spec: &'a PimCollectionSpec,
    ) -> BoxFuture<'a, Result<Option<PimCollection>, Error>> {
        Box::pin(self.find(spec))
    }

    fn list<'a>(
        &'a self,
        collection: &'a PimCollection,
    ) -> BoxFuture<'a, Result<Vec<PimStored>, Error>> {
        Box::pin(async move {
            Ok(self
                .load(collection)
                .await?
                .into_iter()
                .map(|(fingerprint, f)| PimStored {
                    id: f.id,
                    fingerprint,
                })
                .collect())
        })
    }

    fn write<'a>(
        &'a self,
        collection: &'a PimCollection,
        item: &'a PimWriteItem,
    ) -> BoxFuture<'a, Result<PimWriteOutcome, Error>> {
        Box::pin(self.write_one(collection, item))
    }

    fn delete<'a>(
        &'a self,
        collection: &'a PimCollection,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let url = self.path_in(collection, id)?;
            self.idempotent(reqwest::Method::DELETE, url, Body::None)
                .await?;
            let mut index = self.index.lock().await;
            if let Some(map) = index.get_mut(&collection.id) {
                map.retain(|_, f| f.id != id);
            }
            Ok(())
        })
    }

    fn read<'a>(
        &'a self,
        collection: &'a PimCollection,
        id: &'a str,
        window: (&'a str, &'a str),
    ) -> BoxFuture<'a, Result<PimReadBack, Error>> {
        Box::pin(self.read_one(collection, id, window))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_create_body_carries_fingerprint_state_and_transaction_but_no_attendees() {
        let item = PimWriteItem {
            fingerprint: "pim1:abc".into(),
            body: PimBody::Event {
                json: r#"{"subject":"S","attendees":[{"emailAddress":{"address":"x@y"}}],
                    "singleValueExtendedProperties":[{"id":"String {6d3b1f52-8f0e-4d4a-9c8e-1f0a5e7c2b90} Name o365-migrate-pim-fingerprint","value":"old"}]}"#
                    .into(),
                occurrences: vec![PimOccurrenceChange {
                    original_start_utc: "2027-01-01T00:00:00Z".into(),
                    patch_json: None,
                }],
                attachments: Vec::new(),
            },
        };
        let v: Value = serde_json::from_slice(&create_body(&item).unwrap()).unwrap();
        assert!(v.get("attendees").is_none());
        assert_eq!(v["transactionId"], "pim1:abc");
        assert_eq!(
            ext_value(&v, FINGERPRINT_PROPERTY_ID).as_deref(),
            Some("pim1:abc")
        );
        assert_eq!(
            ext_value(&v, PIM_STATE_PROPERTY_ID).as_deref(),
            Some("incomplete")
        );
        assert_eq!(
            v["singleValueExtendedProperties"].as_array().unwrap().len(),
            2
        );
    }

    #[test]
    fn utc_instants_are_read_from_graph_date_times() {
        assert_eq!(
            utc_of(&json!({"dateTime": "2027-03-29T07:00:00.0000000", "timeZone": "UTC"}))
                .as_deref(),
            Some("2027-03-29T07:00:00Z")
        );
        assert_eq!(
            utc_of(
                &json!({"dateTime": "2027-03-29T07:00:00", "timeZone": "Pacific Standard Time"})
            ),
            None
        );
    }
}
