//! `sync`: the changes since the last pass, carried to the target before new items are copied.
//!
//! Per mailbox, every mapped folder is read once (`EXAMINE`, `UID SEARCH ALL`, and the flags:
//! with CONDSTORE only those changed since the stored `HIGHESTMODSEQ` — nothing at all when it
//! did not move — else one `UID FETCH 1:* (FLAGS)`), and compared with the state store:
//!
//! - a migrated item whose flags differ gets the source's flags (Graph: `isRead`, `flag`,
//!   `categories` by PATCH; IMAP: `UID STORE`);
//! - a migrated item gone from one folder whose content key (the item key, confirmed on the
//!   bytes) appears as a new UID in another folder is **moved** in the target, never copied
//!   again; its row moves with it;
//! - a migrated item gone for good is deleted in the target only with `--propagate-deletes`,
//!   otherwise kept there; either way its row says so (`gone`), and `verify` expects a kept
//!   one in the target.
//!
//! Every change is recorded after the target confirmed it, in one transaction with its event;
//! a change whose answer was lost is looked up before it is sent again (the writers do that),
//! and one that failed leaves the folder's `HIGHESTMODSEQ` where it was, so the next pass
//! sees it again. The new items are then copied by the ordinary rescan path.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::StreamExt;
use o365_migrate_imap as imap;
use o365_migrate_target as target;
use serde::Serialize;
use target::{FolderHandle, FolderSpec};

use super::MailboxRun;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::source::{meta_of, metadata_fetch};
use crate::state::{EventRecord, FolderId, Gone, SyncChange, SyncItem, flags_text};

/// Target changes in flight per mailbox (Graph runs four requests of a mailbox at a time).
const CHANGES_IN_FLIGHT: usize = 4;

/// Changes recorded per transaction.
const RECORD_BATCH: usize = 200;

/// What `sync` does besides copying new items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncOptions {
    /// Delete in the target what was deleted at the source (never by default).
    pub propagate_deletes: bool,
}

/// What one `sync` carried to the target, over all mailboxes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncTotals {
    /// Items whose flags (read, flagged, answered, keywords) were set again.
    pub flags: u64,
    /// Items moved between folders.
    pub moved: u64,
    /// Items deleted in the target (`--propagate-deletes`).
    pub deleted: u64,
    /// Items deleted at the source and kept in the target.
    pub kept: u64,
    /// Changes that failed (retried by the next `sync`).
    pub failed: u64,
    /// IMAP commands sent to the source to find the changes.
    pub source_commands: u64,
}

impl SyncTotals {
    /// The totals of a pass paused and resumed: the later part's failures (it retried the
    /// earlier ones), everything else added up.
    pub(crate) fn plus(self, later: SyncTotals) -> SyncTotals {
        SyncTotals {
            flags: self.flags + later.flags,
            moved: self.moved + later.moved,
            deleted: self.deleted + later.deleted,
            kept: self.kept + later.kept,
            failed: later.failed,
            source_commands: self.source_commands + later.source_commands,
        }
    }
}

/// Counters shared by the mailboxes of one `sync`.
#[derive(Default)]
pub(crate) struct SyncTally {
    flags: AtomicU64,
    moved: AtomicU64,
    deleted: AtomicU64,
    kept: AtomicU64,
    failed: AtomicU64,
    commands: AtomicU64,
}

impl SyncTally {
    pub(crate) fn totals(&self) -> SyncTotals {
        SyncTotals {
            flags: self.flags.load(Ordering::Relaxed),
            moved: self.moved.load(Ordering::Relaxed),
            deleted: self.deleted.load(Ordering::Relaxed),
            kept: self.kept.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            source_commands: self.commands.load(Ordering::Relaxed),
        }
    }
}

