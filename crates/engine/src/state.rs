//! The state store: what was planned, migrated, skipped and failed, per item, across runs.
//!
//! [`StateStore`] is an object-safe trait with boxed futures, so the engine holds a
//! `Box<dyn StateStore>` / `Arc<dyn StateStore>` and a PostgreSQL backend can be added beside the
//! default [`SqlStore`] without changing callers. No sqlx type appears in this API.
//!
//! # How the pipeline uses it
//!
//! ```text
//! run      = begin_run(RunKind::Run)
//! mailbox  = upsert_mailbox(source, target)
//! for each folder:
//!     folder = upsert_folder(mailbox, source_path, target_path, UIDVALIDITY)
//!     if folder.previous_uidvalidity.is_some():      // UIDVALIDITY changed: UIDs mean nothing
//!         dedupe every candidate by find_by_fingerprint / find_by_message_id instead
//!     done   = done_uids(folder)                      // watermark + sets for this UIDVALIDITY
//!     uids   = UID SEARCH (run: ALL; rescan: UID watermark+1:*) minus done.done, plus done.failed
//!     mark_planned(folder, UIDVALIDITY, metadata of uids)   // BEFORE any outcome is recorded
//!     … fetch, normalize, write …
//!     record_batch(run, Batch { outcomes, events })   // one transaction per batch
//! finish_run(run, RunOutcome::Completed)
//! ```
//!
//! An item written to the target but not yet recorded when the process dies is found again by
//! the target-side dedupe (Message-ID / fingerprint listing) on the next run; an item recorded
//! as migrated is never downgraded by a later outcome, so it is never written twice.
//!
//! The *watermark* of a folder (`folders.highest_uid_done`) is the highest UID such that every
//! planned item at or below it has a final status (migrated, skipped or failed); `rescan` asks the
//! source only for UIDs above it and retries failed items.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

use crate::error::Result;

mod lock;
mod sql;
mod writer;

pub use lock::RunLock;
pub use sql::{Schema, SqlStore};
pub use writer::BatchWriter;

/// A boxed, sendable future (what [`StateStore`] methods return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A run's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct RunId(pub i64);

/// A mailbox's id in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct MailboxId(pub i64);

/// A folder's id in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct FolderId(pub i64);

/// What kind of run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RunKind {
    /// `o365-migrate run`.
    Run,
    /// `o365-migrate rescan`.
    Rescan,
    /// `o365-migrate verify`.
    Verify,
    /// `o365-migrate sync`: new items as `rescan` copies them, plus flag changes, moves and
    /// (when asked) deletions since the last pass.
    Sync,
}

impl RunKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Run => "run",
            RunKind::Rescan => "rescan",
            RunKind::Verify => "verify",
            RunKind::Sync => "sync",
        }
    }
    fn parse(s: &str) -> RunKind {
        match s {
            "rescan" => RunKind::Rescan,
            "verify" => RunKind::Verify,
            "sync" => RunKind::Sync,
            _ => RunKind::Run,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RunOutcome {
    /// Every planned item reached a final status.
    Completed,
    /// Stopped early (Ctrl-C, end of time window); resumable.
    Interrupted,
    /// Stopped by an error.
    Failed,
}

impl RunOutcome {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Completed => "completed",
            RunOutcome::Interrupted => "interrupted",
            RunOutcome::Failed => "failed",
        }
    }
    fn parse(s: &str) -> Option<RunOutcome> {
        match s {
            "completed" => Some(RunOutcome::Completed),
            "interrupted" => Some(RunOutcome::Interrupted),
            "failed" => Some(RunOutcome::Failed),
            _ => None,
        }
    }
}

/// An item's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    /// Planned, no outcome yet.
    Planned,
    /// Written to the target (final).
    Migrated,
    /// Deliberately not migrated, with a reason (final).
    Skipped,
    /// Failed, with a reason; retried by `rescan`.
    Failed,
}

impl ItemStatus {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Planned => "planned",
            ItemStatus::Migrated => "migrated",
            ItemStatus::Skipped => "skipped",
            ItemStatus::Failed => "failed",
        }
    }
    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<ItemStatus> {
        match s {
            "planned" => Some(ItemStatus::Planned),
            "migrated" => Some(ItemStatus::Migrated),
            "skipped" => Some(ItemStatus::Skipped),
            "failed" => Some(ItemStatus::Failed),
            _ => None,
        }
    }
}

impl fmt::Display for ItemStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Metadata known about a message before it is fetched (from the metadata FETCH).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemMeta {
    /// Size in bytes (RFC822.SIZE).
    pub size: Option<u64>,
    /// INTERNALDATE as Unix seconds.
    pub internal_date: Option<i64>,
    /// The normalized-content fingerprint (hex), when known.
    pub fingerprint: Option<String>,
    /// The Message-ID header, when present.
    pub message_id: Option<String>,
    /// The subject (for reports and verify listings).
    pub subject: Option<String>,
    /// The From address (for reports and verify listings).
    pub sender: Option<String>,
    /// The flags and keywords as copied to the target ([`flags_text`]), for `sync`.
    pub flags: Option<String>,
}

