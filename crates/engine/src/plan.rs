//! `plan`: folders, counts, sizes, oversize items, items without Message-ID and a duration
//! estimate, read from the source without writing anything.

use serde::Serialize;

use crate::config::TargetKind;
use crate::engine::Engine;
use crate::error::Result;
use crate::folders::target_specs;
use crate::matching::Unpaired;

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// Exchange Online limits per app and mailbox (Microsoft Graph throttling docs): 10,000
/// requests per 10 minutes and 150 MB upload per 5 minutes.
const GRAPH_REQUESTS_PER_SECOND: f64 = 10_000.0 / 600.0;

const GRAPH_UPLOAD_BYTES_PER_SECOND: f64 = 150.0 * 1024.0 * 1024.0 / 300.0;

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
        for p in pairing.pairs {
            let mut mp = MailboxPlan {
                source: p.source.clone(),
                target: p.target.clone(),
                folders: Vec::new(),
                messages: 0,
                bytes: 0,
                error: None,
            };
            let r: Result<()> = async {
                let mut s = self.open_source(&p.source).await?;
                let mapped = self.mapped_folders(&mut s).await?;
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
                        let (_, metas) = self.source_folder_scan(&mut s, &m.source.path).await?;
                        for (uid, (meta, _)) in metas {
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
                            }
                        }
                        mp.messages += fp.messages;
                        mp.bytes += fp.bytes;
                    }
                    mp.folders.push(fp);
                }
                let _ = s.logout().await;
                Ok(())
            }
            .await;
            if let Err(e) = r {
                mp.error = Some(e.to_string());
            }
            mailboxes.push(mp);
        }
        let messages = mailboxes.iter().map(|m| m.messages).sum();
        let bytes = mailboxes.iter().map(|m| m.bytes).sum();
        let (estimate_seconds, estimate_basis) = if self.job.target.kind == TargetKind::Graph {
            // Each mailbox is limited on its own; mailboxes run `mailboxes_at_once` in parallel.
            let per: Vec<f64> = mailboxes
                .iter()
                .map(|m| {
                    (m.messages as f64 / GRAPH_REQUESTS_PER_SECOND)
                        .max(m.bytes as f64 / GRAPH_UPLOAD_BYTES_PER_SECOND)
                })
                .collect();
            let sum: f64 = per.iter().sum();
            let longest = per.iter().copied().fold(0.0, f64::max);
            let parallel = f64::from(self.job.limits.mailboxes_at_once.max(1));
            (
                Some((sum / parallel).max(longest)),
                "Exchange Online per-mailbox limits: 10,000 requests / 10 min and 150 MB upload / 5 min; at least one request per message; mailboxes in parallel per [limits] mailboxes_at_once".to_owned(),
            )
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
