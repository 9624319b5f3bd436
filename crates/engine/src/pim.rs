//! Contacts, calendars and tasks (issue 18): read from the `[dav]` source, converted by
//! `o365-migrate-pim`, written through the target's [`PimWriter`], each outcome recorded in
//! the state store (`pim_collections`, `pim_items`) after the target confirmed it.
//!
//! Per mailbox and collection: the collection is mapped to a target collection (`[[dav.map]]`,
//! else the first of each kind to the default one and every other to one of its own name);
//! what changed since the last pass is read (a stored RFC 6578 sync token, else a listing
//! compared by ETag; local files are read whole and compared by fingerprint); each item is
//! converted and written unless the state store has it migrated with the same fingerprint. A
//! source item that changed is written anew first and its old copy deleted after (never none,
//! for a moment two). The sync token is stored only after a pass that went through every item,
//! so an interrupted pass is read again in full.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use o365_migrate_dav as dav;
use o365_migrate_pim as pimlib;
use o365_migrate_target::pim::{
    PimBody, PimCollection, PimCollectionSpec, PimKind, PimOccurrenceChange, PimWriteItem,
    PimWriter,
};
use o365_migrate_target::{ErrorScope, pim::PimAttachment};
use regex::Regex;
use tokio::sync::Mutex;

use crate::config::Dav;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::matching::MailboxPair;
use crate::report::Event;
use crate::state::{
    BatchWriter, EventRecord, ItemStatus, MailboxId, PimCollectionId, PimCollectionRow, PimItemRow,
    RunId,
};

mod plan;
mod source;
mod verify;
pub use plan::CollectionPlan;
pub(crate) use source::{PimSource, SourceCollection, SourceResource};
pub use verify::{CollectionVerify, PimDiff};

#[cfg(test)]
mod tests;

/// Items of one mailbox written at once (Graph allows 4 requests in flight per mailbox; the
/// writer's limiter holds the rest).
const ITEMS_AT_ONCE: usize = 4;

/// A source item converted for the target.
#[derive(Debug, Clone)]
pub(crate) enum Converted {
    /// A vCard.
    Contact(pimlib::Contact),
    /// A VEVENT series.
    Event(pimlib::Event),
    /// A VTODO.
    Task(pimlib::Task),
}

impl Converted {
    pub(crate) fn fingerprint(&self) -> &str {
        match self {
            Converted::Contact(c) => &c.fingerprint,
            Converted::Event(e) => &e.fingerprint,
            Converted::Task(t) => &t.fingerprint,
        }
    }

    pub(crate) fn kind(&self) -> PimKind {
        match self {
            Converted::Contact(_) => PimKind::Contacts,
            Converted::Event(_) => PimKind::Calendar,
            Converted::Task(_) => PimKind::Tasks,
        }
    }

    fn not_carried(&self) -> Vec<String> {
        match self {
            Converted::Contact(c) => c.not_carried.clone(),
            Converted::Event(e) => {
                let mut v = e.not_carried.clone();
                for o in &e.overrides {
                    v.extend(o.not_carried.iter().cloned());
                }
                v
            }
            Converted::Task(t) => t.not_carried.clone(),
        }
    }

    fn json(&self) -> String {
        match self {
            Converted::Contact(c) => c.graph_json(),
            Converted::Event(e) => e.graph_json(),
            Converted::Task(t) => t.graph_json(),
        }
    }