/// The one stored form of an item's IMAP flags: `\Recent` left out, system flags and keywords
/// sorted (case kept), one space between. Two listings of the same state give the same text.
pub fn flags_text<S: AsRef<str>>(flags: &[S]) -> String {
    let mut v: Vec<&str> = flags
        .iter()
        .map(|f| f.as_ref().trim())
        .filter(|f| !f.is_empty() && !f.eq_ignore_ascii_case("\\Recent"))
        .collect();
    v.sort_unstable_by_key(|f| (f.to_ascii_lowercase(), f.to_string()));
    v.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    v.join(" ")
}

/// An item to mark as planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedItem {
    /// Source UID.
    pub uid: u32,
    /// Metadata.
    pub meta: ItemMeta,
}

/// The outcome of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemOutcome {
    /// The folder.
    pub folder: FolderId,
    /// UIDVALIDITY the UID belongs to.
    pub uidvalidity: u32,
    /// Source UID.
    pub uid: u32,
    /// Final status (`Planned` is rejected).
    pub status: ItemStatus,
    /// The target's id for the written item, when migrated.
    pub target_id: Option<String>,
    /// Why skipped / failed (required for those), or a note.
    pub reason: Option<String>,
    /// Metadata learned while processing (merged with what was planned).
    pub meta: ItemMeta,
}

/// An event stored with a batch (for `status` and audits). Never a secret in `detail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// Mailbox it concerns, if any.
    pub mailbox: Option<MailboxId>,
    /// Short kind, e.g. `throttled`, `folder_done`, `uidvalidity_changed`.
    pub kind: String,
    /// Free text or JSON.
    pub detail: String,
}

/// An event as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredEvent {
    /// Row id: ascending in the order events were stored (for following new ones).
    pub id: i64,
    /// The run that recorded it.
    pub run: Option<RunId>,
    /// When, Unix milliseconds.
    pub at: i64,
    /// Mailbox it concerns, if any.
    pub mailbox: Option<MailboxId>,
    /// Short kind (`mailbox_error`, `mailbox_completed`, `target_throttled`, ...).
    pub kind: String,
    /// Free text or JSON.
    pub detail: String,
}

/// Item outcomes and events written in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Outcomes.
    pub outcomes: Vec<ItemOutcome>,
    /// Events.
    pub events: Vec<EventRecord>,
}

/// A folder's state after [`StateStore::upsert_folder`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FolderState {
    /// Id.
    pub id: FolderId,
    /// Current UIDVALIDITY.
    pub uidvalidity: u32,
    /// The UIDVALIDITY stored before, when it changed (dedupe by fingerprint then).
    pub previous_uidvalidity: Option<u32>,
    /// Watermark for the current UIDVALIDITY.
    pub highest_uid_done: u32,
    /// The source's HIGHESTMODSEQ (CONDSTORE) up to which `sync` has carried every change;
    /// `None` before the first pass, on servers without CONDSTORE, after a UIDVALIDITY change.
    pub highest_modseq: Option<u64>,
}

/// A migrated item as `sync` compares it with the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncItem {
    /// Row id.
    pub id: i64,
    /// Source UID (under the folder's current UIDVALIDITY).
    pub uid: u32,
    /// The target's id.
    pub target_id: Option<String>,
    /// The item key.
    pub fingerprint: Option<String>,
    /// Size in bytes.
    pub size: Option<u64>,
    /// The flags last carried to the target ([`flags_text`]); `None` when not known (an item
    /// migrated before this was recorded).
    pub flags: Option<String>,
    /// Deleted at the source and kept in the target by an earlier `sync`.
    pub kept: bool,
}

/// What happened to a migrated item the source no longer has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Gone {
    /// Deleted at the source; kept in the target (the default: `sync` never deletes unless
    /// asked).
    Kept,
    /// Deleted at the source and, with `--propagate-deletes`, in the target.
    Deleted,
}

impl Gone {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Gone::Kept => "kept",
            Gone::Deleted => "deleted",
        }
    }
}

/// One change `sync` carried to the target, recorded in one transaction with its event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncChange {
    /// New flags for item `id`.
    Flags {
        /// Row id.
        id: i64,
        /// [`flags_text`].
        flags: String,
    },
    /// Item `id` moved: it now lives at `folder`/`uidvalidity`/`uid` with `target_id`.
    Moved {
        /// Row id.
        id: i64,
        /// The destination folder.
        folder: FolderId,
        /// Its UIDVALIDITY.
        uidvalidity: u32,
        /// The item's UID there.
        uid: u32,
        /// The item's id in the target after the move.
        target_id: String,
        /// Its flags there ([`flags_text`]).
        flags: String,
    },
    /// Item `id` is gone from the source.
    Gone {
        /// Row id.
        id: i64,
        /// Kept or deleted in the target.
        gone: Gone,
    },
}

