//! Progress events ([`Reporter`]), a JSON-lines event writer, and reports built from the state
//! store: JSON and CSV per mailbox and per item, and a self-contained HTML summary page.
//!
//! Nothing here ever sees a secret: events and reports carry addresses, folders, UIDs, sizes,
//! statuses and reasons only.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::state::{ItemRecord, ItemStatus, MailboxId, RunSummary, StateStore, StatusCounts};

/// A progress event from the engine.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A mailbox started.
    MailboxStarted {
        /// Source address.
        mailbox: String,
        /// Target address.
        target: String,
    },
    /// Progress within a folder.
    FolderProgress {
        /// Source address.
        mailbox: String,
        /// Source folder path.
        folder: String,
        /// Items with an outcome so far.
        done: u64,
        /// Items planned.
        total: u64,
        /// Bytes written so far.
        bytes: u64,
    },
    /// A folder is not migrated.
    FolderSkipped {
        /// Source address.
        mailbox: String,
        /// Source folder path.
        folder: String,
        /// Why.
        reason: String,
    },
    /// An item was written.
    ItemMigrated {
        /// Source address.
        mailbox: String,
        /// Source folder path.
        folder: String,
        /// Source UID.
        uid: u32,
        /// Size in bytes.
        size: u64,
    },
    /// An item was skipped.
    ItemSkipped {
        /// Source address.
        mailbox: String,
        /// Source folder path.
        folder: String,
        /// Source UID.
        uid: u32,
        /// Why.
        reason: String,
    },
    /// An item failed.
    ItemFailed {
        /// Source address.
        mailbox: String,
        /// Source folder path.
        folder: String,
        /// Source UID.
        uid: u32,
        /// Why.
        reason: String,
    },
    /// A server asked us to slow down.
    Throttled {
        /// Source address of the mailbox, when per mailbox.
        mailbox: Option<String>,
        /// How long we wait, in milliseconds.
        wait_ms: u64,
        /// What the server said (status / error code).
        reason: String,
    },
    /// The target changed something about a folder (a reserved name renamed, a character it
    /// forbids replaced).
    FolderNote {
        /// Source address.
        mailbox: String,
        /// Source folder path.
        folder: String,
        /// What was changed.
        note: String,
    },
    /// What the target's throttling did to a mailbox in this run (Graph: answers 429/503, and
    /// the times a `Retry-After` paused every request of the mailbox).
    TargetThrottled {
        /// Source address.
        mailbox: String,
        /// Throttling answers the target gave.
        throttled_answers: u64,
        /// Pauses of the whole mailbox for a `Retry-After`.
        pauses: u64,
    },
    /// How many messages a mailbox still has to go (for progress and ETA; an estimate: the
    /// source's message count in migrated folders minus the outcomes already recorded).
    MailboxPlanned {
        /// Source address.
        mailbox: String,
        /// Messages still to process.
        remaining: u64,
    },
    /// A source mailbox is not migrated (excluded, or not `matched` in the mapping file).
    MailboxSkipped {
        /// Source address.
        mailbox: String,
        /// Why, and what to do.
        reason: String,
    },
    /// The run paused because a pause was requested (`o365-migrate pause`, the dashboard):
    /// items in flight were recorded; it waits for `resume`, keeping the run lock.
    Paused {
        /// Who asked for the pause.
        by: String,
    },
    /// The pause was lifted; the run goes on.
    Resumed,
    /// A mailbox finished.
    MailboxFinished {
        /// Source address.
        mailbox: String,
        /// Counts of this run for the mailbox.
        migrated: u64,
        /// Skipped.
        skipped: u64,
        /// Failed.
        failed: u64,
        /// Bytes written.
        bytes: u64,
    },
}

/// Receives progress events. Implementations must be cheap and must not block for long (they
/// are called from the pipeline's tasks).
pub trait Reporter: Send + Sync {
    /// Called for every event.
    fn report(&self, event: &Event);
}

/// Discards events.
#[derive(Debug, Clone, Copy, Default)]
pub struct NullReporter;

impl Reporter for NullReporter {
    fn report(&self, _event: &Event) {}
}

/// Sends every event to several reporters (e.g. progress bars and a JSON-lines file).
#[derive(Default)]
pub struct FanOut(pub Vec<Box<dyn Reporter>>);

