//! `run` and `rescan`: the copy loop. Per mailbox: map folders, ensure them in the target,
//! then per folder search, scan metadata, filter, fetch bodies under the byte budget, write
//! them concurrently and record each outcome (see the crate docs for the full path).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use o365_migrate_imap as imap;
use o365_migrate_target as target;
use serde::Serialize;
use target::{FolderSpec, MailboxWriter};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::engine::{Engine, join_all};
use crate::error::{Error, Result};
use crate::folders::{TargetSpecs, target_specs};
use crate::gmail::GmailLayout;
use crate::matching::{MailboxPair, Pairing};
use crate::report::{Event, Reporter};
use crate::source::{SourceLayout, meta_of, metadata_fetch};
use crate::state::{
    BatchWriter, EventRecord, FolderId, ItemMeta, ItemOutcome, ItemStatus, MailboxId, PlannedItem,
    RunId, RunKind, RunOutcome, StateStore,
};

mod labels;
mod settle;
mod sync;
use settle::Settle;
pub use sync::{FinalReceipt, LastMessage, SyncOptions, SyncTotals};
use sync::{Held, SyncTally};

/// The reason an item is skipped when the source expunged it during the run (a UID SEARCH
/// confirmed it gone); `verify` expects such a UID again if the source still lists it.
pub(crate) const EXPUNGED_REASON: &str =
    "expunged at the source during the run (UID SEARCH confirms it is gone)";
/// Messages per body fetch command; [`BODY_FETCHES_IN_FLIGHT`] of them are pipelined within a
/// chunk of four.
const BODY_BATCH: usize = 50;

/// Body FETCH commands in flight on the source connection.
const BODY_FETCHES_IN_FLIGHT: usize = 2;

/// Writes in flight per mailbox (the writer applies its own, usually lower, limit; the bytes
/// they hold are capped by `[limits] in_flight_bytes`). Measured by `cargo xtask bench
/// side-by-side`: 8 left the source connection idle while the target caught up.
const WRITES_PER_MAILBOX: usize = 64;

/// Attempts per mailbox and run when the source connection fails (dropped, reset, stalled):
/// each attempt reconnects and resumes from the state store.
const SOURCE_ATTEMPTS: u32 = 3;

/// Counts of one run over all mailboxes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunTotals {
    /// Mailboxes processed.
    pub mailboxes: u64,
    /// Mailboxes that stopped with an error.
    pub mailbox_errors: Vec<String>,
    /// Gmail mailboxes paused until their download window reopens (each with the time); a
    /// later run resumes them.
    pub paused: Vec<String>,
    /// Items migrated in this run.
    pub migrated: u64,
    /// Items skipped in this run.
    pub skipped: u64,
    /// Items failed in this run.
    pub failed: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Whether the run was stopped early (Ctrl-C).
    pub stopped: bool,
    /// What `sync` carried besides new items (`None` for `run` and `rescan`).
    pub sync: Option<SyncTotals>,
}

impl RunTotals {
    /// Adds a later part of the same run (after a pause): counts add up, the mailbox errors,
    /// `stopped` and the sync counters are the later part's.
    fn absorb(&mut self, later: RunTotals) {
        self.mailboxes = self.mailboxes.max(later.mailboxes);
        self.mailbox_errors = later.mailbox_errors;
        self.paused = later.paused;
        self.migrated += later.migrated;
        self.skipped += later.skipped;
        self.failed += later.failed;
        self.bytes += later.bytes;
        self.stopped = later.stopped;
        self.sync = match (self.sync.take(), later.sync) {
            (Some(a), Some(b)) => Some(a.plus(b)),
            (a, b) => b.or(a),
        };
    }
}

/// Counts of one mailbox's run, shared by its folders (and its contacts and calendars).
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) migrated: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) bytes: AtomicU64,
}

/// What every folder of one mailbox's run shares.
#[derive(Clone, Copy)]
struct MailboxRun<'a> {
    kind: RunKind,
    run: RunId,
    /// New UIDs the copy loop leaves alone this pass (moves `sync` could not carry yet).
    held: &'a Held,
    pair: &'a MailboxPair,
    mailbox: MailboxId,
    /// The target mailbox's writer.
    mw: &'a Arc<dyn MailboxWriter>,
    /// Records outcomes and events in batched transactions.
    writer: &'a Arc<BatchWriter>,
    tally: &'a Tally,
    /// The target's message size limit, if it has one.
    max_target: Option<u64>,
    /// The source is Gmail: downloads take from the mailbox's download window.
    gmail: bool,
}

/// One pass over the mailboxes: its kind and run, and for `sync` its options and counters.
#[derive(Clone, Copy)]
struct Pass<'a> {
    kind: RunKind,
    run: RunId,
    sync: Option<SyncOptions>,
    sync_tally: &'a SyncTally,
}

/// Item outcome for a message fetched from the source.
struct Work {
    folder: FolderId,
    folder_path: String,
    uidvalidity: u32,
    uid: u32,
    meta: ItemMeta,
    /// Where a Gmail All Mail message goes (else the folder's own target folder).
    dest: Option<Arc<ItemDest>>,
}

/// A Gmail message's target folder and what its labels add.
struct ItemDest {
    handle: target::FolderHandle,
    /// Labels kept as keywords (categories on Graph).
    keywords: Vec<String>,
    /// `\Starred`.
    flagged: bool,
}