/// One folder as the change scan found it.
struct Scanned {
    path: String,
    folder: FolderId,
    uidvalidity: u32,
    handle: FolderHandle,
    /// HIGHESTMODSEQ at the EXAMINE of this pass.
    modseq: Option<u64>,
    /// Migrated items the store knows as present, by UID.
    stored: HashMap<u32, SyncItem>,
    /// Items an earlier pass kept in the target after the source deleted them.
    kept: Vec<SyncItem>,
    /// UIDs the source has now.
    present: HashSet<u32>,
    /// Flags read now (all, or those changed since the stored mod-sequence).
    flags: HashMap<u32, Vec<String>>,
    /// UIDs the store has never seen.
    new: Vec<u32>,
    /// Failed or planned items of earlier passes wait in this folder.
    retries: bool,
    /// A change of this folder failed: its mod-sequence stays.
    failed: bool,
}

/// A new source item that is a moved one: where it came from.
struct Move {
    from: usize,
    item: SyncItem,
    to: usize,
    uid: u32,
    flags: Vec<String>,
}

/// A target error wider than one item (the mailbox or the target): the pass stops there.
fn stops_mailbox(e: &Error) -> bool {
    e.target_scope()
        .is_some_and(|s| s != target::ErrorScope::Item)
}

/// What the change pass tells the copy loop, by source folder path.
#[derive(Default)]
pub(crate) struct Held {
    /// New UIDs that are moved items whose move did not go through this pass: the copy loop
    /// leaves them alone (a copy beside the original would be a duplicate).
    pub(crate) uids: HashMap<String, HashSet<u32>>,
    /// Folders with nothing to copy (no new UID left, none failed or planned before): the
    /// copy loop does not open them again.
    pub(crate) quiet: HashSet<String>,
}

