//! `plan`: folders, counts, sizes, oversize items, items without Message-ID and a duration
//! estimate, read from the source without writing anything.

use o365_migrate_target as target;
use serde::Serialize;

use crate::config::TargetKind;
use crate::engine::Engine;
use crate::error::Result;
use crate::folders::target_specs;
use crate::gmail::Placement;
use crate::matching::Unpaired;
use crate::source::SourceLayout;
use std::collections::BTreeMap;

/// Plan of one folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FolderPlan {
    /// Source folder path.
    pub source: String,
    /// Target path (`None` when skipped).
    pub target: Option<String>,
    /// Why it is skipped.
    pub skip_reason: Option<String>,
    /// Messages.
    pub messages: u64,
    /// Bytes.
    pub bytes: u64,
    /// Messages skipped by the filters (size / date / target limit).
    pub filtered: u64,
    /// UIDs above `max_message_size` or the target's limit.
    pub oversize: Vec<u32>,
    /// UIDs without a usable Message-ID (deduplicated by header key instead).
    pub without_message_id: Vec<u32>,
}

/// Plan of one mailbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MailboxPlan {
    /// Source login.
    pub source: String,
    /// Target mailbox.
    pub target: String,
    /// Per folder.
    pub folders: Vec<FolderPlan>,
    /// Messages to copy (after filters).
    pub messages: u64,
    /// Bytes to copy (after filters).
    pub bytes: u64,
    /// Set when the mailbox could not be read.
    pub error: Option<String>,
    /// Estimated time to write it, in seconds (targets with documented limits).
    pub estimate_seconds: Option<f64>,
    /// Contacts, calendars and tasks per source collection (`[dav]`).
    pub collections: Vec<crate::pim::CollectionPlan>,
    /// A Gmail source: where labels place All Mail's messages, and the days Google's download
    /// limit makes the copy take.
    pub gmail: Option<GmailPlan>,
}

/// A Gmail mailbox's plan: All Mail's messages by the target folder their labels place them
/// in, and the download budget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GmailPlan {
    /// (target folder, messages placed there), by target folder.
    pub placements: Vec<(String, u64)>,
    /// Messages that carry more than one label (one copy each, the others as categories or
    /// keywords).
    pub multi_labelled: u64,
    /// Bytes to download from Gmail (all folders read).
    pub download_bytes: u64,
    /// Google's download allowance per window (`[gmail] daily_download`).
    pub budget_bytes: u64,
    /// The window in seconds (`[gmail] download_window_seconds`, a day by default).
    pub window_seconds: u64,
    /// Windows (days) the download needs: `download_bytes / budget_bytes`, rounded up.
    pub days: u64,
}

/// The result of `plan`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanReport {
    /// Per mailbox.
    pub mailboxes: Vec<MailboxPlan>,
    /// Messages to copy over all mailboxes.
    pub messages: u64,
    /// Bytes to copy over all mailboxes.
    pub bytes: u64,
    /// Estimated duration in seconds, from the target's documented limits.
    pub estimate_seconds: Option<f64>,
    /// How the estimate was made.
    pub estimate_basis: String,
    /// Sources the job does not migrate (not paired, excluded), with the reason and the fix.
    pub skipped: Vec<Unpaired>,
}

/// The name of the state-store record that keeps the last plan's figures per mailbox (the
/// report shows them, and counts a mailbox no run has listed yet as pending).
pub const PLAN_RECORD: &str = "plan";

/// What the state store keeps of a plan, per mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub(crate) struct KeptPlan {
    /// Messages to copy.
    pub(crate) messages: u64,
    /// Bytes to copy.
    pub(crate) bytes: u64,
}

/// The last plan's figures by source login, from the state store (empty when no plan ran or
/// the record cannot be read: the figures are informative only).
pub(crate) async fn kept_plan(
    store: &dyn crate::state::StateStore,
) -> Result<std::collections::HashMap<String, KeptPlan>> {
    Ok(store
        .record(PLAN_RECORD)
        .await?
        .and_then(|r| serde_json::from_str(&r.value).ok())
        .unwrap_or_default())
}

/// The name of the state-store record with the answer times `target test` measured last.
pub const ANSWER_TIMES_RECORD: &str = "answer_times";

