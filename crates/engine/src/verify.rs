//! `verify`: per folder, source count against target count, and per message the item keys
//! and the content; never changes the target.
//!
//! Content, for targets that store the raw message (IMAP, EML): by default the size the
//! target reports against the source's `RFC822.SIZE`, and, where the target's listing carries
//! content keys (EML), the key recorded when the item was written; with `deep`, every matched
//! message is read back and its content tag compared with the recorded one, so a changed
//! byte shows.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::{StreamExt, stream};

use o365_migrate_target as target;
use serde::Serialize;
use target::FolderSpec;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::folders::target_specs;
use crate::gmail::{GmailLayout, Placement};
use crate::matching::{MailboxPair, Unpaired};
use crate::source::SourceLayout;
use crate::state::ItemMeta;
use crate::state::ItemStatus;

/// One message that differs between source and target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffItem {
    /// Dedupe key (`mid:<Message-ID>` or `hk1:…`; for extra items the target's own key).
    pub key: String,
    /// Source UID (missing items) or target id (extra items).
    pub id: String,
    /// Subject.
    pub subject: Option<String>,
    /// From.
    pub from: Option<String>,
    /// Date (INTERNALDATE / received), Unix seconds.
    pub date: Option<i64>,
}

/// Verification of one folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FolderVerify {
    /// Source folder path.
    pub source: String,
    /// Target folder path.
    pub target: String,
    /// Messages in the source folder.
    pub source_count: u64,
    /// Messages excluded by filters or recorded as skipped.
    pub skipped: u64,
    /// Messages expected in the target (source minus skipped).
    pub expected: u64,
    /// Messages the target reports.
    pub target_count: u64,
    /// Messages `sync` kept in the target after the source deleted them (expected there, not
    /// extra; `sync --propagate-deletes` deletes them).
    pub kept: u64,
    /// Source messages not found in the target.
    pub missing: Vec<DiffItem>,
    /// Target messages with no source counterpart (or extra copies).
    pub extra: Vec<DiffItem>,
    /// Messages found in the target whose content differs from the source's.
    pub differs: Vec<Difference>,
}

/// A message found in the target whose content is not the source's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The source message (its UID in `id`).
    pub item: DiffItem,
    /// The target's id of the message it was matched with.
    pub target_id: String,
    /// What differs.
    pub what: String,
}

/// Verification of one mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailboxVerify {
    /// Source login.
    pub source: String,
    /// Target mailbox.
    pub target: String,
    /// Per folder.
    pub folders: Vec<FolderVerify>,
    /// Contacts, calendars and tasks, per source collection (`[dav]`).
    pub collections: Vec<crate::pim::CollectionVerify>,
    /// Set when the mailbox could not be verified.
    pub error: Option<String>,
}

impl MailboxVerify {
    /// Whether every folder matched and nothing stopped the check.
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && self
                .collections
                .iter()
                .all(crate::pim::CollectionVerify::ok)
            && self.folders.iter().all(|f| {
                f.missing.is_empty()
                    && f.extra.is_empty()
                    && f.differs.is_empty()
                    && f.expected + f.kept == f.target_count
            })
    }
}

/// The state-store record with what the last `verify` found, per mailbox ([`KeptVerify`]).
pub const VERIFY_RECORD: &str = "verify";

/// What the state store keeps of the last `verify` (read by the dashboard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct KeptVerify {
    /// When it ran, Unix milliseconds.
    pub at: i64,
    /// Whether it read messages back (`--deep`).
    pub deep: bool,
    /// Whether everything matched.
    pub ok: bool,
    /// Per mailbox.
    pub mailboxes: Vec<KeptMailboxVerify>,
}

/// One mailbox in [`KeptVerify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct KeptMailboxVerify {
    /// Source login.
    pub source: String,
    /// Whether it matched.
    pub ok: bool,
    /// What stopped the check, if anything.
    pub error: Option<String>,
    /// Folders compared.
    pub folders: u64,
    /// Items missing in the target.
    pub missing: u64,
    /// Items in the target the source does not have.
    pub extra: u64,
    /// Items whose content differs.
    pub differs: u64,
}