impl Engine {
    /// Carries the changes of one mailbox's mapped folders to the target (see the module
    /// docs). Returns the new UIDs the copy loop must not copy this pass.
    pub(super) async fn sync_changes(
        &self,
        mb: &MailboxRun<'_>,
        session: &mut imap::Session,
        specs: &[(String, FolderSpec)],
        by_source: &HashMap<String, std::result::Result<FolderHandle, String>>,
        opts: SyncOptions,
        tally: &SyncTally,
    ) -> Result<Held> {
        let pair = mb.pair;
        let count = |n: u64| {
            tally.commands.fetch_add(n, Ordering::Relaxed);
        };
        // 1. Read every folder.
        let mut scans: Vec<Scanned> = Vec::new();
        for (path, spec) in specs {
            let Some(Ok(handle)) = by_source.get(path) else {
                continue;
            };
            let ctx = format!("mailbox {} folder {path}", pair.source);
            let sel = session
                .examine(path)
                .await
                .map_err(|e| Error::source(&ctx, e))?;
            count(1);
            let Some(uidvalidity) = sel.uid_validity else {
                continue;
            };
            let fstate = self
                .store
                .upsert_folder(mb.mailbox, path, &spec.display_path(), uidvalidity)
                .await?;
            if fstate.previous_uidvalidity.is_some() {
                // New UIDs for everything: the copy loop finds the items by content.
                continue;
            }
            let (kept, stored): (Vec<SyncItem>, Vec<SyncItem>) = self
                .store
                .sync_items(fstate.id)
                .await?
                .into_iter()
                .partition(|i| i.kept);
            let stored: HashMap<u32, SyncItem> = stored.into_iter().map(|i| (i.uid, i)).collect();
            let present: HashSet<u32> = if sel.exists == 0 {
                HashSet::new()
            } else {
                count(1);
                session
                    .uid_search(&[imap::SearchKey::All])
                    .await
                    .map_err(|e| Error::source(&ctx, e))?
                    .into_iter()
                    .collect()
            };
            let every_flag_known = stored.values().all(|i| i.flags.is_some());
            let since = match (fstate.highest_modseq, sel.highest_modseq) {
                (Some(old), Some(_)) if every_flag_known && session.has_capability("CONDSTORE") => {
                    Some(old)
                }
                _ => None,
            };
            let flags: HashMap<u32, Vec<String>> = if stored.is_empty() || sel.exists == 0 {
                HashMap::new()
            } else if since.is_some() && since == sel.highest_modseq {
                // Nothing in the folder changed since the last pass.
                HashMap::new()
            } else {
                count(1);
                session
                    .fetch_flags(since)
                    .await
                    .map_err(|e| Error::source(&ctx, e))?
                    .into_iter()
                    .map(|f| (f.uid, f.flags))
                    .collect()
            };
            let done = self.store.done_uids(fstate.id).await?;
            let known: HashSet<u32> = done
                .done
                .iter()
                .chain(&done.failed)
                .chain(&done.planned)
                .copied()
                .chain(stored.keys().copied())
                .chain(kept.iter().map(|i| i.uid))
                .collect();
            let mut new: Vec<u32> = present
                .iter()
                .copied()
                .filter(|u| !known.contains(u))
                .collect();
            new.sort_unstable();
            scans.push(Scanned {
                path: path.clone(),
                folder: fstate.id,
                uidvalidity,
                handle: handle.clone(),
                modseq: sel.highest_modseq,
                stored,
                kept,
                present,
                flags,
                new,
                retries: !done.failed.is_empty() || !done.planned.is_empty(),
                failed: false,
            });
        }

        // 2. Moves: a vanished item's content key on a new UID elsewhere.
        let vanished: Vec<(usize, SyncItem)> = scans
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                s.stored
                    .values()
                    .filter(|it| !s.present.contains(&it.uid))
                    .map(move |it| (i, it.clone()))
            })
            .collect();
        let mut by_weak: HashMap<String, Vec<usize>> = HashMap::new();
        for (n, (_, it)) in vanished.iter().enumerate() {
            if let Some(fp) = &it.fingerprint {
                by_weak
                    .entry(o365_migrate_mime::weak_key(fp).to_owned())
                    .or_default()
                    .push(n);
            }
        }
        let mut taken: HashSet<usize> = HashSet::new();
        let mut moves: Vec<Move> = Vec::new();
        if !by_weak.is_empty() {
            for (to, scan) in scans.iter().enumerate() {
                if scan.new.is_empty() {
                    continue;
                }
                let ctx = format!("mailbox {} folder {}", pair.source, scan.path);
                session
                    .examine(&scan.path)
                    .await
                    .map_err(|e| Error::source(&ctx, e))?;
                count(1);
                // Header identity first (cheap), then the bytes of the candidates only.
                let mut candidates = Vec::new();
                {
                    let mut stream = session.fetch(&scan.new, metadata_fetch());
                    while let Some(m) = stream.next().await {
                        let m = m.map_err(|e| Error::source(&ctx, e))?;
                        let weak = meta_of(&m).fingerprint.unwrap_or_default();
                        if by_weak.contains_key(&weak) {
                            candidates.push(m.uid);
                        }
                    }
                }
                count(scan.new.len().div_ceil(250) as u64);
                if candidates.is_empty() {
                    continue;
                }
                let opts = imap::FetchOptions {
                    items: imap::FetchItems {
                        flags: true,
                        ..imap::FetchItems::body_only()
                    },
                    batch_size: 50,
                    pipeline: 2,
                };
                count(candidates.len().div_ceil(50) as u64);
                let mut stream = session.fetch(&candidates, opts);
                while let Some(m) = stream.next().await {
                    let m = m.map_err(|e| Error::source(&ctx, e))?;
                    let Some(raw) = m.body.as_ref() else { continue };
                    let id = o365_migrate_mime::fingerprint(o365_migrate_mime::header_block(raw));
                    let key = o365_migrate_mime::item_key(raw, &id);
                    let weak = o365_migrate_mime::weak_key(&key).to_owned();
                    let found = by_weak.get(&weak).and_then(|list| {
                        list.iter().copied().find(|n| {
                            !taken.contains(n)
                                && vanished[*n].1.fingerprint.as_deref() == Some(key.as_str())
                        })
                    });
                    if let Some(n) = found {
                        taken.insert(n);
                        let (from, item) = vanished[n].clone();
                        moves.push(Move {
                            from,
                            item,
                            to,
                            uid: m.uid,
                            flags: m.flags.clone(),
                        });
                    }
                }
            }
        }

        // 3. Carry the changes, four at a time, recording each after the target confirmed it.
        let mut held = Held::default();
        let mut moved_in: HashSet<(usize, u32)> = HashSet::new();
        let mut pending: Vec<SyncChange> = Vec::new();
        let mut events: Vec<EventRecord> = Vec::new();
        let mw = mb.mw;
        let event = |kind: &str, detail: String| EventRecord {
            mailbox: Some(mb.mailbox),
            kind: kind.to_owned(),
            detail,
        };

        // Moves.
        let results: Vec<(usize, Result<Option<String>>)> =
            futures_util::stream::iter(moves.iter().enumerate())
                .map(|(n, mv)| {
                    let (from, to) = (&scans[mv.from].handle, &scans[mv.to].handle);
                    async move {
                        let Some(tid) = mv.item.target_id.as_deref() else {
                            return (n, Ok(None));
                        };
                        if from.target_id == to.target_id {
                            // Both source folders map to one target folder: nothing moves.
                            return (n, Ok(Some(tid.to_owned())));
                        }
                        let key = mv.item.fingerprint.as_deref().unwrap_or_default();
                        let r = mw
                            .move_item(from, tid, to, key)
                            .await
                            .map_err(|e| Error::target(format!("move in {}", pair.target), e));
                        (n, r)
                    }
                })
                .buffer_unordered(CHANGES_IN_FLIGHT)
                .collect()
                .await;
        let mut reflag: Vec<(usize, SyncItem, Vec<String>)> = Vec::new();
        for (n, r) in results {
            let mv = &moves[n];
            let (from, to) = (&scans[mv.from], &scans[mv.to]);
            match r {
                Ok(Some(new_id)) => {
                    let now = flags_text(&mv.flags);
                    pending.push(SyncChange::Moved {
                        id: mv.item.id,
                        folder: to.folder,
                        uidvalidity: to.uidvalidity,
                        uid: mv.uid,
                        target_id: new_id.clone(),
                        flags: mv.item.flags.clone().unwrap_or_default(),
                    });
                    events.push(event(
                        "item_moved",
                        format!(
                            "{} UID {} → {} UID {}",
                            from.path, mv.item.uid, to.path, mv.uid
                        ),
                    ));
                    tally.moved.fetch_add(1, Ordering::Relaxed);
                    moved_in.insert((mv.to, mv.uid));
                    if mv.item.flags.as_deref() != Some(now.as_str()) {
                        let mut item = mv.item.clone();
                        item.target_id = Some(new_id);
                        reflag.push((mv.to, item, mv.flags.clone()));
                    }
                }
                Ok(None) => {
                    // Not in the target any more (removed there): the new UID is copied as a
                    // new item, the old row is closed.
                    pending.push(SyncChange::Gone {
                        id: mv.item.id,
                        gone: Gone::Deleted,
                    });
                    events.push(event(
                        "item_gone_from_target",
                        format!(
                            "{} UID {}: moved to {} at the source but no longer in the target; \
                             copied again",
                            from.path, mv.item.uid, to.path
                        ),
                    ));
                }
                Err(e) if stops_mailbox(&e) => {
                    self.store.record_sync(mb.run, &pending, &events).await?;
                    return Err(e);
                }
                Err(e) => {
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                    held.uids.entry(to.path.clone()).or_default().insert(mv.uid);
                    events.push(event(
                        "sync_failed",
                        format!(
                            "move of {} UID {} to {}: {e}",
                            from.path, mv.item.uid, to.path
                        ),
                    ));
                }
            }
        }
        let failed_moves: HashSet<usize> = held
            .uids
            .keys()
            .filter_map(|p| scans.iter().position(|s| &s.path == p))
            .collect();
        for i in failed_moves {
            scans[i].failed = true;
        }

        // Flags: every present migrated item whose flags differ, plus moved ones.
        let mut flag_work: Vec<(usize, SyncItem, Vec<String>)> = reflag;
        for (i, scan) in scans.iter().enumerate() {
            for (uid, flags) in &scan.flags {
                if let Some(item) = scan.stored.get(uid)
                    && item.flags.as_deref() != Some(flags_text(flags).as_str())
                {
                    flag_work.push((i, item.clone(), flags.clone()));
                }
            }
        }
        flag_work.sort_by_key(|(i, it, _)| (*i, it.uid));
        let results: Vec<(usize, Result<bool>)> =
            futures_util::stream::iter(flag_work.iter().enumerate())
                .map(|(n, (i, item, flags))| {
                    let handle = &scans[*i].handle;
                    async move {
                        let Some(tid) = item.target_id.as_deref() else {
                            return (n, Ok(false));
                        };
                        let f =
                            o365_migrate_mime::Flags::from_imap(flags.iter().map(String::as_str));
                        let r = mw
                            .set_flags(handle, tid, &f)
                            .await
                            .map_err(|e| Error::target(format!("flags in {}", pair.target), e));
                        (n, r)
                    }
                })
                .buffer_unordered(CHANGES_IN_FLIGHT)
                .collect()
                .await;
        for (n, r) in results {
            let (i, item, flags) = &flag_work[n];
            match r {
                Ok(true) => {
                    pending.push(SyncChange::Flags {
                        id: item.id,
                        flags: flags_text(flags),
                    });
                    tally.flags.fetch_add(1, Ordering::Relaxed);
                }
                Ok(false) => events.push(event(
                    "item_gone_from_target",
                    format!(
                        "{} UID {}: its flags changed at the source but it is no longer in the \
                         target",
                        scans[*i].path, item.uid
                    ),
                )),
                Err(e) if stops_mailbox(&e) => {
                    self.store.record_sync(mb.run, &pending, &events).await?;
                    return Err(e);
                }
                Err(e) => {
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                    scans[*i].failed = true;
                    events.push(event(
                        "sync_failed",
                        format!("flags of {} UID {}: {e}", scans[*i].path, item.uid),
                    ));
                }
            }
            if pending.len() >= RECORD_BATCH {
                self.store.record_sync(mb.run, &pending, &events).await?;
                pending.clear();
                events.clear();
            }
        }

        // Deletions: kept unless asked (then also those earlier passes kept).
        let mut gone: Vec<(usize, SyncItem)> = vanished
            .into_iter()
            .enumerate()
            .filter(|(n, _)| !taken.contains(n))
            .map(|(_, v)| v)
            .collect();
        if opts.propagate_deletes {
            gone.extend(
                scans
                    .iter()
                    .enumerate()
                    .flat_map(|(i, s)| s.kept.iter().map(move |k| (i, k.clone()))),
            );
            let results: Vec<(usize, Result<bool>)> =
                futures_util::stream::iter(gone.iter().enumerate())
                    .map(|(n, (i, item))| {
                        let handle = &scans[*i].handle;
                        async move {
                            let Some(tid) = item.target_id.as_deref() else {
                                return (n, Ok(false));
                            };
                            let r = mw.delete_item(handle, tid).await.map_err(|e| {
                                Error::target(format!("delete in {}", pair.target), e)
                            });
                            (n, r)
                        }
                    })
                    .buffer_unordered(CHANGES_IN_FLIGHT)
                    .collect()
                    .await;
            for (n, r) in results {
                let (i, item) = &gone[n];
                match r {
                    Ok(_) => {
                        pending.push(SyncChange::Gone {
                            id: item.id,
                            gone: Gone::Deleted,
                        });
                        events.push(event(
                            "item_deleted",
                            format!(
                                "{} UID {}: deleted at the source, deleted in the target",
                                scans[*i].path, item.uid
                            ),
                        ));
                        tally.deleted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if stops_mailbox(&e) => {
                        self.store.record_sync(mb.run, &pending, &events).await?;
                        return Err(e);
                    }
                    Err(e) => {
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                        events.push(event(
                            "sync_failed",
                            format!("delete of {} UID {}: {e}", scans[*i].path, item.uid),
                        ));
                    }
                }
            }
        } else {
            for (i, item) in &gone {
                pending.push(SyncChange::Gone {
                    id: item.id,
                    gone: Gone::Kept,
                });
                events.push(event(
                    "item_kept",
                    format!(
                        "{} UID {}: deleted at the source, kept in the target (sync \
                         --propagate-deletes deletes it there too)",
                        scans[*i].path, item.uid
                    ),
                ));
                tally.kept.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.store.record_sync(mb.run, &pending, &events).await?;
        for (i, scan) in scans.iter().enumerate() {
            let held_here = held.uids.get(&scan.path);
            let left = scan
                .new
                .iter()
                .any(|u| !moved_in.contains(&(i, *u)) && !held_here.is_some_and(|h| h.contains(u)));
            if !left && !scan.retries {
                held.quiet.insert(scan.path.clone());
            }
        }
        // 4. The folders whose every change went through start from here next time.
        for scan in scans.iter().filter(|s| !s.failed) {
            self.store
                .set_highest_modseq(scan.folder, scan.modseq, false)
                .await?;
        }
        Ok(held)
    }
}

/// One mailbox's "nothing left behind" receipt, written by `sync --final` after the last pass
/// and `verify --deep`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FinalReceipt {
    /// Source mailbox.
    pub source: String,
    /// Target mailbox.
    pub target: String,
    /// Items by status in the state store.
    pub counts: crate::state::StatusCounts,
    /// The newest message the source had (by INTERNALDATE) and where it is in the target.
    pub last_message: Option<LastMessage>,
}