/// UIDs of one folder under its current UIDVALIDITY.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DoneUids {
    /// The UIDVALIDITY these belong to.
    pub uidvalidity: u32,
    /// Every planned item at or below this UID has a final status.
    pub watermark: u32,
    /// Migrated or skipped (do not touch again), ascending.
    pub done: Vec<u32>,
    /// Failed (retry), ascending.
    pub failed: Vec<u32>,
    /// Planned without outcome (retry), ascending.
    pub planned: Vec<u32>,
}

/// A stored mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailboxRecord {
    /// Id.
    pub id: MailboxId,
    /// Source address / login.
    pub source: String,
    /// Target address.
    pub target: String,
}

/// A stored folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FolderRecord {
    /// Id.
    pub id: FolderId,
    /// Mailbox.
    pub mailbox: MailboxId,
    /// Source path.
    pub source_path: String,
    /// Target path as displayed (e.g. `#SentItems#/2019`).
    pub target_path: String,
    /// Current UIDVALIDITY.
    pub uidvalidity: u32,
    /// Watermark.
    pub highest_uid_done: u32,
}

/// A stored item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemRecord {
    /// Row id (stable; for paging).
    pub id: i64,
    /// Mailbox.
    #[serde(rename = "mailbox_id")]
    pub mailbox: MailboxId,
    /// Folder.
    #[serde(rename = "folder_id")]
    pub folder: FolderId,
    /// Source folder path.
    pub folder_path: String,
    /// UIDVALIDITY.
    pub uidvalidity: u32,
    /// UID.
    pub uid: u32,
    /// Status.
    pub status: ItemStatus,
    /// Reason for skipped / failed.
    pub reason: Option<String>,
    /// Target id when migrated.
    pub target_id: Option<String>,
    /// Attempts so far (outcomes recorded).
    pub attempts: u32,
    /// Size in bytes.
    pub size: Option<u64>,
    /// INTERNALDATE, Unix seconds.
    pub internal_date: Option<i64>,
    /// Fingerprint.
    pub fingerprint: Option<String>,
    /// Message-ID.
    pub message_id: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// From.
    pub sender: Option<String>,
    /// Last change, Unix milliseconds.
    pub updated_at: i64,
}

/// Counts by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    /// Planned without outcome.
    pub planned: u64,
    /// Migrated.
    pub migrated: u64,
    /// Skipped.
    pub skipped: u64,
    /// Failed.
    pub failed: u64,
    /// Bytes migrated (sum of sizes of migrated items).
    pub migrated_bytes: u64,
}

impl StatusCounts {
    /// All items.
    pub fn total(&self) -> u64 {
        self.planned + self.migrated + self.skipped + self.failed
    }
}

/// A ledger search ([`StateStore::search_items`]): which items, and which page. Text filters
/// match case-insensitively anywhere in the field; all given filters must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemQuery {
    /// Only this mailbox.
    pub mailbox: Option<MailboxId>,
    /// Only this folder.
    pub folder: Option<FolderId>,
    /// Only items with this status.
    pub status: Option<ItemStatus>,
    /// Subject contains.
    pub subject: Option<String>,
    /// Sender (From) contains.
    pub sender: Option<String>,
    /// Skip / failure reason contains.
    pub reason: Option<String>,
    /// Source folder path contains.
    pub folder_path: Option<String>,
    /// Any of subject, sender, reason and folder path contains.
    pub text: Option<String>,
    /// INTERNALDATE at or after, Unix seconds.
    pub since: Option<i64>,
    /// INTERNALDATE before, Unix seconds.
    pub before: Option<i64>,
    /// Items with a row id greater than this (page on with [`ItemPage::next_after`]).
    pub after_id: i64,
    /// Page size (at most 500; 0 means 50).
    pub limit: u32,
}

/// One page of a ledger search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemPage {
    /// The items, by row id.
    pub items: Vec<ItemRecord>,
    /// How many items match the filters over all pages.
    pub total: u64,
    /// The `after_id` of the next page, when there is one.
    pub next_after: Option<i64>,
}

/// Counts per status of one folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FolderCounts {
    /// The folder.
    pub folder: FolderId,
    /// Its items by status.
    pub counts: StatusCounts,
}

/// Row id of a contacts / calendar / task collection of a mailbox (issue 18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PimCollectionId(pub i64);

/// A source collection (address book, calendar, task list, or a local file) and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PimCollectionRow {
    /// Its row id (ignored by [`StateStore::upsert_pim_collection`]).
    pub id: PimCollectionId,
    /// `contacts`, `calendar` or `tasks`.
    pub kind: String,
    /// The source's href (DAV) or file path: the collection's key within its mailbox.
    pub source_href: String,
    /// The source's display name.
    pub display_name: String,
    /// The target collection's name (empty: the mailbox's default one).
    pub target_name: String,
    /// The RFC 6578 sync token of the last complete pass, if the source offers one.
    pub sync_token: Option<String>,
}