/// Exchange Online's answer times as `target test` measured them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct MeasuredAnswerTimes {
    /// The mailbox they were measured on.
    pub mailbox: String,
    /// Milliseconds on the way there and back per HTTP request (network, Graph's gateway).
    pub gateway_ms: u64,
    /// Milliseconds per item inside the mailbox.
    pub mailbox_ms: u64,
    /// When, in milliseconds since the Unix epoch.
    pub measured_at: i64,
}

impl MeasuredAnswerTimes {
    pub(crate) fn new(mailbox: &str, t: target::graph::estimate::AnswerTimes) -> Self {
        Self {
            mailbox: mailbox.to_owned(),
            gateway_ms: t.gateway.as_millis() as u64,
            mailbox_ms: t.mailbox.as_millis() as u64,
            measured_at: crate::state::now_ms(),
        }
    }

    fn times(&self) -> target::graph::estimate::AnswerTimes {
        target::graph::estimate::AnswerTimes {
            gateway: std::time::Duration::from_millis(self.gateway_ms),
            mailbox: std::time::Duration::from_millis(self.mailbox_ms),
        }
    }
}

impl Engine {
    /// Records the plan's figures (mailboxes that could be read) and their pairs in the state
    /// store, replacing those of an earlier plan for the same mailboxes.
    async fn keep_plan(&self, mailboxes: &[MailboxPlan]) -> Result<()> {
        let mut kept = kept_plan(self.store.as_ref()).await?;
        for m in mailboxes.iter().filter(|m| m.error.is_none()) {
            self.store.upsert_mailbox(&m.source, &m.target).await?;
            kept.insert(
                m.source.clone(),
                KeptPlan {
                    messages: m.messages,
                    bytes: m.bytes,
                },
            );
        }
        crate::state::put_json(self.store.as_ref(), PLAN_RECORD, &kept).await
    }