    /// A name for people: the contact's name, the event's subject, the task's title.
    pub(crate) fn summary(&self) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.json()).unwrap_or_default();
        let s = |k: &str| v[k].as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        match self {
            Converted::Contact(_) => s("displayName")
                .or_else(|| {
                    let n = [s("givenName"), s("surname")]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" ");
                    (!n.is_empty()).then_some(n)
                })
                .or_else(|| s("companyName"))
                .unwrap_or_default(),
            Converted::Event(_) => s("subject").unwrap_or_default(),
            Converted::Task(_) => s("title").unwrap_or_default(),
        }
    }

    /// What the writer takes.
    pub(crate) fn write_item(&self) -> std::result::Result<PimWriteItem, String> {
        let body = match self {
            Converted::Contact(c) => PimBody::Contact {
                json: c.graph_json(),
                photo: c
                    .photo
                    .as_ref()
                    .map(|p| (p.content_type.clone(), Bytes::from(p.bytes.clone()))),
            },
            Converted::Event(e) => {
                let utc = |o: &pimlib::Occurrence| {
                    o.utc.clone().ok_or_else(|| {
                        format!(
                            "the occurrence of {} in zone {} has no known UTC instant, so it \
                             cannot be found after the series is created",
                            o.local, o.zone
                        )
                    })
                };
                let mut occurrences = Vec::new();
                for o in &e.cancelled_occurrences {
                    occurrences.push(PimOccurrenceChange {
                        original_start_utc: utc(o)?,
                        patch_json: None,
                    });
                }
                for o in &e.overrides {
                    occurrences.push(PimOccurrenceChange {
                        original_start_utc: utc(&o.original_start)?,
                        patch_json: Some(o.patch_json()),
                    });
                }
                PimBody::Event {
                    json: e.graph_json(),
                    occurrences,
                    attachments: e
                        .attachments
                        .iter()
                        .map(|a| PimAttachment {
                            name: a.name.clone(),
                            content_type: a.content_type.clone(),
                            bytes: Bytes::from(a.bytes.clone()),
                        })
                        .collect(),
                }
            }
            Converted::Task(t) => PimBody::Task {
                json: t.graph_json(),
            },
        };
        Ok(PimWriteItem {
            fingerprint: self.fingerprint().to_owned(),
            body,
        })
    }
}

/// One item read from a resource: converted, or why not.
#[derive(Debug, Clone)]
pub(crate) struct ReadItem {
    /// The item's key in its collection.
    pub(crate) key: String,
    /// The resource it came from.
    pub(crate) href: String,
    /// The resource's ETag.
    pub(crate) etag: Option<String>,
    /// The item, or the reason it cannot be migrated (naming the resource and line).
    pub(crate) item: std::result::Result<Converted, String>,
}

/// Converts one resource into items. Keys: the href when the resource holds one item, else
/// `href#UID` (`href#line N` without a UID).
pub(crate) fn read_resource(
    res: &SourceResource,
    kind: PimKind,
    options: &pimlib::CalendarOptions,
) -> Vec<ReadItem> {
    let label = res.href.as_str();
    let parsed: Vec<(
        Option<String>,
        usize,
        std::result::Result<Converted, String>,
    )> = match kind {
        PimKind::Contacts => match pimlib::parse_contacts(label, &res.data) {
            Ok(items) => items
                .into_iter()
                .map(|r| match r {
                    Ok(c) => (c.uid.clone(), c.line, Ok(Converted::Contact(c))),
                    Err(e) => (None, e.line().unwrap_or(0), Err(e.to_string())),
                })
                .collect(),
            Err(e) => vec![(None, 0, Err(e.to_string()))],
        },
        _ => match pimlib::parse_calendar_with(label, &res.data, options) {
            Ok(items) => items
                .into_iter()
                .map(|r| match r {
                    Ok(pimlib::CalendarItem::Event(e)) => {
                        (e.uid.clone(), e.line, Ok(Converted::Event(e)))
                    }
                    Ok(pimlib::CalendarItem::Task(t)) => {
                        (t.uid.clone(), t.line, Ok(Converted::Task(t)))
                    }
                    Ok(_) => (
                        None,
                        0,
                        Err(format!("{label}: an item of a kind not converted")),
                    ),
                    Err(e) => (None, e.line().unwrap_or(0), Err(e.to_string())),
                })
                .collect(),
            Err(e) => vec![(None, 0, Err(e.to_string()))],
        },
    };
    let single = parsed.len() == 1;
    let mut seen = HashSet::new();
    parsed
        .into_iter()
        .map(|(uid, line, item)| {
            let mut key = if single {
                res.href.clone()
            } else {
                match &uid {
                    Some(u) => format!("{}#{u}", res.href),
                    None => format!("{}#line {line}", res.href),
                }
            };
            if !seen.insert(key.clone()) {
                key = format!("{key}#line {line}");
                seen.insert(key.clone());
            }
            ReadItem {
                key,
                href: res.href.clone(),
                etag: res.etag.clone(),
                item,
            }
        })
        .collect()
}

/// Where a source collection goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Into the mailbox's default collection of its kind (`None`) or one of this name.
    Into(Option<String>),
    /// Not migrated, with the reason.
    Skip(String),
}