/// One contact, event series or task of a collection, as the state store remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PimItemRow {
    /// The item's key in its collection: the DAV href, `#` and the UID when a resource holds
    /// several items (a local file: its path and the UID or line).
    pub key: String,
    /// The source's ETag when it was read.
    pub etag: Option<String>,
    /// The `pim1:` fingerprint of the source item written (None: it could not be read).
    pub fingerprint: Option<String>,
    /// A name for people: the contact's name or the event's subject.
    pub summary: String,
    /// The target's id of the written item.
    pub target_id: Option<String>,
    /// The target id of an earlier version still to delete (the source item changed; the new
    /// version is written first).
    pub old_target_id: Option<String>,
    /// Migrated, skipped or failed (planned: written, not yet confirmed).
    pub status: ItemStatus,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
    /// What the target could not hold, one sentence each (the report lists them).
    pub not_carried: Vec<String>,
}

/// Counts of one collection ([`StateStore::pim_counts`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PimCollectionCounts {
    /// The mailbox.
    pub mailbox: MailboxId,
    /// The collection.
    pub collection: PimCollectionRow,
    /// Its items by status.
    pub counts: StatusCounts,
    /// Items with at least one property not carried.
    pub with_not_carried: u64,
}

/// Items migrated in one time bucket ([`StateStore::migrated_over_time`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ThroughputPoint {
    /// Bucket start, Unix milliseconds.
    pub at: i64,
    /// Items recorded migrated in the bucket.
    pub items: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// A run and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    /// Id.
    pub id: RunId,
    /// Kind.
    pub kind: RunKind,
    /// Start, Unix milliseconds.
    pub started_at: i64,
    /// End, Unix milliseconds (None while running or after a crash).
    pub finished_at: Option<i64>,
    /// How it ended (None while running or after a crash).
    pub outcome: Option<RunOutcome>,
    /// Outcomes recorded in this run (planned = 0).
    pub counts: StatusCounts,
}

/// A worker's hold on one mailbox of a shared migration (see [`StateStore::lease_mailbox`]).
/// Its `generation` is a fencing token: once another worker has taken the mailbox over, every
/// renewal or end of this lease is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// The mailbox.
    pub mailbox: MailboxId,
    /// Its source address.
    pub source: String,
    /// The worker holding it.
    pub worker: String,
    /// How many times the mailbox has been leased, this lease included.
    pub generation: i64,
    /// When the lease expires unless renewed, Unix milliseconds of the store's clock.
    pub until: i64,
}

/// How a lease ends ([`StateStore::end_lease`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEnd {
    /// The mailbox is migrated: no worker takes it again (until it is requeued).
    Done,
    /// The mailbox failed as a whole (the reason is kept); no worker takes it again until it
    /// is requeued.
    Failed(String),
    /// The worker stops (SIGTERM, lost source): another worker may take the mailbox at once.
    Released,
}

/// Where a mailbox stands in the shared work queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkState {
    /// Not finished: free, leased, or held by a lease that has expired.
    Waiting,
    /// Migrated by a worker.
    Done,
    /// Failed as a whole.
    Failed,
}

impl WorkState {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkState::Waiting => "waiting",
            WorkState::Done => "done",
            WorkState::Failed => "failed",
        }
    }

    /// Parses the stored text.
    pub fn parse(s: &str) -> Option<WorkState> {
        match s {
            "waiting" => Some(WorkState::Waiting),
            "done" => Some(WorkState::Done),
            "failed" => Some(WorkState::Failed),
            _ => None,
        }
    }
}

/// Which part of the work queue [`StateStore::work_queue`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkScope {
    /// Every mailbox.
    All,
    /// The waiting mailboxes a worker holds, or held until its lease expired, and the failed
    /// ones: what a person watching needs to see.
    HeldOrFailed,
}

/// The work queue counted ([`StateStore::work_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WorkCounts {
    /// Mailboxes not finished (free, leased or stuck).
    pub waiting: u64,
    /// Of the waiting ones, those a live lease holds.
    pub leased: u64,
    /// Of the waiting ones, those whose lease expired and that no worker has taken over yet.
    pub stuck: u64,
    /// Mailboxes done.
    pub done: u64,
    /// Mailboxes failed.
    pub failed: u64,
}

impl WorkCounts {
    /// Every mailbox in the queue.
    pub fn total(&self) -> u64 {
        self.waiting + self.done + self.failed
    }
}