    /// `plan`: per mailbox folders, counts, sizes, the folder map, oversize items, items
    /// without Message-ID and a duration estimate, for the job's pairing (an error when it
    /// cannot be decided, e.g. the directory cannot be listed).
    pub async fn plan(&self) -> Result<PlanReport> {
        let max_target = self.target.capabilities().max_message_bytes;
        let mut mailboxes = Vec::new();
        let pairing = self.pairing().await?;
        // Exchange Online: estimate from its limits and the answer times `target test` kept
        // (none kept: the limits alone, a lower bound).
        let graph = self.job.target.kind == TargetKind::Graph;
        let measured: Option<MeasuredAnswerTimes> = if graph {
            self.store
                .record(ANSWER_TIMES_RECORD)
                .await?
                .and_then(|r| serde_json::from_str(&r.value).ok())
        } else {
            None
        };
        let times = graph.then(|| measured.as_ref().map(|m| m.times()).unwrap_or_default());
        let at_once = self.job.limits.mailboxes_at_once.max(1);
        for p in pairing.pairs {
            let mut mp = MailboxPlan {
                source: p.source.clone(),
                target: p.target.clone(),
                folders: Vec::new(),
                messages: 0,
                bytes: 0,
                error: None,
                estimate_seconds: None,
                collections: Vec::new(),
                gmail: None,
            };
            let mut work = target::graph::estimate::Workload::default();
            let r: Result<()> = async {
                let mut s = self.open_source(&p.source).await?;
                let SourceLayout { mapped, gmail } = self.source_layout(&mut s).await?;
                let mut placements: BTreeMap<String, u64> = BTreeMap::new();
                let mut multi_labelled = 0u64;
                // The names the target will get (fitted: case, length), by source path.
                let targets: std::collections::HashMap<String, String> =
                    target_specs(&mapped, &self.target.capabilities())
                        .specs
                        .into_iter()
                        .map(|(source, spec)| (source, spec.display_path()))
                        .collect();
                for m in mapped {
                    let mut fp = FolderPlan {
                        source: m.source.path.clone(),
                        target: targets.get(&m.source.path).cloned(),
                        skip_reason: m.skip_reason().map(|r| r.to_string()),
                        messages: 0,
                        bytes: 0,
                        filtered: 0,
                        oversize: Vec::new(),
                        without_message_id: Vec::new(),
                    };
                    if fp.target.is_some() {
                        let all_mail = gmail.as_ref().filter(|g| g.all_mail == m.source.path);
                        let (_, metas, labels) = self
                            .source_folder_scan_with(&mut s, &m.source.path, all_mail.is_some())
                            .await?;
                        for (uid, (meta, _)) in metas {
                            if let Some(g) = all_mail
                                && self.filter_reason(&meta, max_target).is_none()
                            {
                                let l = labels.get(&uid).map(Vec::as_slice).unwrap_or(&[]);
                                let user = l.iter().filter(|x| !x.starts_with('\\')).count();
                                if user > 1 {
                                    multi_labelled += 1;
                                }
                                let place = match g.place(l) {
                                    Placement::To { folder, .. } => {
                                        g.spec(&folder).map(|s| s.display_path()).unwrap_or(folder)
                                    }
                                    Placement::Skip(_) => "(copied from its label folders)".into(),
                                };
                                *placements.entry(place).or_default() += 1;
                            }
                            let size = meta.size.unwrap_or(0);
                            let too_big = !self.job.filters.size_allows(size)
                                || max_target.is_some_and(|l| size > l);
                            if too_big {
                                fp.oversize.push(uid);
                            }
                            if meta.message_id.is_none() {
                                fp.without_message_id.push(uid);
                            }
                            if self.filter_reason(&meta, max_target).is_some() {
                                fp.filtered += 1;
                            } else {
                                fp.messages += 1;
                                fp.bytes += size;
                                work.add_message(size);
                            }
                        }
                        mp.messages += fp.messages;
                        mp.bytes += fp.bytes;
                    }
                    mp.folders.push(fp);
                }
                let _ = s.logout().await;
                if gmail.is_some() {
                    let budget = self.job.gmail.daily_download.0.max(1);
                    mp.gmail = Some(GmailPlan {
                        placements: placements.into_iter().collect(),
                        multi_labelled,
                        download_bytes: mp.bytes,
                        budget_bytes: budget,
                        window_seconds: self.job.gmail.download_window_seconds,
                        days: mp.bytes.div_ceil(budget),
                    });
                }
                mp.collections = self.plan_pim(&p, &mut work).await?;
                Ok(())
            }
            .await;
            if let Err(e) = r {
                mp.error = Some(e.to_string());
            }
            if let Some(times) = &times {
                mp.estimate_seconds = Some(
                    target::graph::estimate::mailbox_duration(
                        &work,
                        times,
                        &target::graph::Budgets::microsoft(),
                        target::graph::MAX_BATCH,
                    )
                    .as_secs_f64(),
                );
            }
            mailboxes.push(mp);
        }
        let messages = mailboxes.iter().map(|m| m.messages).sum();
        let bytes = mailboxes.iter().map(|m| m.bytes).sum();
        let (estimate_seconds, estimate_basis) = if graph {
            let per: Vec<std::time::Duration> = mailboxes
                .iter()
                .filter_map(|m| m.estimate_seconds)
                .map(std::time::Duration::from_secs_f64)
                .collect();
            let total = target::graph::estimate::job_duration(&per, at_once as usize);
            let basis = match &measured {
                Some(m) => format!(
                    "Exchange Online's per-mailbox limits (10,000 requests / 10 min, 150 MB / 5 min, 4 at a time), $batches of 20, {at_once} mailboxes at once, answer times {} ms on the way + {} ms in the mailbox measured by `target test` on {}",
                    m.gateway_ms, m.mailbox_ms, m.mailbox
                ),
                None => format!(
                    "Exchange Online's per-mailbox limits only (10,000 requests / 10 min, 150 MB / 5 min), {at_once} mailboxes at once; no answer times measured yet: run `target test` for an estimate that counts them"
                ),
            };
            (Some(total.as_secs_f64()), basis)
        } else {
            (None, "no documented limits for this target".to_owned())
        };
        self.keep_plan(&mailboxes).await?;
        Ok(PlanReport {
            mailboxes,
            messages,
            bytes,
            estimate_seconds,
            estimate_basis,
            skipped: pairing.unpaired,
        })
    }
}