/// The `[dav]` collection filters and `[[dav.map]]` rules, compiled.
pub(crate) struct Mapper {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    rules: Vec<(Regex, Option<String>, bool)>,
    contacts: bool,
    calendars: bool,
}

fn glob(g: &str) -> Result<Regex> {
    Regex::new(&crate::folders::glob_to_regex(g)).map_err(|e| Error::Pipeline {
        context: format!("[dav] pattern {g:?}"),
        message: e.to_string(),
        hint: Some("use `*` and `?` wildcards over collection names".into()),
    })
}

impl Mapper {
    pub(crate) fn new(dav: &Dav) -> Result<Mapper> {
        Ok(Mapper {
            include: dav.include.iter().map(|g| glob(g)).collect::<Result<_>>()?,
            exclude: dav.exclude.iter().map(|g| glob(g)).collect::<Result<_>>()?,
            rules: dav
                .map
                .iter()
                .map(|r| Ok((glob(&r.source)?, r.target.clone(), r.skip)))
                .collect::<Result<_>>()?,
            contacts: dav.contacts,
            calendars: dav.calendars || dav.tasks,
        })
    }

    /// Where each collection goes, in order.
    pub(crate) fn place(&self, collections: &[SourceCollection]) -> Vec<Placement> {
        let mut first_taken: HashSet<PimKind> = HashSet::new();
        collections
            .iter()
            .map(|c| {
                let name = c.display_name.as_str();
                let on = match c.kind {
                    PimKind::Contacts => self.contacts,
                    _ => self.calendars,
                };
                if !on {
                    return Placement::Skip(format!(
                        "[dav] {} = false",
                        if c.kind == PimKind::Contacts {
                            "contacts"
                        } else {
                            "calendars"
                        }
                    ));
                }
                if !self.include.is_empty() && !self.include.iter().any(|r| r.is_match(name)) {
                    return Placement::Skip("not matched by [dav] include".into());
                }
                if self.exclude.iter().any(|r| r.is_match(name)) {
                    return Placement::Skip("matched by [dav] exclude".into());
                }
                if let Some((_, target, skip)) =
                    self.rules.iter().find(|(r, _, _)| r.is_match(name))
                {
                    if *skip {
                        return Placement::Skip("skipped by a [[dav.map]] rule".into());
                    }
                    return match target.as_deref() {
                        None | Some(crate::config::DAV_DEFAULT_TARGET) => {
                            first_taken.insert(c.kind);
                            Placement::Into(None)
                        }
                        Some(t) => Placement::Into(Some(t.to_owned())),
                    };
                }
                if first_taken.insert(c.kind) {
                    Placement::Into(None)
                } else {
                    Placement::Into(Some(name.to_owned()))
                }
            })
            .collect()
    }
}

/// Whether an event passes `events_since` (ends, or a series may end, on or after the day).
fn event_since(e: &pimlib::Event, since: crate::config::CivilDate) -> bool {
    let v: serde_json::Value = serde_json::from_str(&e.graph_json()).unwrap_or_default();
    let day = format!("{:04}-{:02}-{:02}", since.year, since.month, since.day);
    let range = &v["recurrence"]["range"];
    if !range.is_null() {
        return match range["type"].as_str() {
            Some("endDate") => range["endDate"].as_str().is_none_or(|d| d >= day.as_str()),
            _ => true,
        };
    }
    // The local end date; a day of slack for the zone.
    v["end"]["dateTime"]
        .as_str()
        .and_then(|d| d.get(..10))
        .is_none_or(|d| d >= day.as_str())
}

/// The target collections of one mailbox, found or created once.
struct Targets<'a> {
    writer: &'a dyn PimWriter,
    found: Mutex<HashMap<PimCollectionSpec, PimCollection>>,
}

impl Targets<'_> {
    async fn get(
        &self,
        spec: PimCollectionSpec,
    ) -> std::result::Result<PimCollection, o365_migrate_target::Error> {
        let mut found = self.found.lock().await;
        if let Some(c) = found.get(&spec) {
            return Ok(c.clone());
        }
        let c = self.writer.ensure_collection(&spec).await?;
        found.insert(spec, c.clone());
        Ok(c)
    }
}

/// What one item's pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Done {
    Unchanged,
    Migrated,
    Skipped,
    Failed,
}