impl std::fmt::Debug for FanOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FanOut({} reporters)", self.0.len())
    }
}

impl Reporter for FanOut {
    fn report(&self, event: &Event) {
        for r in &self.0 {
            r.report(event);
        }
    }
}

#[derive(Serialize)]
struct Line<'a> {
    ts: String,
    #[serde(flatten)]
    event: &'a Event,
}

fn rfc3339_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A moment for people to read: `2026-12-02 10:40 UTC` from Unix milliseconds.
pub(crate) fn utc_minutes(unix_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_ms.div_euclid(1000))
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_else(|_| format!("at {unix_ms} ms"))
}

/// Writes one JSON object per line per event: `{"ts":"…Z","event":"item_migrated",…}`.
/// Write errors are kept; [`JsonLinesReporter::finish`] returns the first one.
pub struct JsonLinesReporter {
    inner: Mutex<(Box<dyn Write + Send>, Option<std::io::Error>)>,
    path: PathBuf,
}

impl std::fmt::Debug for JsonLinesReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonLinesReporter")
            .field("path", &self.path)
            .finish()
    }
}

impl JsonLinesReporter {
    /// Appends to `path`, creating it owner-only (`0600`).
    pub fn create(path: impl AsRef<Path>) -> Result<JsonLinesReporter> {
        let path = path.as_ref().to_owned();
        let file = open_owner_only(&path, true).map_err(|source| Error::Output {
            what: "events",
            path: path.clone(),
            source,
        })?;
        Ok(JsonLinesReporter {
            inner: Mutex::new((Box::new(std::io::BufWriter::new(file)), None)),
            path,
        })
    }

    /// Writes to any writer (e.g. stdout); `name` is used in errors.
    pub fn from_writer(w: Box<dyn Write + Send>, name: &str) -> JsonLinesReporter {
        JsonLinesReporter {
            inner: Mutex::new((w, None)),
            path: PathBuf::from(name),
        }
    }

    /// Flushes and returns the first write error, if any.
    pub fn finish(&self) -> Result<()> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let flushed = g.0.flush();
        let err = g.1.take().or(flushed.err());
        match err {
            Some(source) => Err(Error::Output {
                what: "events",
                path: self.path.clone(),
                source,
            }),
            None => Ok(()),
        }
    }
}

impl Reporter for JsonLinesReporter {
    fn report(&self, event: &Event) {
        let line = Line {
            ts: rfc3339_now(),
            event,
        };
        let Ok(mut s) = serde_json::to_string(&line) else {
            return;
        };
        s.push('\n');
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.1.is_none()
            && let Err(e) = g.0.write_all(s.as_bytes()).and_then(|_| g.0.flush())
        {
            g.1 = Some(e);
        }
    }
}

/// Writes `bytes` to `path` (replacing it), created readable and writable by the owner only,
/// and flushed to disk: for files that name people (mappings, reports).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = open_owner_only(path, false)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn open_owner_only(path: &Path, append: bool) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

// ---------------------------------------------------------------------------------------------
// Reports from the state store

/// One mailbox in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailboxReport {
    /// Id in the state store.
    pub id: MailboxId,
    /// Source address.
    pub source: String,
    /// Target address.
    pub target: String,
    /// Folders known in the store.
    pub folders: u64,
    /// Items by status.
    pub counts: StatusCounts,
    /// The error that stopped the mailbox in its latest run, unless a later run went through
    /// every folder: the mailbox is then not done, whatever its item counts say.
    pub error: Option<String>,
    /// Messages the source holds (STATUS) that have no record yet because the mailbox
    /// stopped before listing them: pending too. `None` when the mailbox stopped and not even
    /// the source's count could be read (e.g. its login was refused): unknown.
    pub unlisted: Option<u64>,
    /// Throttling answers (429/503) the target gave this mailbox, over all runs.
    pub throttled_answers: u64,
    /// Times a `Retry-After` paused every request of this mailbox, over all runs.
    pub throttle_pauses: u64,
    /// What the target changed about folders (renames) and folders it refused, each once.
    pub folder_notes: Vec<String>,
    /// Messages the last `plan` counted to copy, if a plan ran for this mailbox.
    pub plan_messages: Option<u64>,
    /// Bytes the last `plan` counted to copy.
    pub plan_bytes: Option<u64>,
    /// Contacts, calendars and tasks: counts per source collection (`[dav]`).
    pub collections: Vec<crate::state::PimCollectionCounts>,
}