/// The result of `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// True only when every folder of every mailbox matches.
    pub ok: bool,
    /// Per mailbox.
    pub mailboxes: Vec<MailboxVerify>,
    /// Sources the job does not migrate (not paired, excluded), with the reason: not checked,
    /// and not a difference.
    pub skipped: Vec<Unpaired>,
}

impl Engine {
    /// `verify`: per folder, source count against target count, per message identity and
    /// content (see the module docs); `deep` reads every message back from targets that keep
    /// the raw bytes and compares its content.
    pub async fn verify(&self, deep: bool) -> Result<VerifyReport> {
        let max_target = self.target.capabilities().max_message_bytes;
        // Mailboxes `[limits] mailboxes_at_once` at a time, reported in plan order.
        let at_once = self.job.limits.mailboxes_at_once.max(1) as usize;
        let pairing = self.pairing().await?;
        let out: Vec<MailboxVerify> = stream::iter(pairing.pairs)
            .map(|p| async move {
                let mut mv = MailboxVerify {
                    source: p.source.clone(),
                    target: p.target.clone(),
                    folders: Vec::new(),
                    collections: Vec::new(),
                    error: None,
                };
                if let Err(e) = self.verify_mailbox(&p, &mut mv, max_target, deep).await {
                    mv.error = Some(e.to_string());
                }
                match self.verify_pim(&p).await {
                    Ok(c) => mv.collections = c,
                    Err(e) if mv.error.is_none() => mv.error = Some(e.to_string()),
                    Err(_) => {}
                }
                mv
            })
            .buffered(at_once)
            .collect()
            .await;
        let ok = out.iter().all(MailboxVerify::ok);
        let kept = KeptVerify {
            at: crate::state::now_ms(),
            deep,
            ok,
            mailboxes: out
                .iter()
                .map(|m| KeptMailboxVerify {
                    source: m.source.clone(),
                    ok: m.ok(),
                    error: m.error.clone(),
                    folders: m.folders.len() as u64,
                    missing: m
                        .folders
                        .iter()
                        .map(|f| f.missing.len() as u64)
                        .sum::<u64>()
                        + m.collections
                            .iter()
                            .map(|c| c.missing.len() as u64)
                            .sum::<u64>(),
                    extra: m.folders.iter().map(|f| f.extra.len() as u64).sum::<u64>()
                        + m.collections
                            .iter()
                            .map(|c| c.extra.len() as u64)
                            .sum::<u64>(),
                    differs: m
                        .folders
                        .iter()
                        .map(|f| f.differs.len() as u64)
                        .sum::<u64>()
                        + m.collections
                            .iter()
                            .map(|c| c.differs.len() as u64)
                            .sum::<u64>(),
                })
                .collect(),
        };
        crate::state::put_json(self.store.as_ref(), VERIFY_RECORD, &kept).await?;
        Ok(VerifyReport {
            ok,
            mailboxes: out,
            skipped: pairing.unpaired,
        })
    }