impl Engine {
    /// The `[dav]` source for one mailbox (`None` without `[dav]`).
    pub(crate) fn pim_source(&self, login: &str) -> Result<Option<PimSource>> {
        let Some(d) = &self.job.dav else {
            return Ok(None);
        };
        if let Some(files) = &d.files {
            let dir = self
                .job
                .resolve_path(std::path::Path::new(&files.replace("{login}", login)));
            return Ok(Some(PimSource::Files { dir }));
        }
        let l = self.login_for(login)?;
        if l.authzid.is_some() {
            return Err(Error::Pipeline {
                context: format!("contacts and calendars of {login}"),
                message: "an admin (master) login cannot sign in to a DAV server for a user".into(),
                hint: Some(
                    "use per-user logins in the credentials file, or `files` in [dav]".into(),
                ),
            });
        }
        let mut options = dav::DavClientOptions {
            danger_accept_invalid_certs: d.accept_invalid_certs,
            ..dav::DavClientOptions::default()
        };
        if let Some(ca) = &d.ca_file {
            let path = self.job.resolve_path(ca);
            options.extra_ca_pem = Some(std::fs::read(&path).map_err(|source| Error::Io {
                context: format!("[dav] ca_file {}", path.display()),
                source,
                hint: Some("check the path of the CA certificate (PEM)".into()),
            })?);
        }
        let client = dav::DavClient::new(
            dav::Credentials::basic(l.authcid.clone(), dav::Secret::from(l.secret.expose())),
            options,
        )
        .map_err(|source| Error::Dav {
            context: format!("contacts and calendars of {login}"),
            source: Box::new(source),
        })?;
        let start = d
            .url
            .clone()
            .unwrap_or_else(|| format!("https://{}/", self.job.source.host));
        Ok(Some(PimSource::Dav { client, start }))
    }

    fn calendar_options(&self) -> pimlib::CalendarOptions {
        match self
            .job
            .dav
            .as_ref()
            .and_then(|d| d.floating_zone.as_deref())
        {
            Some(z) => pimlib::CalendarOptions::with_floating_zone(z),
            None => pimlib::CalendarOptions::default(),
        }
    }