impl MailboxReport {
    /// Items still to do: planned ones plus those the source holds that were never listed;
    /// `None` when that is unknown (the mailbox stopped before even its count was read).
    pub fn pending(&self) -> Option<u64> {
        self.unlisted.map(|u| self.counts.planned + u)
    }

    /// [`MailboxReport::pending`] for people: the number, or "unknown".
    pub fn pending_text(&self) -> String {
        self.pending()
            .map(|n| n.to_string())
            .unwrap_or_else(|| "unknown".into())
    }
}

/// Whether the migration is done, as the report sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportState {
    /// Every planned item has its outcome, none failed, and no mailbox stopped with an error.
    Complete,
    /// Every planned item has its outcome and no mailbox stopped with an error, but items
    /// failed (each with its reason).
    HasFailures,
    /// A mailbox stopped with an error (its items may not even be listed yet) or items are
    /// still pending: not done.
    Incomplete,
}

/// A report built from the state store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// When built (RFC 3339, UTC).
    pub generated_at: String,
    /// All mailboxes together.
    pub totals: StatusCounts,
    /// Done or not: never [`ReportState::Complete`] while a mailbox has an error or an item
    /// is pending.
    pub state: ReportState,
    /// Per mailbox, by source address.
    pub mailboxes: Vec<MailboxReport>,
    /// Runs, oldest first.
    pub runs: Vec<RunSummary>,
    /// Skipped and failed items (at most [`Report::PROBLEM_LIMIT`]), for the HTML page.
    pub problems: Vec<ItemRecord>,
    /// How many skipped / failed items exist in total.
    pub problems_total: u64,
    /// Contacts, events and tasks of all mailboxes together, by status.
    pub pim_totals: StatusCounts,
}

const PAGE: u32 = 5_000;

impl Report {
    /// Most skipped / failed items listed in [`Report::problems`].
    pub const PROBLEM_LIMIT: usize = 1_000;

    /// The per-mailbox part of the report alone (counts, error, throttling, plan figures),
    /// without the scan for problem items: cheap enough to poll (the dashboard does).
    pub async fn mailbox_reports(store: &dyn StateStore) -> Result<Vec<MailboxReport>> {
        let events = store
            .events(&[
                "mailbox_error",
                "mailbox_completed",
                "target_throttled",
                "folder_note",
                "folder_failed",
                "source_holds",
            ])
            .await?;
        let plans = crate::plan::kept_plan(store).await?;
        let mut mailboxes = Vec::new();
        for m in store.mailboxes().await? {
            let counts = store.counts(Some(m.id)).await?;
            let folders = store.folders(m.id).await?.len() as u64;
            let collections = store.pim_counts(Some(m.id)).await?;
            let mut error = None;
            let mut source_holds: Option<u64> = None;
            let (mut throttled_answers, mut throttle_pauses) = (0, 0);
            let mut folder_notes: Vec<String> = Vec::new();
            for e in events.iter().filter(|e| e.mailbox == Some(m.id)) {
                match e.kind.as_str() {
                    "mailbox_error" => {
                        error = Some(e.detail.clone());
                        source_holds = None;
                    }
                    "mailbox_completed" => {
                        error = None;
                        source_holds = None;
                    }
                    "source_holds" => {
                        let v: serde_json::Value =
                            serde_json::from_str(&e.detail).unwrap_or_default();
                        source_holds = v["messages"].as_u64();
                    }
                    "folder_note" | "folder_failed" => {
                        if !folder_notes.contains(&e.detail) {
                            folder_notes.push(e.detail.clone());
                        }
                    }
                    _ => {
                        let v: serde_json::Value =
                            serde_json::from_str(&e.detail).unwrap_or_default();
                        throttled_answers += v["throttled_answers"].as_u64().unwrap_or(0);
                        throttle_pauses += v["pauses"].as_u64().unwrap_or(0);
                    }
                }
            }
            // Messages the source holds that have no record yet: the mailbox stopped before
            // it listed them, or no run has listed it since `plan` counted them. They are
            // pending too.
            let plan = plans.get(&m.source).copied();
            let unlisted = if error.is_some() {
                source_holds.map(|n| n.saturating_sub(counts.total()))
            } else if counts.total() == 0 {
                Some(plan.map_or(0, |p| p.messages))
            } else {
                Some(0)
            };
            mailboxes.push(MailboxReport {
                unlisted,
                id: m.id,
                source: m.source,
                target: m.target,
                folders,
                counts,
                error,
                throttled_answers,
                throttle_pauses,
                folder_notes,
                plan_messages: plan.map(|p| p.messages),
                plan_bytes: plan.map(|p| p.bytes),
                collections,
            });
        }
        Ok(mailboxes)
    }