/// One mailbox of the shared work queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkRow {
    /// The mailbox.
    pub mailbox: MailboxId,
    /// Its source address.
    pub source: String,
    /// Where it stands.
    pub state: WorkState,
    /// The worker holding (or last holding, if expired) its lease, while waiting.
    pub worker: Option<String>,
    /// The lease generation (0: never leased).
    pub generation: i64,
    /// When the current lease expires (0: none).
    pub lease_until: i64,
    /// Why it failed.
    pub reason: Option<String>,
    /// Last change, Unix milliseconds.
    pub updated_at: i64,
}

/// One lease as the history keeps it: who held a mailbox from when to when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseSpan {
    /// The mailbox.
    pub mailbox: MailboxId,
    /// The worker.
    pub worker: String,
    /// The lease generation.
    pub generation: i64,
    /// Taken, Unix milliseconds of the store's clock.
    pub acquired_at: i64,
    /// Ended (for an expired lease: when it expired); `None` while held.
    pub ended_at: Option<i64>,
    /// How it ended: `done`, `failed`, `released` or `expired`.
    pub ended: Option<String>,
}

/// A worker process as it reports itself ([`StateStore::worker_seen`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerRecord {
    /// Its id (`host:pid` unless given).
    pub id: String,
    /// The machine.
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// Started, Unix milliseconds.
    pub started_at: i64,
    /// Last heartbeat, Unix milliseconds of the store's clock.
    pub heartbeat_at: i64,
    /// When it stopped cleanly; `None` while running or after a crash.
    pub stopped_at: Option<i64>,
    /// Items it recorded migrated (its runs' counters).
    pub migrated: u64,
    /// Bytes it migrated.
    pub migrated_bytes: u64,
}