    async fn verify_mailbox(
        &self,
        p: &MailboxPair,
        mv: &mut MailboxVerify,
        max_target: Option<u64>,
        deep: bool,
    ) -> Result<()> {
        // Only a target that stores the source's bytes unchanged can be compared byte for byte.
        let raw_target = self.target.capabilities().keeps_raw_bytes;
        // Skipped items per (folder path, uidvalidity, uid) from the state store.
        let mut skipped: HashSet<(String, u32, u32)> = HashSet::new();
        // The item keys recorded when the items were written (content-aware), by source UID.
        let mut item_keys: HashMap<(String, u32, u32), String> = HashMap::new();
        // Target ids `sync` kept after the source deleted them, by source folder path.
        let mut kept: HashMap<String, HashSet<String>> = HashMap::new();
        if let Some(rec) = self
            .store
            .mailboxes()
            .await?
            .into_iter()
            .find(|m| m.source == p.source)
        {
            for f in self.store.folders(rec.id).await? {
                let ids = self.store.kept_target_ids(f.id).await?;
                if !ids.is_empty() {
                    kept.entry(f.source_path).or_default().extend(ids);
                }
            }
            let mut after = 0;
            loop {
                let page = self.store.items(Some(rec.id), after, 1000).await?;
                let Some(last) = page.last() else { break };
                after = last.id;
                for it in &page {
                    // An item recorded as expunged that the source still lists was not gone:
                    // it is expected (and missing if the target lacks it).
                    if it.status == ItemStatus::Skipped
                        && it.reason.as_deref() != Some(crate::run::EXPUNGED_REASON)
                    {
                        skipped.insert((it.folder_path.clone(), it.uidvalidity, it.uid));
                    }
                    if let Some(fp) = &it.fingerprint {
                        item_keys
                            .insert((it.folder_path.clone(), it.uidvalidity, it.uid), fp.clone());
                    }
                }
            }
        }
        let mut s = self.open_source(&p.source).await?;
        let SourceLayout { mapped, gmail } = self.source_layout(&mut s).await?;
        let specs: Vec<FolderSpec> = target_specs(&mapped, &self.target.capabilities())
            .specs
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        let mw = self
            .target
            .open_mailbox(&p.target)
            .await
            .map_err(|e| Error::target(format!("target mailbox {}", p.target), e))?;
        // Looked up, never created: verify does not change the target.
        let handles = mw
            .find_folders(&specs)
            .await
            .map_err(|e| Error::target(format!("target folders of {}", p.target), e))?;
        for (spec, h) in specs.iter().zip(handles) {
            let all_mail = gmail.as_ref().filter(|g| g.all_mail == spec.source);
            let (uv, metas, labels) = self
                .source_folder_scan_with(&mut s, &spec.source, all_mail.is_some())
                .await?;
            // Gmail's All Mail is compared per target folder its labels place messages in.
            let units = match all_mail {
                None => vec![(spec.source.clone(), spec.clone(), h, metas)],
                Some(g) => gmail_units(&*mw, g, spec, h, metas, &labels, &mut skipped, uv)
                    .await
                    .map_err(|e| Error::target(format!("target folders of {}", p.target), e))?,
            };
            for (source_label, unit_spec, h, metas) in units {
                let spec_display = unit_spec.display_path();
                let mut fv = FolderVerify {
                    source: source_label,
                    target: h
                        .as_ref()
                        .map(|h| h.display_path.clone())
                        .unwrap_or_else(|| spec_display.clone()),
                    source_count: metas.len() as u64,
                    skipped: 0,
                    expected: 0,
                    target_count: 0,
                    kept: 0,
                    missing: Vec::new(),
                    extra: Vec::new(),
                    differs: Vec::new(),
                };
                let mut expected = Expected::default();
                for (uid, (meta, flags)) in metas {
                    if skipped.contains(&(spec.source.clone(), uv, uid))
                        || self.filter_reason(&meta, max_target).is_some()
                    {
                        fv.skipped += 1;
                        continue;
                    }
                    fv.expected += 1;
                    // The header key from this scan; the content-aware item key recorded at write
                    // time when there is one (it tells apart two contents of one Message-ID).
                    let weak = meta.fingerprint.clone().unwrap_or_default();
                    let strong = item_keys.get(&(spec.source.clone(), uv, uid)).cloned();
                    expected.push(
                        uid,
                        strong,
                        weak.clone(),
                        meta.size,
                        flags,
                        DiffItem {
                            key: weak,
                            id: format!("uid {uid}"),
                            subject: meta.subject,
                            from: meta.sender,
                            date: meta.internal_date,
                        },
                    );
                }
                let (count, items) = match &h {
                    Some(h) => {
                        let ctx = format!("target folder {}", h.display_path);
                        let count = mw.count(h).await.map_err(|e| Error::target(&ctx, e))?;
                        (count, mw.list(h).await.map_err(|e| Error::target(&ctx, e))?)
                    }
                    // The folder does not exist in the target: everything expected is missing.
                    None => (0, Vec::new()),
                };
                fv.target_count = count;
                // Exact (content-aware) matches first, then by Message-ID / header key for target
                // items whose content is unknown (IMAP and EML listings, other tools' items).
                let mut unmatched = Vec::new();
                let mut pairs = Vec::new();
                for t in items {
                    let key = t
                        .fingerprint
                        .clone()
                        .or_else(|| t.internet_message_id.as_ref().map(|m| format!("mid:{m}")))
                        .unwrap_or_default();
                    match expected.take_strong(&key) {
                        Some(i) => pairs.push((i, t)),
                        None => unmatched.push((key, t)),
                    }
                }
                for (key, t) in unmatched {
                    let weak = o365_migrate_mime::weak_key(&key).to_owned();
                    let mid = t.internet_message_id.as_ref().map(|m| format!("mid:{m}"));
                    let matched = expected.take_weak(&weak, t.size).or_else(|| {
                        mid.filter(|m| *m != weak)
                            .and_then(|m| expected.take_weak(&m, t.size))
                    });
                    match matched {
                        Some(i) => {
                            // The target names the content (EML lists content keys) and it is not
                            // the one recorded for this message: the content differs.
                            if let Some(strong) = &expected.items[i].strong
                                && key != *strong
                                && !o365_migrate_mime::weak_key(&key).eq(key.as_str())
                            {
                                fv.differs.push(Difference {
                                    item: expected.items[i].diff.clone(),
                                    target_id: t.id.clone(),
                                    what: format!(
                                        "content differs: the target holds {key}, the source \
                                     message was written as {strong}"
                                    ),
                                });
                                continue;
                            }
                            pairs.push((i, t));
                        }
                        None if kept
                            .get(&spec.source)
                            .is_some_and(|ids| ids.contains(&t.id)) =>
                        {
                            fv.kept += 1;
                        }
                        None => fv.extra.push(DiffItem {
                            key,
                            id: t.id.clone(),
                            subject: t.subject.clone(),
                            from: t.from.clone(),
                            date: t.received.map(|r| r.unix_seconds()),
                        }),
                    }
                }
                // The state the target keeps: received date, read, flagged.
                let caps = self.target.capabilities();
                pairs.retain(|(i, t)| {
                    let e = &expected.items[*i];
                    let mut what = Vec::new();
                    if caps.keeps_received_date
                        && let (Some(source), Some(target)) =
                            (e.diff.date, t.received.map(|r| r.unix_seconds()))
                        && source != target
                    {
                        what.push(format!(
                            "received {} in the source, {} in the target",
                            source, target
                        ));
                    }
                    if caps.keeps_seen && e.flags.seen != t.is_read {
                        what.push(format!(
                            "read {} in the source, {} in the target",
                            e.flags.seen, t.is_read
                        ));
                    }
                    if caps.keeps_flagged && e.flags.flagged != t.flagged {
                        what.push(format!(
                            "flagged {} in the source, {} in the target",
                            e.flags.flagged, t.flagged
                        ));
                    }
                    if what.is_empty() {
                        return true;
                    }
                    fv.differs.push(Difference {
                        item: e.diff.clone(),
                        target_id: t.id.clone(),
                        what: what.join("; "),
                    });
                    false
                });
                if raw_target && let Some(h) = &h {
                    // Pairs whose stored content is not the one recorded for their source message:
                    // (source item, target item, the target's content tag).
                    let mut crossed: Vec<(usize, target::TargetItem, String)> = Vec::new();
                    for (i, t) in std::mem::take(&mut pairs) {
                        let e = &expected.items[i];
                        if let (Some(source), Some(target)) = (e.size, t.size)
                            && source != target
                        {
                            fv.differs.push(Difference {
                            item: e.diff.clone(),
                            target_id: t.id.clone(),
                            what: format!(
                                "size differs: {source} bytes in the source, {target} in the target"
                            ),
                        });
                            continue;
                        }
                        if !deep {
                            continue;
                        }
                        let Some(recorded) = e.strong.as_deref().and_then(content_tag_of) else {
                            continue;
                        };
                        let ctx = format!("target folder {}", h.display_path);
                        let Some(raw) = mw
                            .read_raw(h, &t.id)
                            .await
                            .map_err(|err| Error::target(&ctx, err))?
                        else {
                            continue;
                        };
                        let stored = o365_migrate_mime::content_tag(&raw);
                        if stored != recorded {
                            crossed.push((i, t, stored));
                        }
                    }
                    // Messages that share a Message-ID and a size are paired by header key and size
                    // alone; the content tags read back decide which is which. Only what no
                    // re-pairing explains differs.
                    for (i, t, stored) in repair_crossed(&expected, crossed) {
                        let e = &expected.items[i];
                        let recorded = e.strong.as_deref().and_then(content_tag_of).unwrap_or("");
                        fv.differs.push(Difference {
                            item: e.diff.clone(),
                            target_id: t.id.clone(),
                            what: format!(
                                "content differs: content tag {stored} in the target, {recorded} \
                             when it was written"
                            ),
                        });
                    }
                }
                if !raw_target && let Some(h) = &h {
                    // Targets that rebuild the item (Graph): what they show of each message
                    // against the same conversion of the source's bytes.
                    self.compare_content(
                        &mut s,
                        &*mw,
                        h,
                        &spec.source,
                        &expected,
                        pairs,
                        deep,
                        &mut fv,
                    )
                    .await?;
                }
                let mut missing: Vec<DiffItem> = expected.missing();
                missing.sort_by(|a, b| a.id.cmp(&b.id));
                fv.missing = missing;
                mv.folders.push(fv);
            }
        }
        let _ = s.logout().await;
        Ok(())
    }
}