    /// Builds the report.
    pub async fn build(store: &dyn StateStore) -> Result<Report> {
        let mailboxes = Self::mailbox_reports(store).await?;
        let totals = store.counts(None).await?;
        let mut pim_totals = StatusCounts::default();
        for c in mailboxes.iter().flat_map(|m| &m.collections) {
            pim_totals.planned += c.counts.planned;
            pim_totals.migrated += c.counts.migrated;
            pim_totals.skipped += c.counts.skipped;
            pim_totals.failed += c.counts.failed;
        }
        let state = if totals.planned + pim_totals.planned > 0
            || mailboxes
                .iter()
                .any(|m| m.error.is_some() || m.unlisted.is_some_and(|u| u > 0))
        {
            ReportState::Incomplete
        } else if totals.failed + pim_totals.failed > 0 {
            ReportState::HasFailures
        } else {
            ReportState::Complete
        };
        let mut problems = Vec::new();
        let mut after = 0;
        loop {
            let page = store.items(None, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for it in page {
                if matches!(it.status, ItemStatus::Skipped | ItemStatus::Failed)
                    && problems.len() < Self::PROBLEM_LIMIT
                {
                    problems.push(it);
                }
            }
            if problems.len() >= Self::PROBLEM_LIMIT {
                break;
            }
        }
        Ok(Report {
            generated_at: rfc3339_now(),
            totals,
            state,
            mailboxes,
            runs: store.runs().await?,
            problems_total: totals.skipped + totals.failed,
            problems,
            pim_totals,
        })
    }

    /// Items still to do over all mailboxes: planned ones plus those a plan or the source
    /// counted that no run has listed yet (mailboxes whose count is unknown add nothing).
    pub fn pending(&self) -> u64 {
        self.mailboxes
            .iter()
            .filter_map(MailboxReport::pending)
            .sum()
    }

    /// The per-mailbox JSON document (totals, mailboxes, runs).
    pub fn mailboxes_json(&self) -> String {
        #[derive(Serialize)]
        struct Doc<'a> {
            generated_at: &'a str,
            state: ReportState,
            totals: &'a StatusCounts,
            pim_totals: &'a StatusCounts,
            mailboxes: &'a [MailboxReport],
            runs: &'a [RunSummary],
        }
        serde_json::to_string_pretty(&Doc {
            generated_at: &self.generated_at,
            state: self.state,
            totals: &self.totals,
            pim_totals: &self.pim_totals,
            mailboxes: &self.mailboxes,
            runs: &self.runs,
        })
        .unwrap_or_default()
    }

    /// The per-mailbox CSV.
    pub fn mailboxes_csv(&self) -> String {
        let mut s = String::from(
            "source,target,folders,plan_messages,plan_bytes,planned,unlisted,migrated,skipped,failed,migrated_bytes,throttled_answers,error\r\n",
        );
        let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        for m in &self.mailboxes {
            let c = &m.counts;
            s.push_str(&csv_row(&[
                &m.source,
                &m.target,
                &m.folders.to_string(),
                &opt(m.plan_messages),
                &opt(m.plan_bytes),
                &m.pending_text(),
                &m.unlisted
                    .map(|u| u.to_string())
                    .unwrap_or_else(|| "unknown".into()),
                &c.migrated.to_string(),
                &c.skipped.to_string(),
                &c.failed.to_string(),
                &c.migrated_bytes.to_string(),
                &m.throttled_answers.to_string(),
                m.error.as_deref().unwrap_or(""),
            ]));
        }
        s
    }