/// The newest migrated message of a mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastMessage {
    /// Source folder.
    pub folder: String,
    /// Source UID.
    pub uid: u32,
    /// Subject.
    pub subject: Option<String>,
    /// INTERNALDATE (arrival at the source), Unix seconds.
    pub arrived: Option<i64>,
    /// Its id in the target.
    pub target_id: Option<String>,
    /// When the state store recorded it in the target, Unix milliseconds.
    pub recorded_at: i64,
}

impl Engine {
    /// Per mailbox of the pairing: its counts and the newest message the source had, with
    /// its id in the target (the receipt `sync --final` writes).
    pub async fn final_receipts(&self) -> Result<Vec<FinalReceipt>> {
        let pairing = self.pairing().await?;
        let stored = self.store.mailboxes().await?;
        let mut out = Vec::new();
        for p in &pairing.pairs {
            let Some(rec) = stored.iter().find(|m| m.source == p.source) else {
                out.push(FinalReceipt {
                    source: p.source.clone(),
                    target: p.target.clone(),
                    counts: Default::default(),
                    last_message: None,
                });
                continue;
            };
            let counts = self.store.counts(Some(rec.id)).await?;
            let mut last: Option<crate::state::ItemRecord> = None;
            let mut after = 0;
            loop {
                let page = self.store.items(Some(rec.id), after, 1000).await?;
                let Some(end) = page.last() else { break };
                after = end.id;
                for it in page {
                    if it.status == crate::state::ItemStatus::Migrated
                        && last
                            .as_ref()
                            .is_none_or(|l| it.internal_date > l.internal_date)
                    {
                        last = Some(it);
                    }
                }
            }
            out.push(FinalReceipt {
                source: p.source.clone(),
                target: p.target.clone(),
                counts,
                last_message: last.map(|l| LastMessage {
                    folder: l.folder_path,
                    uid: l.uid,
                    subject: l.subject,
                    arrived: l.internal_date,
                    target_id: l.target_id,
                    recorded_at: l.updated_at,
                }),
            });
        }
        Ok(out)
    }
}