/// Source messages read per round trip when verify compares content.
const CONTENT_BATCH: usize = 50;
/// Target reads in flight per mailbox when verify compares content.
const CONTENT_READS_IN_FLIGHT: usize = 8;

impl Engine {
    /// Compares, per matched pair, the target's [`ContentSummary`] (see
    /// [`target::MailboxWriter::read_content`]) with the source message's, converted as the
    /// writer converts it. Source bodies are read `CONTENT_BATCH` at a time from `s`, which
    /// still has `source_folder` selected from the scan.
    #[allow(clippy::too_many_arguments)]
    async fn compare_content(
        &self,
        s: &mut o365_migrate_imap::Session,
        mw: &dyn target::MailboxWriter,
        h: &target::FolderHandle,
        source_folder: &str,
        expected: &Expected,
        pairs: Vec<(usize, target::TargetItem)>,
        deep: bool,
        fv: &mut FolderVerify,
    ) -> Result<()> {
        let ctx = format!("folder {source_folder}");
        let tctx = format!("target folder {}", h.display_path);
        for chunk in pairs.chunks(CONTENT_BATCH) {
            let uids: Vec<u32> = chunk.iter().map(|(i, _)| expected.items[*i].uid).collect();
            let opts = o365_migrate_imap::FetchOptions {
                items: o365_migrate_imap::FetchItems::body_only(),
                batch_size: CONTENT_BATCH,
                pipeline: 1,
            };
            let mut bodies = HashMap::new();
            {
                let mut stream = s.fetch(&uids, opts);
                while let Some(m) = stream.next().await {
                    let m = m.map_err(|e| Error::source(&ctx, e))?;
                    if let Some(b) = m.body {
                        bodies.insert(m.uid, b);
                    }
                }
            }
            // The target reads in parallel (the writer keeps within the target's limits).
            let reads: Vec<_> = stream::iter(chunk.iter())
                .map(|(_, t)| mw.read_content(h, &t.id, deep))
                .buffered(CONTENT_READS_IN_FLIGHT)
                .collect()
                .await;
            for ((i, t), found) in chunk.iter().zip(reads) {
                let e = &expected.items[*i];
                let Some(raw) = bodies.get(&e.uid) else {
                    // Gone from the source since the scan: nothing to compare.
                    continue;
                };
                let Some(found) = found.map_err(|err| Error::target(&tctx, err))? else {
                    continue;
                };
                let received = e
                    .diff
                    .date
                    .and_then(o365_migrate_mime::InternalDate::from_unix_utc);
                let source = o365_migrate_mime::ContentSummary::of_graph(
                    &o365_migrate_mime::to_graph(raw, &e.flags, received.as_ref()).value,
                );
                let what = source.differences(&found);
                if !what.is_empty() {
                    fv.differs.push(Difference {
                        item: e.diff.clone(),
                        target_id: t.id.clone(),
                        what: what.join("; "),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Re-pairs source items and target items whose contents were crossed (each target item's
/// content tag is the one recorded for another source item of the list); returns the pairs
/// that stay unexplained, each source with a target it was paired with.
fn repair_crossed(
    expected: &Expected,
    crossed: Vec<(usize, target::TargetItem, String)>,
) -> Vec<(usize, target::TargetItem, String)> {
    let mut sources: Vec<usize> = crossed.iter().map(|(i, _, _)| *i).collect();
    let mut left_targets = Vec::new();
    for (_, t, stored) in crossed {
        let owner = sources.iter().position(|&i| {
            expected.items[i].strong.as_deref().and_then(content_tag_of) == Some(stored.as_str())
        });
        match owner {
            Some(k) => {
                sources.remove(k);
            }
            None => left_targets.push((t, stored)),
        }
    }
    sources
        .into_iter()
        .zip(left_targets)
        .map(|(i, (t, stored))| (i, t, stored))
        .collect()
}

/// The content tag inside an item key (`c1:<content tag>:<header key>`).
fn content_tag_of(item_key: &str) -> Option<&str> {
    let rest = item_key.strip_prefix(o365_migrate_mime::ITEM_KEY_VERSION)?;
    let rest = rest.strip_prefix(':')?;
    rest.split_once(':').map(|(tag, _)| tag)
}

/// One message verify expects.
struct ExpectedItem {
    /// Source UID.
    uid: u32,
    diff: DiffItem,
    /// The item key recorded when it was written (content-aware), if any.
    strong: Option<String>,
    /// Its size at the source (`RFC822.SIZE`).
    size: Option<u64>,
    /// Its flags at the source.
    flags: o365_migrate_mime::Flags,
    taken: bool,
}

/// The source items verify expects in one target folder, findable by item key and by header key.
#[derive(Default)]
struct Expected {
    items: Vec<ExpectedItem>,
    by_strong: HashMap<String, Vec<usize>>,
    by_weak: HashMap<String, Vec<usize>>,
}

impl Expected {
    fn push(
        &mut self,
        uid: u32,
        strong: Option<String>,
        weak: String,
        size: Option<u64>,
        flags: o365_migrate_mime::Flags,
        item: DiffItem,
    ) {
        let i = self.items.len();
        if let Some(s) = &strong {
            self.by_strong.entry(s.clone()).or_default().push(i);
        }
        self.items.push(ExpectedItem {
            uid,
            diff: item,
            strong,
            size,
            flags,
            taken: false,
        });
        self.by_weak.entry(weak).or_default().push(i);
    }

    /// Takes one untaken item of `list`, one of this size first when the size is known.
    fn take(&mut self, list: Option<&Vec<usize>>, size: Option<u64>) -> Option<usize> {
        let list = list?;
        let free = |items: &[ExpectedItem], i: usize| items.get(i).is_some_and(|e| !e.taken);
        let pick = size
            .and_then(|s| {
                list.iter()
                    .copied()
                    .find(|&i| free(&self.items, i) && self.items[i].size == Some(s))
            })
            .or_else(|| list.iter().copied().find(|&i| free(&self.items, i)))?;
        self.items[pick].taken = true;
        Some(pick)
    }

    /// Takes one expected item with this exact item key.
    fn take_strong(&mut self, key: &str) -> Option<usize> {
        let list = self.by_strong.get(key).cloned();
        self.take(list.as_ref(), None)
    }

    /// Takes one expected item with this Message-ID / header key (of this size first).
    fn take_weak(&mut self, key: &str, size: Option<u64>) -> Option<usize> {
        let list = self.by_weak.get(key).cloned();
        self.take(list.as_ref(), size)
    }

    fn missing(self) -> Vec<DiffItem> {
        self.items
            .into_iter()
            .filter(|e| !e.taken)
            .map(|e| e.diff)
            .collect()
    }
}

/// Gmail's All Mail as verify compares it: per target folder the labels place messages in,
/// (shown source, target folder, its handle, the messages placed there with the flags and
/// keywords the run gave them). Messages the strategy does not copy from All Mail count as
/// skipped.
#[allow(clippy::too_many_arguments)]
async fn gmail_units(
    mw: &dyn target::MailboxWriter,
    layout: &GmailLayout,
    all_mail: &FolderSpec,
    archive: Option<target::FolderHandle>,
    metas: BTreeMap<u32, (ItemMeta, o365_migrate_mime::Flags)>,
    labels: &BTreeMap<u32, Vec<String>>,
    skipped: &mut HashSet<(String, u32, u32)>,
    uv: u32,
) -> std::result::Result<Vec<GmailUnit>, target::Error> {
    let mut by_folder: BTreeMap<String, BTreeMap<u32, (ItemMeta, o365_migrate_mime::Flags)>> =
        BTreeMap::new();
    for (uid, (meta, mut flags)) in metas {
        let l = labels.get(&uid).map(Vec::as_slice).unwrap_or(&[]);
        match layout.place(l) {
            Placement::Skip(_) => {
                skipped.insert((all_mail.source.clone(), uv, uid));
                by_folder
                    .entry(layout.all_mail.clone())
                    .or_default()
                    .insert(uid, (meta, flags));
            }
            Placement::To {
                folder,
                keywords,
                flagged,
            } => {
                for k in keywords {
                    if !flags.keywords.iter().any(|x| x.eq_ignore_ascii_case(&k)) {
                        flags.keywords.push(k);
                    }
                }
                flags.flagged |= flagged;
                by_folder
                    .entry(folder)
                    .or_default()
                    .insert(uid, (meta, flags));
            }
        }
    }
    by_folder.entry(layout.all_mail.clone()).or_default();
    let specs: Vec<(String, FolderSpec)> = by_folder
        .keys()
        .filter(|f| **f != layout.all_mail)
        .filter_map(|f| layout.spec(f).map(|s| (f.clone(), s.clone())))
        .collect();
    let only: Vec<FolderSpec> = specs.iter().map(|(_, s)| s.clone()).collect();
    let found = if only.is_empty() {
        Vec::new()
    } else {
        mw.find_folders(&only).await?
    };
    let mut handles: HashMap<String, (FolderSpec, Option<target::FolderHandle>)> = specs
        .into_iter()
        .zip(found)
        .map(|((f, s), h)| (f, (s, h)))
        .collect();
    handles.insert(layout.all_mail.clone(), (all_mail.clone(), archive));
    Ok(by_folder
        .into_iter()
        .filter_map(|(folder, metas)| {
            let (spec, h) = handles.remove(&folder)?;
            let shown = if folder == layout.all_mail {
                format!("{} (no label places them)", all_mail.source)
            } else {
                format!("{} (labelled {folder})", all_mail.source)
            };
            Some((shown, spec, h, metas))
        })
        .collect())
}

/// One part of Gmail's All Mail in verify: shown source, target folder, handle, messages.
type GmailUnit = (
    String,
    FolderSpec,
    Option<target::FolderHandle>,
    BTreeMap<u32, (ItemMeta, o365_migrate_mime::Flags)>,
);