    /// The self-contained HTML summary page (no external resources; every value escaped).
    pub fn html(&self) -> String {
        let mut h = String::new();
        h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
        h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        h.push_str("<title>o365-migrate report</title>\n<style>\n");
        h.push_str("body{font-family:system-ui,sans-serif;margin:2em;color:#222}\n");
        h.push_str("table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}\n");
        h.push_str("th{background:#f3f3f3}td.n{text-align:right}.failed{color:#b00020}.skipped{color:#8a6d00}.ok{color:#1b5e20}\n");
        h.push_str("</style></head><body>\n");
        h.push_str("<h1>o365-migrate report</h1>\n");
        h.push_str(&format!("<p>Generated {}</p>\n", esc(&self.generated_at)));
        let t = &self.totals;
        let state = match self.state {
            ReportState::Complete => "<span class=\"ok\">complete</span>".to_owned(),
            ReportState::HasFailures => "<span class=\"failed\">has failures</span>".to_owned(),
            ReportState::Incomplete => {
                let failed: Vec<String> = self
                    .mailboxes
                    .iter()
                    .filter(|m| m.error.is_some())
                    .map(|m| format!("{} ({} pending)", esc(&m.source), m.pending_text()))
                    .collect();
                let mut why = Vec::new();
                if !failed.is_empty() {
                    why.push(format!(
                        "mailboxes that stopped with an error: {}",
                        failed.join(", ")
                    ));
                }
                if self.pending() > 0 {
                    why.push(format!("{} items pending", self.pending()));
                }
                format!(
                    "<span class=\"failed\">incomplete</span> ({})",
                    why.join("; ")
                )
            }
        };
        h.push_str(&format!(
            "<h2>Totals: {state}</h2>\n<table><tr><th>Mailboxes</th><th>Migrated</th><th>Skipped</th><th>Failed</th><th>Pending</th><th>Migrated size</th></tr>\n<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr></table>\n",
            self.mailboxes.len(), t.migrated, t.skipped, t.failed, self.pending(), human_bytes(t.migrated_bytes)
        ));
        h.push_str("<h2>Mailboxes</h2>\n<table><tr><th>Source</th><th>Target</th><th>Folders</th><th>Migrated</th><th>Skipped</th><th>Failed</th><th>Pending</th><th>Size</th><th>Throttled</th><th>Error</th></tr>\n");
        for m in &self.mailboxes {
            let c = &m.counts;
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n{}\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"failed\">{}</td></tr>\n",
                esc(&m.source), esc(&m.target), m.folders, c.migrated, c.skipped,
                if c.failed > 0 { " failed" } else { "" }, c.failed, m.pending_text(), human_bytes(c.migrated_bytes),
                if m.throttle_pauses > 0 {
                    format!("{} answers, {} pauses", m.throttled_answers, m.throttle_pauses)
                } else {
                    m.throttled_answers.to_string()
                },
                esc(m.error.as_deref().unwrap_or(""))
            ));
        }
        h.push_str("</table>\n");
        let collections: Vec<(&str, &crate::state::PimCollectionCounts)> = self
            .mailboxes
            .iter()
            .flat_map(|m| m.collections.iter().map(|c| (m.source.as_str(), c)))
            .collect();
        if !collections.is_empty() {
            h.push_str("<h2>Contacts, calendars and tasks</h2>\n<table><tr><th>Mailbox</th><th>Kind</th><th>Source</th><th>Target</th><th>Migrated</th><th>Skipped</th><th>Failed</th><th>With properties not carried</th></tr>\n");
            for (mailbox, c) in collections {
                let k = &c.collection;
                h.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n{}\">{}</td><td class=\"n\">{}</td></tr>\n",
                    esc(mailbox),
                    esc(&k.kind),
                    esc(&k.display_name),
                    esc(if k.target_name.is_empty() { "(default)" } else { &k.target_name }),
                    c.counts.migrated,
                    c.counts.skipped,
                    if c.counts.failed > 0 { " failed" } else { "" },
                    c.counts.failed,
                    c.with_not_carried
                ));
            }
            h.push_str("</table>\n<p>Each item, its reason and what was not carried: contacts-calendars.csv / contacts-calendars.json.</p>\n");
        }
        let notes: Vec<(&str, &String)> = self
            .mailboxes
            .iter()
            .flat_map(|m| m.folder_notes.iter().map(|n| (m.source.as_str(), n)))
            .collect();
        if !notes.is_empty() {
            h.push_str("<h2>Folder changes</h2>\n<table><tr><th>Mailbox</th><th>What</th></tr>\n");
            for (mailbox, note) in notes {
                h.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td></tr>\n",
                    esc(mailbox),
                    esc(note)
                ));
            }
            h.push_str("</table>\n");
        }
        h.push_str(&format!(
            "<h2>Skipped and failed items ({} of {})</h2>\n",
            self.problems.len(),
            self.problems_total
        ));
        if self.problems.is_empty() {
            h.push_str("<p>None.</p>\n");
        } else {
            h.push_str("<table><tr><th>Mailbox</th><th>Folder</th><th>UID</th><th>Status</th><th>Reason</th><th>Subject</th><th>From</th><th>Date</th><th>Size</th></tr>\n");
            for it in &self.problems {
                let mailbox = self
                    .mailboxes
                    .iter()
                    .find(|m| m.id == it.mailbox)
                    .map(|m| m.source.as_str())
                    .unwrap_or("");
                h.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>\n",
                    esc(mailbox), esc(&it.folder_path), it.uid, it.status, it.status,
                    esc(it.reason.as_deref().unwrap_or("")),
                    esc(it.subject.as_deref().unwrap_or("")),
                    esc(it.sender.as_deref().unwrap_or("")),
                    it.internal_date.map(rfc3339).unwrap_or_default(),
                    it.size.map(human_bytes).unwrap_or_default(),
                ));
            }
            h.push_str("</table>\n");
            if (self.problems.len() as u64) < self.problems_total {
                h.push_str("<p>The full list is in items.csv / items.json.</p>\n");
            }
        }
        h.push_str("<h2>Runs</h2>\n<table><tr><th>Run</th><th>Kind</th><th>Started</th><th>Finished</th><th>Outcome</th><th>Migrated</th><th>Skipped</th><th>Failed</th></tr>\n");
        for r in &self.runs {
            h.push_str(&format!(
                "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>\n",
                r.id.0,
                r.kind.as_str(),
                rfc3339(r.started_at / 1000),
                r.finished_at.map(|f| rfc3339(f / 1000)).unwrap_or_default(),
                r.outcome.map(|o| o.as_str()).unwrap_or("did not finish"),
                r.counts.migrated,
                r.counts.skipped,
                r.counts.failed
            ));
        }
        h.push_str("</table>\n</body></html>\n");
        h
    }
}

