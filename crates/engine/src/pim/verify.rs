//! `verify` for contacts, calendars and tasks: per source collection, every item the source
//! holds (read again and converted alike) is looked up in its target collection by
//! fingerprint, read back and compared property by property (`o365_migrate_pim::compare_*`:
//! times as instants, a series' occurrences over two years one by one). Never changes the
//! target.

use std::collections::HashMap;

use futures_util::{StreamExt, stream};
use o365_migrate_pim as pimlib;
use o365_migrate_target::pim::{PimCollection, PimCollectionSpec, PimKind, PimWriter};
use serde::Serialize;

use super::{Converted, Mapper, Placement, ReadItem, read_resource};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::matching::MailboxPair;

/// Items read back at once per mailbox.
const READS_AT_ONCE: usize = 4;

/// One contact, event or task that differs between source and target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PimDiff {
    /// The item's key in its source collection (href, `#UID` when a resource holds several).
    pub key: String,
    /// The contact's name, the event's subject, the task's title.
    pub summary: String,
    /// What differs, or why it is missing.
    pub what: String,
}

/// Verification of one source collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CollectionVerify {
    /// `contacts` or `calendar`.
    pub kind: String,
    /// The source collection's display name.
    pub source: String,
    /// The target collection (`(default)` for the mailbox's default one).
    pub target: String,
    /// Items the source holds.
    pub source_count: u64,
    /// Items not migrated on purpose (filters, disabled kinds).
    pub skipped: u64,
    /// Items expected in the target.
    pub expected: u64,
    /// Expected items found (one copy each, same content or not).
    pub found: u64,
    /// Items in the target collection not written by o365-migrate (created there by people):
    /// neither expected nor a difference.
    pub foreign: u64,
    /// Source items not in the target.
    pub missing: Vec<PimDiff>,
    /// Copies in the target with no source item, or a second copy of one.
    pub extra: Vec<PimDiff>,
    /// Items found whose content differs.
    pub differs: Vec<PimDiff>,
}

impl CollectionVerify {
    /// Whether everything matched.
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.differs.is_empty()
    }
}

/// The fingerprints found in one target collection: id per fingerprint (several ids: extra
/// copies), and how many items carry none.
#[derive(Default)]
struct TargetIndex {
    by_fp: HashMap<String, Vec<String>>,
    foreign: u64,
}