/// The state store. Object-safe: use as `Box<dyn StateStore>` / `Arc<dyn StateStore>`.
pub trait StateStore: Send + Sync {
    /// Takes this state's run lock: never two runs (or a run and a `provision`) on one state.
    /// Fails at once, naming the lock, when another process holds it; released when the
    /// returned guard is dropped.
    fn lock_runs(&self) -> BoxFuture<'_, Result<RunLock>>;
    /// Starts a run.
    fn begin_run(&self, kind: RunKind) -> BoxFuture<'_, Result<RunId>>;
    /// Ends a run.
    fn finish_run(&self, run: RunId, outcome: RunOutcome) -> BoxFuture<'_, Result<()>>;
    /// Creates or updates a mailbox pair (keyed by source).
    fn upsert_mailbox<'a>(
        &'a self,
        source: &'a str,
        target: &'a str,
    ) -> BoxFuture<'a, Result<MailboxId>>;
    /// Every migrated item of `folder` under its current UIDVALIDITY that the source still had
    /// at the last pass, and those an earlier pass kept in the target after the source deleted
    /// them ([`SyncItem::kept`]), by UID (for `sync`).
    fn sync_items(&self, folder: FolderId) -> BoxFuture<'_, Result<Vec<SyncItem>>>;
    /// Records changes `sync` carried to the target, with their events, in one transaction.
    fn record_sync<'a>(
        &'a self,
        run: RunId,
        changes: &'a [SyncChange],
        events: &'a [EventRecord],
    ) -> BoxFuture<'a, Result<()>>;
    /// Stores the HIGHESTMODSEQ up to which `folder`'s changes are carried; with `if_unset`
    /// only when none is stored (the first `run` of a folder).
    fn set_highest_modseq(
        &self,
        folder: FolderId,
        modseq: Option<u64>,
        if_unset: bool,
    ) -> BoxFuture<'_, Result<()>>;
    /// Target ids of `folder`'s items the source deleted that the target keeps (`verify`
    /// expects them in the target beyond the source's items).
    fn kept_target_ids(&self, folder: FolderId) -> BoxFuture<'_, Result<Vec<String>>>;
    /// Creates or updates a folder (keyed by mailbox + source path); reports a UIDVALIDITY change.
    fn upsert_folder<'a>(
        &'a self,
        mailbox: MailboxId,
        source_path: &'a str,
        target_path: &'a str,
        uidvalidity: u32,
    ) -> BoxFuture<'a, Result<FolderState>>;
    /// Marks items planned (existing rows keep their status; missing metadata is filled in).
    /// Returns how many were new.
    fn mark_planned<'a>(
        &'a self,
        folder: FolderId,
        uidvalidity: u32,
        items: &'a [PlannedItem],
    ) -> BoxFuture<'a, Result<u64>>;
    /// Records outcomes and events in one transaction: all or nothing. A migrated item is never
    /// downgraded by a later outcome.
    fn record_batch<'a>(&'a self, run: RunId, batch: &'a Batch) -> BoxFuture<'a, Result<()>>;
    /// Done / failed / planned UIDs and the watermark under the folder's current UIDVALIDITY.
    fn done_uids(&self, folder: FolderId) -> BoxFuture<'_, Result<DoneUids>>;
    /// Failed items (all mailboxes when `None`), oldest first, at most `limit`.
    fn failed_items(
        &self,
        mailbox: Option<MailboxId>,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<ItemRecord>>>;
    /// Migrated items of a mailbox with this fingerprint (any folder, any UIDVALIDITY).
    fn find_by_fingerprint<'a>(
        &'a self,
        mailbox: MailboxId,
        fingerprint: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ItemRecord>>>;
    /// Migrated items of a mailbox with this Message-ID (any folder, any UIDVALIDITY).
    fn find_by_message_id<'a>(
        &'a self,
        mailbox: MailboxId,
        message_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ItemRecord>>>;
    /// All mailboxes, by source address.
    fn mailboxes(&self) -> BoxFuture<'_, Result<Vec<MailboxRecord>>>;
    /// A mailbox's folders, by source path.
    fn folders(&self, mailbox: MailboxId) -> BoxFuture<'_, Result<Vec<FolderRecord>>>;
    /// Items with id greater than `after_id`, ascending, at most `limit` (page through with the
    /// last id). `None` = all mailboxes.
    fn items(
        &self,
        mailbox: Option<MailboxId>,
        after_id: i64,
        limit: u32,
    ) -> BoxFuture<'_, Result<Vec<ItemRecord>>>;
    /// A page of the item ledger matching `query` (see [`ItemQuery`]), with the total count.
    fn search_items<'a>(&'a self, query: &'a ItemQuery) -> BoxFuture<'a, Result<ItemPage>>;
    /// Counts per status for each folder of a mailbox that has items.
    fn folder_counts(&self, mailbox: MailboxId) -> BoxFuture<'_, Result<Vec<FolderCounts>>>;
    /// Creates or updates a source collection of `mailbox` (keyed by its href) and returns its
    /// id; the stored sync token is kept.
    fn upsert_pim_collection<'a>(
        &'a self,
        mailbox: MailboxId,
        collection: &'a PimCollectionRow,
    ) -> BoxFuture<'a, Result<PimCollectionId>>;
    /// The collections recorded for `mailbox`.
    fn pim_collections(&self, mailbox: MailboxId) -> BoxFuture<'_, Result<Vec<PimCollectionRow>>>;
    /// Stores the sync token of a complete pass over a collection (`None` forgets it).
    fn set_pim_sync_token<'a>(
        &'a self,
        collection: PimCollectionId,
        token: Option<&'a str>,
    ) -> BoxFuture<'a, Result<()>>;
    /// Every item recorded for a collection.
    fn pim_items(&self, collection: PimCollectionId) -> BoxFuture<'_, Result<Vec<PimItemRow>>>;
    /// Records one item's outcome (keyed by collection and item key), in its own transaction.
    fn record_pim_item<'a>(
        &'a self,
        run: RunId,
        collection: PimCollectionId,
        item: &'a PimItemRow,
    ) -> BoxFuture<'a, Result<()>>;
    /// Counts per collection, of one mailbox or all.
    fn pim_counts(
        &self,
        mailbox: Option<MailboxId>,
    ) -> BoxFuture<'_, Result<Vec<PimCollectionCounts>>>;
    /// Items recorded migrated since `since_ms`, per `bucket_ms` (oldest first; empty buckets
    /// left out). `None` = all mailboxes.
    fn migrated_over_time(
        &self,
        mailbox: Option<MailboxId>,
        since_ms: i64,
        bucket_ms: i64,
    ) -> BoxFuture<'_, Result<Vec<ThroughputPoint>>>;
    /// Events with a row id greater than `after_id`, oldest first, at most `limit`.
    fn events_after(&self, after_id: i64, limit: u32) -> BoxFuture<'_, Result<Vec<StoredEvent>>>;
    /// Whether some process (this one included) holds the run lock now: a run, rescan, sync
    /// or provision is working on this state.
    fn run_lock_held(&self) -> BoxFuture<'_, Result<bool>>;
    /// Counts per status (all mailboxes when `None`).
    fn counts(&self, mailbox: Option<MailboxId>) -> BoxFuture<'_, Result<StatusCounts>>;
    /// One run's summary.
    fn run_summary(&self, run: RunId) -> BoxFuture<'_, Result<RunSummary>>;
    /// All runs, oldest first.
    fn runs(&self) -> BoxFuture<'_, Result<Vec<RunSummary>>>;
    /// The events of the given kinds (all kinds when empty), oldest first.
    fn events<'a>(&'a self, kinds: &'a [&'a str]) -> BoxFuture<'a, Result<Vec<StoredEvent>>>;
    /// Stores a named record (a JSON document the engine keeps between commands, such as the
    /// pairing automatch decided or the last plan), replacing the previous one of that name.
    /// `None` deletes it.
    fn put_record<'a>(&'a self, name: &'a str, value: Option<&'a str>)
    -> BoxFuture<'a, Result<()>>;
    /// A named record stored by [`StateStore::put_record`], if any.
    fn record<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<StoredRecord>>>;

    /// Takes the run lock shared: any number of workers together, but never with a `run`,
    /// `rescan`, `sync` or `provision` (which take it exclusively). Fails at once, naming the
    /// lock, when a run holds it.
    fn lock_workers(&self) -> BoxFuture<'_, Result<RunLock>>;
    /// The store's clock, Unix milliseconds: leases are timed by it, so workers on machines
    /// whose clocks disagree still agree on when a lease expires.
    fn clock(&self) -> BoxFuture<'_, Result<i64>>;
    /// Puts mailboxes in the work queue (those already there keep their state). Returns how
    /// many were new.
    fn enqueue_mailboxes<'a>(&'a self, mailboxes: &'a [MailboxId]) -> BoxFuture<'a, Result<u64>>;
    /// Puts done and failed mailboxes back to waiting (a new pass). Returns how many.
    fn requeue_mailboxes(&self) -> BoxFuture<'_, Result<u64>>;
    /// Leases one waiting mailbox that no live lease holds (never leased first, then those
    /// whose lease expired, which are taken over) to `worker` for `ttl_ms`; `None` when there
    /// is none, or when `max_live` leases are live already (over all workers). Compare-and-set
    /// on the lease generation: two workers never get the same one.
    fn lease_mailbox<'a>(
        &'a self,
        worker: &'a str,
        ttl_ms: i64,
        max_live: Option<u64>,
    ) -> BoxFuture<'a, Result<Option<Lease>>>;
    /// Books `requests` and `bytes` in the shared budget of time slot `slot` (a tenth of a
    /// second of the store's clock, say) if the slot's totals stay within `max_requests` /
    /// `max_bytes` — or the slot is still empty, so that one request larger than a whole slot
    /// still goes. `false`: the slot is full; wait for the next. Slots more than sixty before
    /// the one booked are forgotten.
    fn reserve_budget(
        &self,
        slot: i64,
        requests: u64,
        bytes: u64,
        max_requests: u64,
        max_bytes: u64,
    ) -> BoxFuture<'_, Result<bool>>;
    /// Extends a lease to now + `ttl_ms`; `Ok(None)` when it was lost (taken over or ended).
    fn renew_lease<'a>(
        &'a self,
        lease: &'a Lease,
        ttl_ms: i64,
    ) -> BoxFuture<'a, Result<Option<i64>>>;
    /// Ends a lease; `false` when it had been lost meanwhile (nothing changes then).
    fn end_lease<'a>(&'a self, lease: &'a Lease, end: &'a LeaseEnd) -> BoxFuture<'a, Result<bool>>;
    /// The work queue, by source address: all of it, or only the mailboxes a worker holds
    /// (or held, when its lease expired) and the failed ones — a few per worker however long
    /// the queue is.
    fn work_queue(&self, scope: WorkScope) -> BoxFuture<'_, Result<Vec<WorkRow>>>;
    /// The work queue counted (one aggregate query, however long the queue is), with leases
    /// live or expired as of `now` (the store's clock, [`StateStore::clock`]).
    fn work_counts(&self, now: i64) -> BoxFuture<'_, Result<WorkCounts>>;
    /// Every lease ever taken, by mailbox and generation.
    fn lease_history(&self) -> BoxFuture<'_, Result<Vec<LeaseSpan>>>;
    /// Records a worker's heartbeat (`stopped` when it stops cleanly).
    fn worker_seen<'a>(
        &'a self,
        id: &'a str,
        host: &'a str,
        pid: u32,
        stopped: bool,
    ) -> BoxFuture<'a, Result<()>>;
    /// Every worker that ever reported, with what its runs migrated, by id.
    fn workers(&self) -> BoxFuture<'_, Result<Vec<WorkerRecord>>>;
    /// Marks a run as a worker's (for throughput per worker).
    fn tag_run<'a>(&'a self, run: RunId, worker: &'a str) -> BoxFuture<'a, Result<()>>;
}