/// Columns of the per-item CSV.
pub const ITEM_CSV_HEADER: &str = "mailbox,target,folder,uidvalidity,uid,status,reason,target_id,attempts,size,internal_date,message_id,subject,from,fingerprint\r\n";

/// Calls `f(source, target, item)` for every item, page by page (bounded memory).
async fn each_item(
    store: &dyn StateStore,
    mut f: impl FnMut(&str, &str, &ItemRecord) -> std::io::Result<()>,
) -> std::io::Result<u64> {
    let names = mailbox_names(store).await.map_err(std::io::Error::other)?;
    let mut n = 0;
    let mut after = 0;
    loop {
        let page = store
            .items(None, after, PAGE)
            .await
            .map_err(std::io::Error::other)?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for it in &page {
            let (src, tgt) = names
                .get(&it.mailbox)
                .map(|(s, t)| (s.as_str(), t.as_str()))
                .unwrap_or_default();
            f(src, tgt, it)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Streams every item as CSV (paged, bounded memory).
pub async fn write_items_csv(store: &dyn StateStore, w: &mut dyn Write) -> std::io::Result<u64> {
    w.write_all(ITEM_CSV_HEADER.as_bytes())?;
    each_item(store, |src, tgt, it| {
        w.write_all(
            csv_row(&[
                src,
                tgt,
                &it.folder_path,
                &it.uidvalidity.to_string(),
                &it.uid.to_string(),
                it.status.as_str(),
                it.reason.as_deref().unwrap_or(""),
                it.target_id.as_deref().unwrap_or(""),
                &it.attempts.to_string(),
                &it.size.map(|s| s.to_string()).unwrap_or_default(),
                &it.internal_date.map(rfc3339).unwrap_or_default(),
                it.message_id.as_deref().unwrap_or(""),
                it.subject.as_deref().unwrap_or(""),
                it.sender.as_deref().unwrap_or(""),
                it.fingerprint.as_deref().unwrap_or(""),
            ])
            .as_bytes(),
        )
    })
    .await
}

#[derive(Serialize)]
struct ItemJson<'a> {
    mailbox: &'a str,
    target: &'a str,
    #[serde(flatten)]
    item: &'a ItemRecord,
    internal_date_rfc3339: Option<String>,
}

/// Streams every item as one JSON array (paged, bounded memory).
pub async fn write_items_json(store: &dyn StateStore, w: &mut dyn Write) -> std::io::Result<u64> {
    w.write_all(b"[")?;
    let mut first = true;
    let n = each_item(store, |src, tgt, it| {
        w.write_all(if first { b"\n" } else { b",\n" })?;
        first = false;
        let doc = ItemJson {
            mailbox: src,
            target: tgt,
            item: it,
            internal_date_rfc3339: it.internal_date.map(rfc3339),
        };
        serde_json::to_writer(&mut *w, &doc).map_err(std::io::Error::other)
    })
    .await?;
    w.write_all(b"\n]\n")?;
    Ok(n)
}

async fn mailbox_names(
    store: &dyn StateStore,
) -> Result<std::collections::BTreeMap<MailboxId, (String, String)>> {
    Ok(store
        .mailboxes()
        .await?
        .into_iter()
        .map(|m| (m.id, (m.source, m.target)))
        .collect())
}

/// Columns of `contacts-calendars.csv`.
pub const PIM_CSV_HEADER: &str =
    "mailbox,kind,collection,target_collection,key,summary,status,reason,not_carried,target_id\r\n";

/// One contact, event or task in `contacts-calendars.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PimItemReport {
    /// Source mailbox.
    pub mailbox: String,
    /// `contacts` or `calendar` (the source collection's kind).
    pub kind: String,
    /// The source collection's display name.
    pub collection: String,
    /// The target collection (`(default)`: the mailbox's default one).
    pub target_collection: String,
    /// The item's key in its collection.
    pub key: String,
    /// Name, subject or title.
    pub summary: String,
    /// Its outcome.
    pub status: ItemStatus,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
    /// Each property the target could not hold.
    pub not_carried: Vec<String>,
    /// The target's id.
    pub target_id: Option<String>,
}

/// Every contact, event and task of the report's mailboxes.
pub async fn pim_item_rows(store: &dyn StateStore, report: &Report) -> Result<Vec<PimItemReport>> {
    let mut out = Vec::new();
    for m in &report.mailboxes {
        for c in &m.collections {
            let k = &c.collection;
            for it in store.pim_items(k.id).await? {
                out.push(PimItemReport {
                    mailbox: m.source.clone(),
                    kind: k.kind.clone(),
                    collection: k.display_name.clone(),
                    target_collection: if k.target_name.is_empty() {
                        "(default)".into()
                    } else {
                        k.target_name.clone()
                    },
                    key: it.key,
                    summary: it.summary,
                    status: it.status,
                    reason: it.reason,
                    not_carried: it.not_carried,
                    target_id: it.target_id,
                });
            }
        }
    }
    Ok(out)
}

/// Files written by [`write_reports`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenReports {
    /// `mailboxes.json`.
    pub mailboxes_json: PathBuf,
    /// `mailboxes.csv`.
    pub mailboxes_csv: PathBuf,
    /// `items.json`.
    pub items_json: PathBuf,
    /// `items.csv`.
    pub items_csv: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
    /// `fleet.json`: the work queue, every worker and the lease history, when workers ran
    /// (`None` otherwise).
    pub fleet_json: Option<PathBuf>,
    /// `contacts-calendars.json` and `.csv`: every contact, event and task with its status,
    /// reason and the properties not carried, when `[dav]` items exist (`None` otherwise).
    pub pim_items: Option<(PathBuf, PathBuf)>,
}