impl Engine {
    /// Verifies one mailbox's contacts, calendars and tasks (empty without `[dav]`).
    pub(crate) async fn verify_pim(&self, p: &MailboxPair) -> Result<Vec<CollectionVerify>> {
        let (Some(source), Some(d)) = (self.pim_source(&p.source)?, self.job.dav.as_ref()) else {
            return Ok(Vec::new());
        };
        let collections = source.collections().await?;
        let placements = Mapper::new(d)?.place(&collections);
        let writer = self
            .target
            .open_pim(&p.target)
            .await
            .map_err(|e| Error::target(format!("contacts and calendars of {}", p.target), e))?;
        let options = self.calendar_options();
        let mut indexes: HashMap<PimCollectionSpec, (Option<PimCollection>, TargetIndex)> =
            HashMap::new();
        let mut out = Vec::new();
        for (c, placement) in collections.iter().zip(placements) {
            let Placement::Into(name) = placement else {
                continue;
            };
            let mut cv = CollectionVerify {
                kind: c.kind.as_str().to_owned(),
                source: c.display_name.clone(),
                target: name.clone().unwrap_or_else(|| "(default)".into()),
                source_count: 0,
                skipped: 0,
                expected: 0,
                found: 0,
                foreign: 0,
                missing: Vec::new(),
                extra: Vec::new(),
                differs: Vec::new(),
            };
            let resources = source.all(c).await?;
            let items: Vec<ReadItem> = resources
                .iter()
                .flat_map(|r| read_resource(r, c.kind, &options))
                .collect();
            cv.source_count = items.len() as u64;
            let mut work: Vec<(ReadItem, PimCollectionSpec)> = Vec::new();
            for it in items {
                let conv = match &it.item {
                    Err(reason) => {
                        cv.expected += 1;
                        cv.missing.push(PimDiff {
                            key: it.key.clone(),
                            summary: String::new(),
                            what: format!("cannot be read at the source: {reason}"),
                        });
                        continue;
                    }
                    Ok(conv) => conv,
                };
                if self.pim_skip_reason(conv).is_some() {
                    cv.skipped += 1;
                    continue;
                }
                cv.expected += 1;
                let Some(w) = writer.as_deref() else {
                    cv.missing.push(PimDiff {
                        key: it.key.clone(),
                        summary: conv.summary(),
                        what: "the target cannot hold contacts, calendars or tasks".into(),
                    });
                    continue;
                };
                let spec = PimCollectionSpec {
                    kind: conv.kind(),
                    name: name.clone(),
                };
                if !indexes.contains_key(&spec) {
                    let index = target_index(w, &spec).await.map_err(|e| {
                        Error::target(format!("{} collection of {}", spec.kind, p.target), e)
                    })?;
                    indexes.insert(spec.clone(), index);
                }
                work.push((it, spec));
            }
            // Claim each fingerprint once; a second source item with the same content (two
            // identical cards) claims the second copy.
            let mut jobs = Vec::new();
            for (it, spec) in work {
                let Ok(conv) = &it.item else { continue };
                let Some((coll, index)) = indexes.get_mut(&spec) else {
                    continue;
                };
                let ids = index.by_fp.get_mut(conv.fingerprint());
                match (
                    coll.as_ref(),
                    ids.and_then(|v| (!v.is_empty()).then(|| v.remove(0))),
                ) {
                    (Some(coll), Some(id)) => {
                        jobs.push((it.clone(), coll.clone(), id));
                    }
                    _ => cv.missing.push(PimDiff {
                        key: it.key.clone(),
                        summary: conv.summary(),
                        what: "not in the target".into(),
                    }),
                }
            }
            cv.found = jobs.len() as u64;
            if let Some(w) = writer.as_deref() {
                let diffs: Vec<Result<Option<PimDiff>>> = stream::iter(jobs)
                    .map(|(it, coll, id)| async move { compare_one(w, &it, &coll, &id).await })
                    .buffer_unordered(READS_AT_ONCE)
                    .collect()
                    .await;
                for d in diffs {
                    if let Some(d) = d? {
                        cv.differs.push(d);
                    }
                }
            }
            cv.missing.sort_by(|a, b| a.key.cmp(&b.key));
            cv.differs.sort_by(|a, b| a.key.cmp(&b.key));
            out.push(cv);
        }
        // What is left in the target indexes: second copies, and copies of items the source
        // no longer has. Reported on the first collection mapped to that target collection.
        for (spec, (_, index)) in &indexes {
            let extra: Vec<PimDiff> = index
                .by_fp
                .iter()
                .flat_map(|(fp, ids)| {
                    ids.iter().map(move |id| PimDiff {
                        key: id.clone(),
                        summary: String::new(),
                        what: format!(
                            "a copy with fingerprint {fp} the source does not account for"
                        ),
                    })
                })
                .collect();
            let holder = out.iter_mut().find(|cv| {
                cv.kind == kind_of_source(spec.kind)
                    && spec.name.as_deref().unwrap_or("(default)") == cv.target
            });
            if let Some(cv) = holder {
                cv.foreign += index.foreign;
                cv.extra.extend(extra);
                cv.extra.sort_by(|a, b| a.key.cmp(&b.key));
            }
        }
        Ok(out)
    }
}

/// Tasks come from calendars: their verify rows sit under the calendar's.
fn kind_of_source(k: PimKind) -> &'static str {
    match k {
        PimKind::Contacts => "contacts",
        _ => "calendar",
    }
}

async fn target_index(
    w: &dyn PimWriter,
    spec: &PimCollectionSpec,
) -> std::result::Result<(Option<PimCollection>, TargetIndex), o365_migrate_target::Error> {
    let Some(coll) = w.find_collection(spec).await? else {
        return Ok((None, TargetIndex::default()));
    };
    let mut index = TargetIndex::default();
    for s in w.list(&coll).await? {
        match s.fingerprint {
            Some(fp) => index.by_fp.entry(fp).or_default().push(s.id),
            None => index.foreign += 1,
        }
    }
    Ok((Some(coll), index))
}

async fn compare_one(
    w: &dyn PimWriter,
    it: &ReadItem,
    coll: &PimCollection,
    id: &str,
) -> Result<Option<PimDiff>> {
    let Ok(conv) = &it.item else {
        return Ok(None);
    };
    let window = match conv {
        Converted::Event(e) => e.verify_window(),
        _ => (String::new(), String::new()),
    };
    let back = w
        .read(coll, id, (&window.0, &window.1))
        .await
        .map_err(|e| Error::target(format!("reading back {} ({})", conv.summary(), it.key), e))?;
    let diffs = match conv {
        Converted::Contact(c) => pimlib::compare_contact(c, &back.json, back.photo_len),
        Converted::Event(e) => {
            let instances: Vec<pimlib::TargetInstance> = back
                .instances
                .iter()
                .map(|i| pimlib::TargetInstance {
                    start_utc: i.start_utc.clone(),
                    end_utc: i.end_utc.clone(),
                    original_start_utc: i.original_start_utc.clone(),
                    json: i.json.clone(),
                })
                .collect();
            pimlib::compare_event(e, &back.json, &instances)
        }
        // A task is found by its fingerprint; its properties are not compared yet.
        Converted::Task(_) => Vec::new(),
    };
    Ok((!diffs.is_empty()).then(|| PimDiff {
        key: it.key.clone(),
        summary: conv.summary(),
        what: diffs.join("; "),
    }))
}
