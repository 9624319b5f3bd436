//! `plan` for contacts, calendars and tasks: per source collection where it goes, how many
//! items of each kind, which cannot be read or expressed, and what they cost against the
//! target's request budget.

use o365_migrate_target::graph::estimate::Workload;
use serde::Serialize;

use super::{Converted, Mapper, Placement, ReadItem, read_resource};
use crate::engine::Engine;
use crate::error::Result;
use crate::matching::MailboxPair;

/// Bytes of JSON around a contact or event body (headers, property names).
const JSON_OVERHEAD: u64 = 600;

/// Plan of one source collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CollectionPlan {
    /// `contacts` or `calendar`.
    pub kind: String,
    /// The source collection's display name.
    pub source: String,
    /// The target collection (`(default)` for the mailbox's default one); `None` when skipped.
    pub target: Option<String>,
    /// Why it is skipped.
    pub skip_reason: Option<String>,
    /// Contacts.
    pub contacts: u64,
    /// Event series and single events.
    pub events: u64,
    /// Of those, recurring series.
    pub recurring: u64,
    /// Tasks (VTODO).
    pub tasks: u64,
    /// Items skipped by the `[dav]` filters.
    pub filtered: u64,
    /// Items with at least one property the target cannot hold (listed per item by `run`'s
    /// report).
    pub with_not_carried: u64,
    /// Items that cannot be migrated: malformed, or a recurrence Microsoft 365 cannot
    /// express; each with the reason (naming the resource and line).
    pub problems: Vec<String>,
}

impl Engine {
    /// Plans one mailbox's contacts, calendars and tasks (empty without `[dav]`), adding what
    /// they cost to `work`.
    pub(crate) async fn plan_pim(
        &self,
        p: &MailboxPair,
        work: &mut Workload,
    ) -> Result<Vec<CollectionPlan>> {
        let (Some(source), Some(d)) = (self.pim_source(&p.source)?, self.job.dav.as_ref()) else {
            return Ok(Vec::new());
        };
        let collections = source.collections().await?;
        let placements = Mapper::new(d)?.place(&collections);
        let options = self.calendar_options();
        let mut out = Vec::new();
        for (c, placement) in collections.iter().zip(placements) {
            let mut cp = CollectionPlan {
                kind: c.kind.as_str().to_owned(),
                source: c.display_name.clone(),
                target: None,
                skip_reason: None,
                contacts: 0,
                events: 0,
                recurring: 0,
                tasks: 0,
                filtered: 0,
                with_not_carried: 0,
                problems: Vec::new(),
            };
            match placement {
                Placement::Skip(reason) => {
                    cp.skip_reason = Some(reason);
                    out.push(cp);
                    continue;
                }
                Placement::Into(name) => {
                    cp.target = Some(name.unwrap_or_else(|| "(default)".into()));
                }
            }
            let items: Vec<ReadItem> = source
                .all(c)
                .await?
                .iter()
                .flat_map(|r| read_resource(r, c.kind, &options))
                .collect();
            for it in items {
                let conv = match it.item {
                    Err(reason) => {
                        cp.problems.push(reason);
                        continue;
                    }
                    Ok(conv) => conv,
                };
                if self.pim_skip_reason(&conv).is_some() {
                    cp.filtered += 1;
                    continue;
                }
                if !conv.not_carried().is_empty() {
                    cp.with_not_carried += 1;
                }
                let body = conv.json().len() as u64 + JSON_OVERHEAD;
                match &conv {
                    Converted::Contact(ct) => {
                        cp.contacts += 1;
                        work.single_requests += 1;
                        work.upload_bytes += body;
                        if let Some(photo) = &ct.photo {
                            work.single_requests += 1;
                            work.upload_bytes += photo.bytes.len() as u64;
                        }
                    }
                    Converted::Event(e) => {
                        cp.events += 1;
                        if e.series_not_expressible {
                            cp.problems.push(format!(
                                "{}: the recurrence cannot be expressed in Microsoft 365 ({})",
                                it.key,
                                e.not_carried.join("; ")
                            ));
                            continue;
                        }
                        let changes = (e.cancelled_occurrences.len() + e.overrides.len()) as u64;
                        if e.graph_json().contains("\"recurrence\"") {
                            cp.recurring += 1;
                        }
                        // Create; with changed occurrences also the instances read, one
                        // request per change and the completion mark.
                        work.single_requests += 1 + if changes > 0 { 2 + changes } else { 0 };
                        work.upload_bytes += body;
                        for a in &e.attachments {
                            work.single_requests += 1;
                            work.upload_bytes += a.bytes.len() as u64 * 4 / 3;
                        }
                    }
                    Converted::Task(_) => {
                        cp.tasks += 1;
                        work.single_requests += 1;
                        work.upload_bytes += body;
                    }
                }
            }
            out.push(cp);
        }
        Ok(out)
    }
}