/// Writes all report files into `dir` (created if missing; files owner-only).
pub async fn write_reports(store: &dyn StateStore, dir: &Path) -> Result<WrittenReports> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Output {
        what: "report directory",
        path: dir.to_owned(),
        source,
    })?;
    let report = Report::build(store).await?;
    let fleet = crate::worker::Fleet::read(store).await?;
    let mut out = WrittenReports {
        mailboxes_json: dir.join("mailboxes.json"),
        mailboxes_csv: dir.join("mailboxes.csv"),
        items_json: dir.join("items.json"),
        items_csv: dir.join("items.csv"),
        html: dir.join("report.html"),
        fleet_json: None,
        pim_items: None,
    };
    let write = |what: &'static str, path: &Path, body: &str| -> Result<()> {
        let mut f = open_owner_only(path, false).map_err(|source| Error::Output {
            what,
            path: path.to_owned(),
            source,
        })?;
        f.write_all(body.as_bytes())
            .map_err(|source| Error::Output {
                what,
                path: path.to_owned(),
                source,
            })
    };
    write(
        "mailbox report",
        &out.mailboxes_json,
        &report.mailboxes_json(),
    )?;
    write(
        "mailbox report",
        &out.mailboxes_csv,
        &report.mailboxes_csv(),
    )?;
    write("HTML report", &out.html, &report.html())?;
    for (path, json) in [(&out.items_json, true), (&out.items_csv, false)] {
        let f = open_owner_only(path, false).map_err(|source| Error::Output {
            what: "item report",
            path: path.clone(),
            source,
        })?;
        let mut w = std::io::BufWriter::new(f);
        let r = if json {
            write_items_json(store, &mut w).await
        } else {
            write_items_csv(store, &mut w).await
        };
        r.and_then(|_| w.flush()).map_err(|source| Error::Output {
            what: "item report",
            path: path.clone(),
            source,
        })?;
    }
    let pim = pim_item_rows(store, &report).await?;
    if !pim.is_empty() {
        let json_path = dir.join("contacts-calendars.json");
        let csv_path = dir.join("contacts-calendars.csv");
        let body = serde_json::to_string_pretty(&pim).map_err(|e| Error::Pipeline {
            context: "writing contacts-calendars.json".into(),
            message: e.to_string(),
            hint: None,
        })?;
        write("contacts and calendar report", &json_path, &body)?;
        let mut csv = String::from(PIM_CSV_HEADER);
        for r in &pim {
            csv.push_str(&csv_row(&[
                &r.mailbox,
                &r.kind,
                &r.collection,
                &r.target_collection,
                &r.key,
                &r.summary,
                r.status.as_str(),
                r.reason.as_deref().unwrap_or(""),
                &r.not_carried.join(" | "),
                r.target_id.as_deref().unwrap_or(""),
            ]));
        }
        write("contacts and calendar report", &csv_path, &csv)?;
        out.pim_items = Some((json_path, csv_path));
    }
    if !fleet.is_empty() {
        let path = dir.join("fleet.json");
        let body = serde_json::to_string_pretty(&fleet).map_err(|e| Error::Pipeline {
            context: "writing fleet.json".into(),
            message: e.to_string(),
            hint: None,
        })?;
        write("fleet report", &path, &body)?;
        out.fleet_json = Some(path);
    }
    Ok(out)
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// One CSV record (RFC 4180, CRLF). Cells that a spreadsheet would run as a formula
/// (leading `=`, `+`, `-`, `@`, tab, CR) are prefixed with `'`.
pub fn csv_row(cells: &[&str]) -> String {
    let mut s = String::new();
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let guarded;
        let c = if c.starts_with(['=', '+', '-', '@', '\t', '\r']) && c.parse::<f64>().is_err() {
            guarded = format!("'{c}");
            guarded.as_str()
        } else {
            c
        };
        if c.contains([',', '"', '\n', '\r']) {
            s.push('"');
            s.push_str(&c.replace('"', "\"\""));
            s.push('"');
        } else {
            s.push_str(c);
        }
    }
    s.push_str("\r\n");
    s
}

/// A duration for people: `12s`, `3m 20s`, `1h 05m`, `2d 04h` (countdowns, ETAs, estimates).
pub fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s >= 86_400 {
        format!("{}d {:02}h", s / 86_400, s / 3600 % 24)
    } else if s >= 3600 {
        format!("{}h {:02}m", s / 3600, s / 60 % 60)
    } else if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// A size for people: `812 B`, `4.2 KB`, `2.6 MB`, `1.3 GB` (binary multiples, as mail clients
/// show them); exact byte counts stay in the JSON output.
pub fn human_bytes(b: u64) -> String {
    const U: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

#[cfg(test)]
mod tests;