/// Now, in Unix milliseconds (the store's timestamps).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Stores `value` as JSON in the named record (see [`StateStore::put_record`]).
pub(crate) async fn put_json(
    store: &dyn StateStore,
    name: &str,
    value: &impl Serialize,
) -> Result<()> {
    let doc = serde_json::to_string(value).map_err(|e| crate::error::Error::Pipeline {
        context: format!("keeping the state record `{name}`"),
        message: e.to_string(),
        hint: None,
    })?;
    store.put_record(name, Some(&doc)).await
}

/// A named record and when it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// The stored document.
    pub value: String,
    /// When it was stored, Unix milliseconds.
    pub updated_at: i64,
}

/// SQL dialects the schema is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// SQLite 3.35+.
    Sqlite,
    /// PostgreSQL 12+.
    Postgres,
}

/// Versioned schema migrations, `(version, sql)`, rendered for a dialect. The SQL uses only
/// portable types (BIGINT, INTEGER, VARCHAR, TEXT) and `ON CONFLICT` upserts that both SQLite and
/// PostgreSQL accept; only the auto-increment primary key differs.
pub fn migrations(dialect: Dialect) -> Vec<(u32, String)> {
    let id = match dialect {
        Dialect::Sqlite => "INTEGER PRIMARY KEY",
        Dialect::Postgres => "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    };
    MIGRATIONS
        .iter()
        .map(|(v, sql)| (*v, sql.replace("{ID}", id)))
        .collect()
}

const MIGRATIONS: &[(u32, &str)] = &[
    (
        1,
        r#"
CREATE TABLE runs (
    id {ID},
    kind VARCHAR(16) NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    outcome VARCHAR(16),
    migrated BIGINT NOT NULL DEFAULT 0,
    skipped BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    migrated_bytes BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE mailboxes (
    id {ID},
    source_address VARCHAR(320) NOT NULL UNIQUE,
    target_address VARCHAR(320) NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE folders (
    id {ID},
    mailbox_id BIGINT NOT NULL REFERENCES mailboxes(id),
    source_path TEXT NOT NULL,
    target_path TEXT NOT NULL,
    uidvalidity BIGINT NOT NULL,
    highest_uid_done BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    UNIQUE (mailbox_id, source_path)
);
CREATE TABLE items (
    id {ID},
    folder_id BIGINT NOT NULL REFERENCES folders(id),
    uidvalidity BIGINT NOT NULL,
    uid BIGINT NOT NULL,
    fingerprint VARCHAR(128),
    message_id TEXT,
    subject TEXT,
    sender TEXT,
    size BIGINT,
    internal_date BIGINT,
    target_id TEXT,
    status VARCHAR(16) NOT NULL,
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    run_id BIGINT REFERENCES runs(id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (folder_id, uidvalidity, uid)
);
CREATE INDEX items_status ON items (status);
CREATE INDEX items_fingerprint ON items (fingerprint);
CREATE INDEX items_message_id ON items (message_id);
CREATE TABLE events (
    id {ID},
    run_id BIGINT REFERENCES runs(id),
    at BIGINT NOT NULL,
    mailbox_id BIGINT REFERENCES mailboxes(id),
    kind VARCHAR(32) NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX events_run ON events (run_id);
"#,
    ),
    (
        2,
        r#"
CREATE TABLE records (
    name VARCHAR(64) NOT NULL PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
"#,
    ),
    (
        3,
        r#"
ALTER TABLE items ADD COLUMN flags TEXT;
ALTER TABLE items ADD COLUMN gone VARCHAR(16);
ALTER TABLE items ADD COLUMN gone_at BIGINT;
ALTER TABLE folders ADD COLUMN highest_modseq BIGINT;
"#,
    ),
    (
        4,
        r#"
CREATE TABLE work (
    mailbox_id BIGINT NOT NULL PRIMARY KEY REFERENCES mailboxes(id),
    state VARCHAR(16) NOT NULL,
    worker VARCHAR(200),
    generation BIGINT NOT NULL DEFAULT 0,
    lease_until BIGINT NOT NULL DEFAULT 0,
    reason TEXT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX work_state ON work (state, lease_until);
CREATE TABLE leases (
    id {ID},
    mailbox_id BIGINT NOT NULL REFERENCES mailboxes(id),
    worker VARCHAR(200) NOT NULL,
    generation BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL,
    ended_at BIGINT,
    ended VARCHAR(16),
    UNIQUE (mailbox_id, generation)
);
CREATE TABLE workers (
    id VARCHAR(200) NOT NULL PRIMARY KEY,
    host VARCHAR(255) NOT NULL,
    pid BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    stopped_at BIGINT
);
ALTER TABLE runs ADD COLUMN worker VARCHAR(200);
CREATE TABLE budget (
    slot BIGINT NOT NULL PRIMARY KEY,
    requests BIGINT NOT NULL DEFAULT 0,
    bytes BIGINT NOT NULL DEFAULT 0
);
"#,
    ),
    (
        5,
        r#"
CREATE TABLE pim_collections (
    id {ID},
    mailbox_id BIGINT NOT NULL REFERENCES mailboxes(id),
    kind VARCHAR(16) NOT NULL,
    source_href TEXT NOT NULL,
    display_name TEXT NOT NULL,
    target_name TEXT NOT NULL,
    sync_cursor TEXT,
    updated_at BIGINT NOT NULL,
    UNIQUE (mailbox_id, source_href)
);
CREATE TABLE pim_items (
    id {ID},
    collection_id BIGINT NOT NULL REFERENCES pim_collections(id),
    item_key TEXT NOT NULL,
    etag TEXT,
    fingerprint VARCHAR(128),
    summary TEXT,
    target_id TEXT,
    old_target_id TEXT,
    status VARCHAR(16) NOT NULL,
    reason TEXT,
    not_carried TEXT,
    run_id BIGINT REFERENCES runs(id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (collection_id, item_key)
);
"#,
    ),
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: u32 = 5;

#[cfg(test)]
mod tests;