    /// Migrates one mailbox's contacts, calendars and tasks (nothing without `[dav]`).
    pub(crate) async fn run_pim(
        &self,
        run: RunId,
        pair: &MailboxPair,
        mailbox: MailboxId,
        batch: &Arc<BatchWriter>,
        tally: &crate::run::Tally,
    ) -> Result<()> {
        let Some(source) = self.pim_source(&pair.source)? else {
            return Ok(());
        };
        let Some(d) = &self.job.dav else {
            return Ok(());
        };
        let collections = source.collections().await?;
        let placements = Mapper::new(d)?.place(&collections);
        let writer =
            self.target.open_pim(&pair.target).await.map_err(|e| {
                Error::target(format!("contacts and calendars of {}", pair.target), e)
            })?;
        let stored = self.store.pim_collections(mailbox).await?;
        let targets = writer.as_deref().map(|w| Targets {
            writer: w,
            found: Mutex::new(HashMap::new()),
        });
        for (c, placement) in collections.iter().zip(placements) {
            if self.stop.is_stopped() {
                break;
            }
            let target_name = match placement {
                Placement::Skip(reason) => {
                    self.reporter.report(&Event::FolderSkipped {
                        mailbox: pair.source.clone(),
                        folder: format!("{} {}", c.kind, c.display_name),
                        reason: reason.clone(),
                    });
                    batch
                        .event(EventRecord {
                            mailbox: Some(mailbox),
                            kind: "collection_skipped".into(),
                            detail: format!("{} {}: {reason}", c.kind, c.display_name),
                        })
                        .await?;
                    continue;
                }
                Placement::Into(name) => name,
            };
            let row = PimCollectionRow {
                id: PimCollectionId(0),
                kind: c.kind.as_str().to_owned(),
                source_href: c.href.clone(),
                display_name: c.display_name.clone(),
                target_name: target_name.clone().unwrap_or_default(),
                sync_token: None,
            };
            let cid = self.store.upsert_pim_collection(mailbox, &row).await?;
            let token = stored
                .iter()
                .find(|s| s.id == cid)
                .and_then(|s| s.sync_token.clone());
            let items = self.store.pim_items(cid).await?;
            let by_key: HashMap<String, PimItemRow> =
                items.into_iter().map(|r| (r.key.clone(), r)).collect();
            let mut etags: HashMap<String, Option<String>> = HashMap::new();
            let mut retry: HashSet<String> = HashSet::new();
            for r in by_key.values() {
                let href = r.key.split('#').next().unwrap_or(&r.key).to_owned();
                if r.status == ItemStatus::Failed
                    || r.status == ItemStatus::Planned
                    || r.old_target_id.is_some()
                {
                    retry.insert(href.clone());
                }
                etags.insert(href, r.etag.clone());
            }
            let changed = source.changed(c, &etags, &retry, token.as_deref()).await?;
            let options = self.calendar_options();
            let read: Vec<ReadItem> = changed
                .resources
                .iter()
                .flat_map(|r| read_resource(r, c.kind, &options))
                .collect();
            let ctx = ItemCtx {
                run,
                mailbox,
                batch,
                cid,
                targets: targets.as_ref(),
                target_name: target_name.as_deref(),
                by_key: &by_key,
                pair,
            };
            let results: Vec<Result<Done>> = stream::iter(read.iter())
                .map(|it| self.pim_item(&ctx, it))
                .buffer_unordered(ITEMS_AT_ONCE)
                .collect()
                .await;
            let mut complete = !self.stop.is_stopped();
            for r in results {
                match r? {
                    Done::Migrated => {
                        tally.migrated.fetch_add(1, Ordering::Relaxed);
                    }
                    Done::Skipped => {
                        tally.skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    Done::Failed => {
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Done::Unchanged => {}
                }
            }
            if !changed.gone.is_empty() {
                batch
                    .event(EventRecord {
                        mailbox: Some(mailbox),
                        kind: "source_deleted".into(),
                        detail: format!(
                            "{} {}: {} item(s) deleted at the source since the last pass are \
                             kept in the target",
                            c.kind,
                            c.display_name,
                            changed.gone.len()
                        ),
                    })
                    .await?;
            }
            complete &= !self.stop.is_stopped();
            if complete && changed.token.is_some() {
                self.store
                    .set_pim_sync_token(cid, changed.token.as_deref())
                    .await?;
            }
        }
        Ok(())
    }

    /// Why an item is not migrated on purpose (`[dav]` switches and filters), if it is not;
    /// `run` records it skipped with this reason and `verify` does not expect it.
    pub(crate) fn pim_skip_reason(&self, conv: &Converted) -> Option<&'static str> {
        let d = self.job.dav.as_ref()?;
        match conv {
            Converted::Task(_) if !d.tasks => Some("tasks are not migrated ([dav] tasks = false)"),
            Converted::Event(_) if !d.calendars => {
                Some("events are not migrated ([dav] calendars = false)")
            }
            Converted::Event(e) if d.events_since.is_some_and(|s| !event_since(e, s)) => {
                Some("ends before [dav] events_since")
            }
            _ => None,
        }
    }

    /// One item: skip when done, else write and record.
    async fn pim_item(&self, ctx: &ItemCtx<'_>, it: &ReadItem) -> Result<Done> {
        if self.stop.is_stopped() {
            return Ok(Done::Unchanged);
        }
        let prev = ctx.by_key.get(&it.key);
        let mut row = PimItemRow {
            key: it.key.clone(),
            etag: it.etag.clone(),
            fingerprint: None,
            summary: String::new(),
            target_id: prev.and_then(|p| p.target_id.clone()),
            old_target_id: prev.and_then(|p| p.old_target_id.clone()),
            status: ItemStatus::Failed,
            reason: None,
            not_carried: Vec::new(),
        };
        let conv = match &it.item {
            Err(reason) => {
                row.reason = Some(format!("{reason} (in {} of {})", it.href, ctx.pair.source));
                self.store.record_pim_item(ctx.run, ctx.cid, &row).await?;
                return Ok(Done::Failed);
            }
            Ok(c) => c,
        };
        row.fingerprint = Some(conv.fingerprint().to_owned());
        row.summary = conv.summary();
        row.not_carried = conv.not_carried();
        let unchanged = prev.is_some_and(|p| {
            p.fingerprint.as_deref() == Some(conv.fingerprint())
                && p.status == ItemStatus::Migrated
                && p.old_target_id.is_none()
        });
        if unchanged {
            if prev.is_some_and(|p| p.etag != it.etag) {
                // Same content under a new ETag: remember the ETag, nothing to write.
                row.status = ItemStatus::Migrated;
                self.store.record_pim_item(ctx.run, ctx.cid, &row).await?;
            }
            return Ok(Done::Unchanged);
        }
        if let Some(reason) = self.pim_skip_reason(conv) {
            row.status = ItemStatus::Skipped;
            row.reason = Some(reason.to_owned());
            self.store.record_pim_item(ctx.run, ctx.cid, &row).await?;
            return Ok(Done::Skipped);
        }
        let Some(targets) = ctx.targets else {
            row.status = ItemStatus::Skipped;
            row.reason = Some(
                "the target cannot hold contacts, calendars or tasks (only Microsoft 365 \
                 through Graph can)"
                    .into(),
            );
            self.store.record_pim_item(ctx.run, ctx.cid, &row).await?;
            return Ok(Done::Skipped);
        };
        if let Converted::Event(e) = conv
            && e.series_not_expressible
        {
            row.reason = Some(format!(
                "the recurrence cannot be expressed in Microsoft 365, so the series is not \
                 created as a simplified one ({}); hint: recreate it by hand in Outlook",
                e.not_carried.join("; ")
            ));
            self.store.record_pim_item(ctx.run, ctx.cid, &row).await?;
            return Ok(Done::Failed);
        }
        let item = match conv.write_item() {
            Ok(i) => i,
            Err(reason) => {
                row.reason = Some(format!("{}: {reason}", it.key));
                self.store.record_pim_item(ctx.run, ctx.cid, &row).await?;
                return Ok(Done::Failed);
            }
        };
        let spec = PimCollectionSpec {
            kind: conv.kind(),
            name: ctx.target_name.map(str::to_owned),
        };
        let written = async {
            let coll = targets.get(spec).await?;
            let out = targets.writer.write(&coll, &item).await?;
            Ok::<_, o365_migrate_target::Error>((coll, out))
        }
        .await;
        let (coll, out) = match written {
            Ok(x) => x,
            Err(e) if e.scope() == ErrorScope::Item => {
                row.reason = Some(format!("{}: {e}", row.summary));
                self.store.record_pim_item(ctx.run, ctx.cid, &row).await?;
                return Ok(Done::Failed);
            }
            Err(e) => {
                return Err(Error::target(
                    format!("{} {} of {}", conv.kind(), it.key, ctx.pair.target),
                    e,
                ));
            }
        };
        // The earlier version of a changed item: deleted after the new one is recorded.
        let old = prev
            .and_then(|p| {
                p.old_target_id.clone().or_else(|| {
                    (p.fingerprint.as_deref() != Some(conv.fingerprint()))
                        .then(|| p.target_id.clone())
                        .flatten()
                })
            })
            .filter(|o| o != out.id());
        row.status = ItemStatus::Migrated;
        row.target_id = Some(out.id().to_owned());
        row.old_target_id = old.clone();
        self.store.record_pim_item(ctx.run, ctx.cid, &row).await?;
        if let Some(old) = old {
            match targets.writer.delete(&coll, &old).await {
                Ok(()) => {
                    row.old_target_id = None;
                    self.store.record_pim_item(ctx.run, ctx.cid, &row).await?;
                }
                Err(e) if e.scope() == ErrorScope::Item => {
                    // Kept for the next pass, which deletes it before anything else.
                    ctx.batch
                        .event(EventRecord {
                            mailbox: Some(ctx.mailbox),
                            kind: "pim_old_copy".into(),
                            detail: format!(
                                "{}: the earlier version could not be deleted yet: {e}",
                                row.summary
                            ),
                        })
                        .await?;
                }
                Err(e) => {
                    return Err(Error::target(
                        format!("deleting the earlier version of {}", it.key),
                        e,
                    ));
                }
            }
        }
        Ok(Done::Migrated)
    }
}

/// What every item of one collection's pass shares.
struct ItemCtx<'a> {
    run: RunId,
    mailbox: MailboxId,
    batch: &'a Arc<BatchWriter>,
    cid: PimCollectionId,
    targets: Option<&'a Targets<'a>>,
    target_name: Option<&'a str>,
    by_key: &'a HashMap<String, PimItemRow>,
    pair: &'a MailboxPair,
}