impl Engine {
    /// Runs `run` or `rescan` over the selected mailboxes (all when `only` is empty). Takes the
    /// state's run lock first (see [`Engine::hold_run_lock`]).
    pub async fn run(&self, kind: RunKind, only: &[String]) -> Result<(RunId, RunTotals)> {
        self.run_pass(kind, only, None).await
    }

    /// `sync` over the selected mailboxes (all when `only` is empty): the changes since the
    /// last pass — flags, moves, and deletions when `options` asks — then new items as
    /// `rescan` copies them. Takes the state's run lock first.
    pub async fn sync(&self, only: &[String], options: SyncOptions) -> Result<(RunId, RunTotals)> {
        self.run_pass(RunKind::Sync, only, Some(options)).await
    }

    /// One pass, paused and resumed as the state store's pause request says (see
    /// [`crate::control`]): a pause stops new items, records those in flight, keeps the run
    /// lock and waits for `resume`; then a new run record continues where the pause left off.
    /// The totals add up every part.
    pub(crate) async fn run_pass(
        &self,
        kind: RunKind,
        only: &[String],
        sync: Option<SyncOptions>,
    ) -> Result<(RunId, RunTotals)> {
        if self.worker.is_none() {
            self.hold_run_lock().await?;
        }
        let mut sum = RunTotals::default();
        loop {
            if let Some(p) = crate::control::pause_request(self.store.as_ref()).await? {
                self.reporter.report(&Event::Paused { by: p.by });
                if !self.wait_for_resume().await? {
                    sum.stopped = true;
                    let run = self.store.begin_run(kind).await?;
                    self.store.finish_run(run, RunOutcome::Interrupted).await?;
                    return Ok((run, sum));
                }
                self.reporter.report(&Event::Resumed);
            }
            let paused = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let watcher = {
                let (store, stop, paused) = (self.store.clone(), self.stop.clone(), paused.clone());
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(crate::control::PAUSE_POLL).await;
                        if stop.is_stopped() {
                            return;
                        }
                        if let Ok(Some(_)) = crate::control::pause_request(store.as_ref()).await {
                            paused.store(true, Ordering::SeqCst);
                            stop.stop();
                            return;
                        }
                    }
                })
            };
            let r = self.run_pass_once(kind, only, sync).await;
            watcher.abort();
            let (run, totals) = r?;
            sum.absorb(totals);
            if !paused.load(Ordering::SeqCst) {
                return Ok((run, sum));
            }
            // Paused by request (not by Ctrl-C): go round, waiting for the resume first.
            sum.stopped = false;
            self.stop.clear();
        }
    }

    /// Waits while a pause is requested; `false` when the stop flag was set meanwhile.
    async fn wait_for_resume(&self) -> Result<bool> {
        loop {
            if self.stop.is_stopped() {
                return Ok(false);
            }
            if crate::control::pause_request(self.store.as_ref())
                .await?
                .is_none()
            {
                return Ok(true);
            }
            tokio::time::sleep(crate::control::PAUSE_POLL).await;
        }
    }

    async fn run_pass_once(
        &self,
        kind: RunKind,
        only: &[String],
        sync: Option<SyncOptions>,
    ) -> Result<(RunId, RunTotals)> {
        let sync_tally = SyncTally::default();
        let sync_tally = &sync_tally;
        let Pairing {
            pairs, unpaired, ..
        } = self.pairing().await?;
        let run = self.store.begin_run(kind).await?;
        if let Some(w) = &self.worker {
            self.store.tag_run(run, w).await?;
        }
        let writer = Arc::new(BatchWriter::spawn(
            self.store.clone(),
            run,
            512,
            Duration::from_millis(500),
        ));
        let pairs: Vec<MailboxPair> = pairs
            .into_iter()
            .filter(|p| {
                only.is_empty()
                    || only.iter().any(|o| {
                        o.eq_ignore_ascii_case(&p.source) || o.eq_ignore_ascii_case(&p.target)
                    })
            })
            .collect();
        for u in unpaired
            .iter()
            .filter(|u| only.is_empty() || only.iter().any(|o| o.eq_ignore_ascii_case(&u.source)))
        {
            self.reporter.report(&Event::MailboxSkipped {
                mailbox: u.source.clone(),
                reason: u.reason.clone(),
            });
            writer
                .event(EventRecord {
                    mailbox: None,
                    kind: "mailbox_skipped".into(),
                    detail: format!("{}: {}", u.source, u.reason),
                })
                .await?;
        }
        let sem = Arc::new(Semaphore::new(
            self.job.limits.mailboxes_at_once.max(1) as usize
        ));
        let mut totals = RunTotals::default();
        let futs = pairs.iter().map(|p| {
            let sem = sem.clone();
            let writer = writer.clone();
            async move {
                let _permit = sem.acquire().await;
                if self.stop.is_stopped() {
                    return (p.source.clone(), None, Tally::default());
                }
                let tally = Tally::default();
                let pass = Pass {
                    kind,
                    run,
                    sync,
                    sync_tally,
                };
                let r = self.run_mailbox(pass, p, &writer, &tally).await;
                (p.source.clone(), Some(r), tally)
            }
        });
        let results = join_all(futs).await;
        let mut record_err: Option<Error> = None;
        if let Err(e) = writer.flush().await {
            record_err = Some(e);
        }
        for (source, r, tally) in results {
            if let Some(r) = r {
                totals.mailboxes += 1;
                match r {
                    Err(e @ Error::Paused { .. }) => totals.paused.push(e.to_string()),
                    Err(e) => totals.mailbox_errors.push(format!("{source}: {e}")),
                    Ok(()) => {}
                }
            }
            totals.migrated += tally.migrated.load(Ordering::Relaxed);
            totals.skipped += tally.skipped.load(Ordering::Relaxed);
            totals.failed += tally.failed.load(Ordering::Relaxed);
            totals.bytes += tally.bytes.load(Ordering::Relaxed);
        }
        totals.stopped = self.stop.is_stopped();
        if sync.is_some() {
            totals.sync = Some(sync_tally.totals());
        }
        match Arc::try_unwrap(writer) {
            Ok(w) => {
                if let Err(e) = w.close().await {
                    record_err.get_or_insert(e);
                }
            }
            Err(w) => {
                if let Err(e) = w.flush().await {
                    record_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = record_err {
            let _ = self.store.finish_run(run, RunOutcome::Failed).await;
            return Err(e);
        }
        let outcome = if totals.stopped || !totals.paused.is_empty() {
            RunOutcome::Interrupted
        } else if totals.mailbox_errors.is_empty() && totals.failed == 0 {
            RunOutcome::Completed
        } else {
            RunOutcome::Failed
        };
        self.store.finish_run(run, outcome).await?;
        Ok((run, totals))
    }

    async fn run_mailbox(
        &self,
        pass: Pass<'_>,
        pair: &MailboxPair,
        writer: &Arc<BatchWriter>,
        tally: &Tally,
    ) -> Result<()> {
        self.reporter.report(&Event::MailboxStarted {
            mailbox: pair.source.clone(),
            target: pair.target.clone(),
        });
        let mailbox = self
            .store
            .upsert_mailbox(&pair.source, &pair.target)
            .await?;
        let mut attempt = 1;
        let result = loop {
            let r = self
                .run_mailbox_inner(pass, pair, mailbox, writer, tally)
                .await;
            // Gmail's bandwidth alert: no retry (Google extends the lock), a pause.
            let r = match r {
                Err(Error::Source { source, .. }) if crate::gmail::is_download_alert(&source) => {
                    Err(self
                        .close_download_window(&pair.source, &source.to_string())
                        .await?)
                }
                r => r,
            };
            match r {
                Err(Error::Source { context, source })
                    if source.is_retryable()
                        && attempt < SOURCE_ATTEMPTS
                        && !self.stop.is_stopped() =>
                {
                    // Reconnect after a back-off; done items are skipped by the state store.
                    let wait = Duration::from_millis(500u64 << attempt);
                    self.reporter.report(&Event::Throttled {
                        mailbox: Some(pair.source.clone()),
                        wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        reason: format!("{context}: {source}; reconnecting"),
                    });
                    writer
                        .event(EventRecord {
                            mailbox: Some(mailbox),
                            kind: "source_reconnect".into(),
                            detail: format!("attempt {attempt}: {context}: {source}"),
                        })
                        .await?;
                    writer.flush().await?;
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                r => break r,
            }
        };
        match &result {
            Err(e @ Error::Paused { until, .. }) => {
                let wait_s = (*until - crate::state::now_ms().div_euclid(1000)).max(0);
                self.reporter.report(&Event::Throttled {
                    mailbox: Some(pair.source.clone()),
                    wait_ms: u64::try_from(wait_s).unwrap_or(0).saturating_mul(1000),
                    reason: e.to_string(),
                });
                writer
                    .event(EventRecord {
                        mailbox: Some(mailbox),
                        kind: "mailbox_paused".into(),
                        detail: e.to_string(),
                    })
                    .await?;
            }
            Err(e) => {
                writer
                    .event(EventRecord {
                        mailbox: Some(mailbox),
                        kind: "mailbox_error".into(),
                        detail: e.to_string(),
                    })
                    .await?;
                // What the source holds, so that a mailbox stopped before its items were
                // listed still shows how much is waiting (unknown when even that fails).
                if let Some(messages) = self.source_holds(pair).await {
                    writer
                        .event(EventRecord {
                            mailbox: Some(mailbox),
                            kind: "source_holds".into(),
                            detail: serde_json::json!({ "messages": messages }).to_string(),
                        })
                        .await?;
                }
            }
            // Every folder was gone through: the mailbox's earlier errors are resolved.
            Ok(()) if !self.stop.is_stopped() => {
                writer
                    .event(EventRecord {
                        mailbox: Some(mailbox),
                        kind: "mailbox_completed".into(),
                        detail: String::new(),
                    })
                    .await?
            }
            Ok(()) => {}
        }
        writer.flush().await?;
        self.reporter.report(&Event::MailboxFinished {
            mailbox: pair.source.clone(),
            migrated: tally.migrated.load(Ordering::Relaxed),
            skipped: tally.skipped.load(Ordering::Relaxed),
            failed: tally.failed.load(Ordering::Relaxed),
            bytes: tally.bytes.load(Ordering::Relaxed),
        });
        result
    }

    async fn run_mailbox_inner(
        &self,
        pass: Pass<'_>,
        pair: &MailboxPair,
        mailbox: MailboxId,
        writer: &Arc<BatchWriter>,
        tally: &Tally,
    ) -> Result<()> {
        // A Gmail mailbox whose download window is spent waits without signing in.
        self.download_window_open(&pair.source).await?;
        let mut session = self.open_source(&pair.source).await?;
        let SourceLayout { mapped, gmail } = self.source_layout(&mut session).await?;
        let gmail = gmail.as_ref();
        let TargetSpecs { specs, renamed } = target_specs(&mapped, &self.target.capabilities());
        for (source, note) in renamed {
            let detail = format!("{source}: {note}");
            self.folder_note(pair, mailbox, writer, &source, &note, detail)
                .await?;
        }
        // Folders the mapping leaves out: reported and recorded with their reason.
        for m in mapped.iter().filter(|m| m.target().is_none()) {
            let reason = m
                .skip_reason()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "skipped".into());
            self.reporter.report(&Event::FolderSkipped {
                mailbox: pair.source.clone(),
                folder: m.source.path.clone(),
                reason: reason.clone(),
            });
            writer
                .event(EventRecord {
                    mailbox: Some(mailbox),
                    kind: "folder_skipped".into(),
                    detail: format!("{}: {reason}", m.source.path),
                })
                .await?;
        }
        let mw = self
            .target
            .open_mailbox(&pair.target)
            .await
            .map_err(|e| Error::target(format!("target mailbox {}", pair.target), e))?;
        let only_specs: Vec<FolderSpec> = specs.iter().map(|(_, s)| s.clone()).collect();
        let by_source = self
            .ensure_target_folders(pair, mailbox, &*mw, &only_specs, writer)
            .await?;
        let no_hold = Held::default();
        let mut mailbox_run = MailboxRun {
            kind: pass.kind,
            run: pass.run,
            held: &no_hold,
            pair,
            mailbox,
            mw: &mw,
            writer,
            tally,
            max_target: self.target.capabilities().max_message_bytes,
            gmail: gmail.is_some(),
        };
        let held;
        if let Some(opts) = pass.sync {
            held = self
                .sync_changes(
                    &mailbox_run,
                    &mut session,
                    &specs,
                    &by_source,
                    opts,
                    pass.sync_tally,
                )
                .await?;
            mailbox_run.held = &held;
        }
        let mailbox_run = &mailbox_run;
        self.report_remaining(pair, mailbox, &mut session, &specs)
            .await;
        // Folders are copied several at once when the job allows more source connections
        // than mailboxes at once (a target like Dovecot stores one folder at a time per
        // connection; `cargo xtask bench side-by-side`). Each worker has its own source
        // session; the first reuses the one already open, the others open theirs.
        let workers = self.folders_at_once().min(specs.len().max(1));
        let queue = std::sync::Mutex::new(specs.iter().collect::<std::collections::VecDeque<_>>());
        let failed = AtomicBool::new(false);
        let work = |open: Option<imap::Session>| {
            let queue = &queue;
            let failed = &failed;
            let by_source = &by_source;
            async move {
                let mut session = match open {
                    Some(s) => s,
                    None => {
                        if queue.lock().map(|q| q.is_empty()).unwrap_or(true) {
                            return Ok(());
                        }
                        match self.open_source(&pair.source).await {
                            Ok(s) => s,
                            Err(e) => {
                                failed.store(true, Ordering::SeqCst);
                                return Err(e);
                            }
                        }
                    }
                };
                loop {
                    if self.stop.is_stopped() || failed.load(Ordering::SeqCst) {
                        break;
                    }
                    let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                    let Some((path, spec)) = next else { break };
                    let Some(handle) = by_source.get(path) else {
                        failed.store(true, Ordering::SeqCst);
                        return Err(Error::Pipeline {
                            context: format!("mailbox {} folder {path}", pair.source),
                            message: "the target did not return a folder for it".into(),
                            hint: None,
                        });
                    };
                    let handle = handle.as_ref().map_err(String::as_str);
                    let all_mail = gmail.filter(|g| g.all_mail == *path);
                    if let Err(e) = self
                        .run_folder(
                            mailbox_run,
                            &mut session,
                            path,
                            &spec.display_path(),
                            handle,
                            all_mail,
                        )
                        .await
                    {
                        failed.store(true, Ordering::SeqCst);
                        return Err(e);
                    }
                }
                let _ = session.logout().await;
                Ok(())
            }
        };
        let sessions = std::iter::once(Some(session)).chain((1..workers).map(|_| None));
        let results = join_all(sessions.map(work)).await;
        let throttling = mw.throttling();
        if throttling.throttled_answers > 0 {
            self.reporter.report(&Event::TargetThrottled {
                mailbox: pair.source.clone(),
                throttled_answers: throttling.throttled_answers,
                pauses: throttling.pauses,
            });
            writer
                .event(EventRecord {
                    mailbox: Some(mailbox),
                    kind: "target_throttled".into(),
                    detail: serde_json::json!({
                        "throttled_answers": throttling.throttled_answers,
                        "pauses": throttling.pauses,
                    })
                    .to_string(),
                })
                .await?;
        }
        results.into_iter().collect::<Result<Vec<()>>>()?;
        // Contacts, calendars and tasks after the mail (nothing without `[dav]`).
        if !self.stop.is_stopped() {
            self.run_pim(pass.run, pair, mailbox, writer, tally).await?;
        }
        Ok(())
    }

    /// Reports and records a note about one folder (a rename the report must name).
    async fn folder_note(
        &self,
        pair: &MailboxPair,
        mailbox: MailboxId,
        writer: &Arc<BatchWriter>,
        source: &str,
        note: &str,
        detail: String,
    ) -> Result<()> {
        self.reporter.report(&Event::FolderNote {
            mailbox: pair.source.clone(),
            folder: source.to_owned(),
            note: note.to_owned(),
        });
        writer
            .event(EventRecord {
                mailbox: Some(mailbox),
                kind: "folder_note".into(),
                detail,
            })
            .await
    }

    /// The target folders of a mailbox, one per spec by source path. A folder the target
    /// refuses fails alone: its entry holds the reason (its items fail with it) and the
    /// mailbox goes on; an error beyond one folder stops the mailbox. Every rename the writer
    /// made (a reserved name, a character the target forbids) is reported.
    async fn ensure_target_folders(
        &self,
        pair: &MailboxPair,
        mailbox: MailboxId,
        mw: &dyn MailboxWriter,
        specs: &[FolderSpec],
        writer: &Arc<BatchWriter>,
    ) -> Result<HashMap<String, std::result::Result<target::FolderHandle, String>>> {
        let mailbox_err = |e| Error::target(format!("target folders of {}", pair.target), e);
        let results: Vec<(
            String,
            std::result::Result<target::FolderHandle, target::Error>,
        )> = match mw.ensure_folders(specs).await {
            Ok(handles) => handles
                .into_iter()
                .map(|h| (h.source.clone(), Ok(h)))
                .collect(),
            Err(e) if e.scope() == target::ErrorScope::Folder => {
                // One folder was refused: ask again folder by folder, so that the others
                // are created and only that one fails.
                let mut out = Vec::with_capacity(specs.len());
                for s in specs {
                    let r = mw.ensure_folders(std::slice::from_ref(s)).await;
                    match r {
                        Ok(mut h) if h.len() == 1 => out.push((s.source.clone(), Ok(h.remove(0)))),
                        Ok(_) => {}
                        Err(e) => out.push((s.source.clone(), Err(e))),
                    }
                }
                out
            }
            Err(e) => return Err(mailbox_err(e)),
        };
        let mut by_source = HashMap::with_capacity(results.len());
        for (source, r) in results {
            match r {
                Ok(h) => {
                    for note in &h.notes {
                        let detail = format!("{source} → {}: {note}", h.display_path);
                        self.folder_note(pair, mailbox, writer, &source, note, detail)
                            .await?;
                    }
                    by_source.insert(source, Ok(h));
                }
                Err(e) if e.scope() == target::ErrorScope::Folder => {
                    let reason = format!("the target folder could not be created: {e}");
                    writer
                        .event(EventRecord {
                            mailbox: Some(mailbox),
                            kind: "folder_failed".into(),
                            detail: format!("{source}: {reason}"),
                        })
                        .await?;
                    by_source.insert(source, Err(reason));
                }
                Err(e) => return Err(mailbox_err(e)),
            }
        }
        Ok(by_source)
    }

    /// Folders of one mailbox copied at once: the source connections the job allows per
    /// mailbox (`connections_per_host / mailboxes_at_once`), 1 to 4.
    fn folders_at_once(&self) -> usize {
        let per_mailbox =
            self.job.source.connections_per_host.max(1) / self.job.limits.mailboxes_at_once.max(1);
        (per_mailbox as usize).clamp(1, 4)
    }

    /// Reports how many messages this mailbox still has to go (STATUS MESSAGES of the
    /// migrated folders minus the outcomes already recorded), for progress bars and ETAs.
    /// Best effort: a folder STATUS cannot answer is left out.
    async fn report_remaining(
        &self,
        pair: &MailboxPair,
        mailbox: MailboxId,
        session: &mut imap::Session,
        specs: &[(String, FolderSpec)],
    ) {
        let mut messages = 0u64;
        for (path, _) in specs {
            if let Ok(s) = session.status(path, &[imap::StatusItem::Messages]).await {
                messages += u64::from(s.messages.unwrap_or(0));
            }
        }
        let done = match self.store.counts(Some(mailbox)).await {
            Ok(c) => c.migrated + c.skipped,
            Err(_) => 0,
        };
        self.reporter.report(&Event::MailboxPlanned {
            mailbox: pair.source.clone(),
            remaining: messages.saturating_sub(done),
        });
    }

    /// Copies one folder: EXAMINE, search, metadata scan, filters, then bodies written
    /// concurrently; every candidate ends with a recorded outcome unless the run stops.
    /// `gmail`: the folder is Gmail's All Mail, each message goes where its labels place it
    /// (`handle` is Archive).
    async fn run_folder(
        &self,
        mb: &MailboxRun<'_>,
        session: &mut imap::Session,
        path: &str,
        target_path: &str,
        handle: std::result::Result<&target::FolderHandle, &str>,
        gmail: Option<&GmailLayout>,
    ) -> Result<()> {
        let MailboxRun {
            kind,
            held,
            pair,
            mailbox,
            mw,
            writer,
            tally,
            max_target,
            ..
        } = *mb;
        if held.quiet.contains(path) {
            // `sync` read this folder a moment ago: nothing new, nothing to retry.
            return Ok(());
        }
        let ctx = format!("mailbox {} folder {path}", pair.source);
        let sel = session
            .examine(path)
            .await
            .map_err(|e| Error::source(&ctx, e))?;
        let uidvalidity = sel.uid_validity.ok_or_else(|| Error::Pipeline {
            context: ctx.clone(),
            message: "the server sent no UIDVALIDITY".into(),
            hint: None,
        })?;
        let fstate = self
            .store
            .upsert_folder(mailbox, path, target_path, uidvalidity)
            .await?;
        let uidvalidity_changed = fstate.previous_uidvalidity.is_some();
        if fstate.highest_modseq.is_none() && sel.highest_modseq.is_some() {
            // The first pass over the folder: `sync` carries changes from here on.
            self.store
                .set_highest_modseq(fstate.id, sel.highest_modseq, true)
                .await?;
        }
        let done = self.store.done_uids(fstate.id).await?;
        let all = if sel.exists == 0 {
            Vec::new()
        } else {
            session
                .uid_search(&[imap::SearchKey::All])
                .await
                .map_err(|e| Error::source(&ctx, e))?
        };
        let held = held.uids.get(path);
        let done_set: HashSet<u32> = done
            .done
            .iter()
            .copied()
            .chain(held.into_iter().flatten().copied())
            .collect();
        let failed_set: HashSet<u32> = done.failed.iter().copied().collect();
        let candidates: Vec<u32> = all
            .into_iter()
            .filter(|u| !done_set.contains(u))
            .filter(|u| match kind {
                RunKind::Rescan | RunKind::Sync => {
                    *u > done.watermark || failed_set.contains(u) || done.planned.contains(u)
                }
                _ => true,
            })
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        // Metadata.
        let mut metas: BTreeMap<u32, (ItemMeta, Vec<String>)> = BTreeMap::new();
        let mut labels: HashMap<u32, Vec<String>> = HashMap::new();
        let mut header_bytes = 0u64;
        {
            let mut opts = metadata_fetch();
            opts.items.gmail = gmail.is_some();
            let mut stream = session.fetch(&candidates, opts);
            while let Some(m) = stream.next().await {
                let mut m = m.map_err(|e| Error::source(&ctx, e))?;
                if let Some(l) = m.gmail_labels.take() {
                    labels.insert(m.uid, l);
                }
                header_bytes += m.header.as_ref().map_or(0, |h| h.len() as u64);
                metas.insert(m.uid, (meta_of(&m), m.flags.clone()));
            }
        }
        if mb.gmail {
            // Gmail counts every byte it sends: the header fields too.
            self.charge_download(&pair.source, header_bytes).await?;
        }
        let total = metas.len() as u64;
        let planned: Vec<PlannedItem> = metas
            .iter()
            .map(|(uid, (meta, _))| PlannedItem {
                uid: *uid,
                meta: meta.clone(),
            })
            .collect();
        self.store
            .mark_planned(fstate.id, uidvalidity, &planned)
            .await?;
        let settle = Settle {
            engine: self,
            pair,
            path,
            folder: fstate.id,
            uidvalidity,
            tally,
            writer,
        };
        let meta_of_uid = |uid: &u32| metas.get(uid).map(|(m, _)| m.clone()).unwrap_or_default();
        // Filters.
        let mut to_copy: Vec<u32> = Vec::new();
        for (uid, (meta, _)) in &metas {
            match self.filter_reason(meta, max_target) {
                Some(reason) => {
                    settle
                        .record(*uid, meta.clone(), ItemStatus::Skipped, reason, true)
                        .await?
                }
                None => to_copy.push(*uid),
            }
        }
        let handle = match handle {
            Ok(h) => h,
            Err(reason) => {
                // The target folder could not be created: its items fail with the reason (a
                // later run retries them), the mailbox's other folders go on.
                for uid in &to_copy {
                    let (meta, reason) = (meta_of_uid(uid), reason.to_owned());
                    settle
                        .record(*uid, meta, ItemStatus::Failed, reason, true)
                        .await?;
                }
                writer.flush().await?;
                return Ok(());
            }
        };
        // Gmail's All Mail: each message to the folder its labels name.
        let dests = match gmail {
            Some(g) => {
                self.place_by_labels(mb, &settle, g, handle, &labels, &mut to_copy, &meta_of_uid)
                    .await?
            }
            None => HashMap::new(),
        };
        // Bodies in batches, written concurrently.
        // The writer may need fewer (each write in flight holds its message and what the
        // writer made of it).
        let writes = mw
            .writes_in_flight()
            .map_or(WRITES_PER_MAILBOX, |n| n.clamp(1, WRITES_PER_MAILBOX));
        let sem = Arc::new(Semaphore::new(writes));
        let done_count = Arc::new(AtomicU64::new(total - to_copy.len() as u64));
        let mut tasks: JoinSet<Result<WriteResult>> = JoinSet::new();
        let mut fatal: Option<Error> = None;
        let mut window_full = false;
        for chunk in to_copy.chunks(BODY_BATCH * 4) {
            if self.stop.is_stopped() || fatal.is_some() || window_full {
                break;
            }
            // Gmail: only what the mailbox's download window still allows.
            let chunk = if mb.gmail {
                let sizes: Vec<u64> = chunk
                    .iter()
                    .map(|u| metas.get(u).and_then(|(m, _)| m.size).unwrap_or(0))
                    .collect();
                match self.take_download(&pair.source, &sizes).await {
                    Ok(n) => {
                        window_full = n < chunk.len();
                        &chunk[..n]
                    }
                    Err(e) => {
                        fatal = Some(e);
                        break;
                    }
                }
            } else {
                chunk
            };
            let opts = imap::FetchOptions {
                items: imap::FetchItems {
                    flags: true,
                    internal_date: true,
                    size: true,
                    header_fields: Vec::new(),
                    body: true,
                    modseq: false,
                    gmail: false,
                },
                batch_size: BODY_BATCH,
                pipeline: BODY_FETCHES_IN_FLIGHT,
            };
            let mut seen_in_chunk = HashSet::new();
            {
                let mut stream = session.fetch(chunk, opts);
                while let Some(m) = stream.next().await {
                    let m = match m {
                        Ok(m) => m,
                        Err(e) => {
                            fatal = Some(Error::source(&ctx, e));
                            break;
                        }
                    };
                    seen_in_chunk.insert(m.uid);
                    let permit = match sem.clone().acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => break,
                    };
                    let base_meta = metas
                        .get(&m.uid)
                        .map(|(mm, _)| mm.clone())
                        .unwrap_or_default();
                    let work = Work {
                        folder: fstate.id,
                        folder_path: path.to_owned(),
                        uidvalidity,
                        uid: m.uid,
                        meta: base_meta,
                        dest: dests.get(&m.uid).cloned(),
                    };
                    let ctx = WriteCtx {
                        store: self.store.clone(),
                        reporter: self.reporter.clone(),
                        writer: writer.clone(),
                        mw: mw.clone(),
                        handle: handle.clone(),
                        mailbox,
                        source: pair.source.clone(),
                        max_attempts: self.job.limits.max_attempts.max(1),
                        dedupe_by_state: uidvalidity_changed,
                        done: done_count.clone(),
                    };
                    tasks.spawn(async move {
                        let r = write_one(ctx, work, m).await;
                        drop(permit);
                        r
                    });
                    // Reap finished tasks to keep the set small.
                    while let Some(r) = tasks.try_join_next() {
                        self.reap(r, tally, &mut fatal);
                    }
                }
            }
            // UIDs the FETCH answer left out. Gone for good ("expunged", final) only when a
            // UID SEARCH confirms it; a message still there fails with the reason, so a later
            // run fetches it again: never written off unseen.
            let unseen: Vec<u32> = chunk
                .iter()
                .copied()
                .filter(|u| !seen_in_chunk.contains(u))
                .collect();
            if unseen.is_empty() || fatal.is_some() || self.stop.is_stopped() {
                continue;
            }
            let search = [imap::SearchKey::Uid(imap::UidSet::from_uids(&unseen))];
            let still: HashSet<u32> = match session.uid_search(&search).await {
                Ok(found) => found.into_iter().collect(),
                Err(e) => {
                    fatal = Some(Error::source(&ctx, e));
                    continue;
                }
            };
            for uid in unseen {
                let (status, reason, announce) = if still.contains(&uid) {
                    let reason = "the source left it out of its FETCH answer although it still \
                                  exists; a later run fetches it again";
                    (ItemStatus::Failed, reason, true)
                } else {
                    (ItemStatus::Skipped, EXPUNGED_REASON, false)
                };
                settle
                    .record(uid, meta_of_uid(&uid), status, reason.to_owned(), announce)
                    .await?;
            }
        }
        while let Some(r) = tasks.join_next().await {
            self.reap(r, tally, &mut fatal);
        }
        if window_full && fatal.is_none() {
            // The rest waits for the window to reopen.
            fatal = Some(self.window_paused(&pair.source).await?);
        }
        writer.flush().await?;
        self.reporter.report(&Event::FolderProgress {
            mailbox: pair.source.clone(),
            folder: path.to_owned(),
            done: done_count.load(Ordering::Relaxed),
            total,
            bytes: tally.bytes.load(Ordering::Relaxed),
        });
        match fatal {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn reap(
        &self,
        r: std::result::Result<Result<WriteResult>, tokio::task::JoinError>,
        tally: &Tally,
        fatal: &mut Option<Error>,
    ) {
        match r {
            Ok(Ok(WriteResult::Migrated(bytes))) => {
                tally.migrated.fetch_add(1, Ordering::Relaxed);
                tally.bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            Ok(Ok(WriteResult::Failed { stop_mailbox })) => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                if let Some(e) = stop_mailbox {
                    fatal.get_or_insert(e);
                }
            }
            Ok(Err(e)) => {
                fatal.get_or_insert(e);
            }
            Err(e) => {
                fatal.get_or_insert(Error::Pipeline {
                    context: "write task".into(),
                    message: e.to_string(),
                    hint: None,
                });
            }
        }
    }
}

struct WriteCtx {
    store: Arc<dyn StateStore>,
    reporter: Arc<dyn Reporter>,
    writer: Arc<BatchWriter>,
    mw: Arc<dyn MailboxWriter>,
    handle: target::FolderHandle,
    mailbox: MailboxId,
    source: String,
    max_attempts: u32,
    dedupe_by_state: bool,
    done: Arc<AtomicU64>,
}

enum WriteResult {
    Migrated(u64),
    Failed { stop_mailbox: Option<Error> },
}

async fn write_one(ctx: WriteCtx, work: Work, mut m: imap::FetchedMessage) -> Result<WriteResult> {
    // The body's share of the in-flight byte budget is released only after every copy of the
    // body is gone (they all live inside `write_one_inner`), so the budget bounds memory.
    let reservation = std::mem::take(&mut m.reservation);
    let r = write_one_inner(ctx, work, m).await;
    drop(reservation);
    r
}

async fn write_one_inner(
    ctx: WriteCtx,
    mut work: Work,
    m: imap::FetchedMessage,
) -> Result<WriteResult> {
    let Some(raw) = m.body.clone() else {
        return fail(
            &ctx,
            work,
            "the server sent no body for this UID".into(),
            None,
        )
        .await;
    };
    // Only the header-derived identity is used (dedupe key, Message-ID): hash the header block,
    // not the whole body (`cargo xtask bench side-by-side` profile: 14 % of the CPU).
    let id = o365_migrate_mime::fingerprint(o365_migrate_mime::header_block(&raw));
    // Message-ID (or header key) plus a cheap content tag: two different messages that share
    // a Message-ID stay two messages.
    let key = o365_migrate_mime::item_key(&raw, &id);
    work.meta.fingerprint = Some(key.clone());
    work.meta.message_id = id.message_id.clone();
    work.meta.size = Some(raw.len() as u64);
    if ctx.dedupe_by_state {
        // UIDVALIDITY changed: UIDs mean nothing; the fingerprint decides.
        let found = ctx.store.find_by_fingerprint(ctx.mailbox, &key).await?;
        if let Some(prev) = found.into_iter().find(|r| r.folder == work.folder) {
            let outcome = ItemOutcome {
                folder: work.folder,
                uidvalidity: work.uidvalidity,
                uid: work.uid,
                status: ItemStatus::Migrated,
                target_id: prev.target_id.clone(),
                reason: Some("already migrated before the UIDVALIDITY change".into()),
                meta: work.meta.clone(),
            };
            ctx.writer.record(outcome).await?;
            ctx.done.fetch_add(1, Ordering::Relaxed);
            return Ok(WriteResult::Migrated(0));
        }
    }
    let copied_flags = crate::state::flags_text(&m.flags);
    let mut flags = o365_migrate_mime::Flags::from_imap(m.flags.iter().map(String::as_str));
    let handle = match &work.dest {
        Some(d) => {
            for k in &d.keywords {
                if !flags.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                    flags.keywords.push(k.clone());
                }
            }
            flags.flagged |= d.flagged;
            d.handle.clone()
        }
        None => ctx.handle.clone(),
    };
    // What was FETCHed becomes the one set of message types here, once.
    let item = target::WriteItem {
        raw: raw.clone(),
        flags,
        internal_date: m.internal_date,
        fingerprint: key,
        internet_message_id: id.message_id.clone(),
    };
    drop(m);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match ctx.mw.write(&handle, &item).await {
            Ok(outcome) => {
                let size = raw.len() as u64;
                let note = match &outcome {
                    target::WriteOutcome::AlreadyPresent { .. } => {
                        Some("already present in the target".to_owned())
                    }
                    target::WriteOutcome::Written { notes, .. } if !notes.is_empty() => {
                        Some(notes.join("; "))
                    }
                    _ => None,
                };
                // The flags the target now has: those written, unknown for an item found
                // there (written by an earlier, interrupted attempt; `sync` sets them).
                work.meta.flags = match &outcome {
                    target::WriteOutcome::Written { .. } => Some(copied_flags.clone()),
                    target::WriteOutcome::AlreadyPresent { .. } => None,
                };
                ctx.writer
                    .record(ItemOutcome {
                        folder: work.folder,
                        uidvalidity: work.uidvalidity,
                        uid: work.uid,
                        status: ItemStatus::Migrated,
                        target_id: Some(outcome.target_id().to_owned()),
                        reason: note,
                        meta: work.meta.clone(),
                    })
                    .await?;
                ctx.reporter.report(&Event::ItemMigrated {
                    mailbox: ctx.source.clone(),
                    folder: work.folder_path.clone(),
                    uid: work.uid,
                    size,
                });
                ctx.done.fetch_add(1, Ordering::Relaxed);
                return Ok(WriteResult::Migrated(size));
            }
            Err(e) if e.is_transient() && attempt < ctx.max_attempts => {
                let wait = Duration::from_millis(250u64 << attempt.min(6));
                ctx.reporter.report(&Event::Throttled {
                    mailbox: Some(ctx.source.clone()),
                    wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    reason: e.to_string(),
                });
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                let reason = e.to_string();
                let stop = match e.scope() {
                    target::ErrorScope::Mailbox | target::ErrorScope::Target => Some(
                        Error::target(format!("target mailbox of {}", ctx.source), e),
                    ),
                    _ => None,
                };
                return fail(&ctx, work, reason, stop).await;
            }
        }
    }
}

async fn fail(
    ctx: &WriteCtx,
    work: Work,
    reason: String,
    stop_mailbox: Option<Error>,
) -> Result<WriteResult> {
    ctx.reporter.report(&Event::ItemFailed {
        mailbox: ctx.source.clone(),
        folder: work.folder_path.clone(),
        uid: work.uid,
        reason: reason.clone(),
    });
    ctx.writer
        .record(ItemOutcome {
            folder: work.folder,
            uidvalidity: work.uidvalidity,
            uid: work.uid,
            status: ItemStatus::Failed,
            target_id: None,
            reason: Some(reason),
            meta: work.meta,
        })
        .await?;
    ctx.done.fetch_add(1, Ordering::Relaxed);
    Ok(WriteResult::Failed { stop_mailbox })
}
