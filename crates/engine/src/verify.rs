//! `verify`: per folder, source count against target count, and per message the item keys;
//! never changes the target.

use std::collections::{HashMap, HashSet};

use o365_migrate_target as target;
use serde::Serialize;
use target::FolderSpec;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::folders::folder_spec;
use crate::matching::MailboxPair;
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
    /// Source messages not found in the target.
    pub missing: Vec<DiffItem>,
    /// Target messages with no source counterpart (or extra copies).
    pub extra: Vec<DiffItem>,
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
    /// Set when the mailbox could not be verified.
    pub error: Option<String>,
}

/// The result of `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// True only when every folder of every mailbox matches.
    pub ok: bool,
    /// Per mailbox.
    pub mailboxes: Vec<MailboxVerify>,
}

impl Engine {
    /// `verify`: per folder, source count against target count and per message identity.
    pub async fn verify(&self) -> Result<VerifyReport> {
        let max_target = self.target.capabilities().max_message_bytes;
        let mut out = Vec::new();
        for p in self.pairs() {
            let mut mv = MailboxVerify {
                source: p.source.clone(),
                target: p.target.clone(),
                folders: Vec::new(),
                error: None,
            };
            if let Err(e) = self.verify_mailbox(&p, &mut mv, max_target).await {
                mv.error = Some(e.to_string());
            }
            out.push(mv);
        }
        let ok = out.iter().all(|m| {
            m.error.is_none()
                && m.folders.iter().all(|f| {
                    f.missing.is_empty() && f.extra.is_empty() && f.expected == f.target_count
                })
        });
        Ok(VerifyReport { ok, mailboxes: out })
    }

    async fn verify_mailbox(
        &self,
        p: &MailboxPair,
        mv: &mut MailboxVerify,
        max_target: Option<u64>,
    ) -> Result<()> {
        // Skipped items per (folder path, uidvalidity, uid) from the state store.
        let mut skipped: HashSet<(String, u32, u32)> = HashSet::new();
        // The item keys recorded when the items were written (content-aware), by source UID.
        let mut item_keys: HashMap<(String, u32, u32), String> = HashMap::new();
        if let Some(rec) = self
            .store
            .mailboxes()
            .await?
            .into_iter()
            .find(|m| m.source == p.source)
        {
            let mut after = 0;
            loop {
                let page = self.store.items(Some(rec.id), after, 1000).await?;
                let Some(last) = page.last() else { break };
                after = last.id;
                for it in &page {
                    if it.status == ItemStatus::Skipped {
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
        let mapped = self.mapped_folders(&mut s).await?;
        let specs: Vec<FolderSpec> = mapped
            .iter()
            .filter_map(|m| m.target().map(|t| folder_spec(&m.source.path, t)))
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
            let (uv, metas) = self.source_folder_scan(&mut s, &spec.source).await?;
            let mut fv = FolderVerify {
                source: spec.source.clone(),
                target: spec.display_path(),
                source_count: metas.len() as u64,
                skipped: 0,
                expected: 0,
                target_count: 0,
                missing: Vec::new(),
                extra: Vec::new(),
            };
            let mut expected = Expected::default();
            for (uid, meta) in metas {
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
                    strong,
                    weak.clone(),
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
            for t in items {
                let key = t
                    .fingerprint
                    .clone()
                    .or_else(|| t.internet_message_id.as_ref().map(|m| format!("mid:{m}")))
                    .unwrap_or_default();
                if !expected.take_strong(&key) {
                    unmatched.push((key, t));
                }
            }
            for (key, t) in unmatched {
                let weak = o365_migrate_mime::weak_key(&key).to_owned();
                let mid = t.internet_message_id.as_ref().map(|m| format!("mid:{m}"));
                let matched = expected.take_weak(&weak)
                    || mid.is_some_and(|m| m != weak && expected.take_weak(&m));
                if !matched {
                    fv.extra.push(DiffItem {
                        key,
                        id: t.id.clone(),
                        subject: t.subject.clone(),
                        from: t.from.clone(),
                        date: t.received.map(|r| r.unix_seconds()),
                    });
                }
            }
            let mut missing: Vec<DiffItem> = expected.missing();
            missing.sort_by(|a, b| a.id.cmp(&b.id));
            fv.missing = missing;
            mv.folders.push(fv);
        }
        let _ = s.logout().await;
        Ok(())
    }
}

/// The source items verify expects in one target folder, findable by item key and by header key.
#[derive(Default)]
struct Expected {
    items: Vec<(DiffItem, bool)>,
    by_strong: HashMap<String, Vec<usize>>,
    by_weak: HashMap<String, Vec<usize>>,
}

impl Expected {
    fn push(&mut self, strong: Option<String>, weak: String, item: DiffItem) {
        let i = self.items.len();
        self.items.push((item, false));
        if let Some(s) = strong {
            self.by_strong.entry(s).or_default().push(i);
        }
        self.by_weak.entry(weak).or_default().push(i);
    }

    fn take(&mut self, list: Option<&Vec<usize>>) -> bool {
        let Some(list) = list else { return false };
        for &i in list {
            if let Some((_, taken)) = self.items.get_mut(i)
                && !*taken
            {
                *taken = true;
                return true;
            }
        }
        false
    }

    /// Marks one expected item with this exact item key as found.
    fn take_strong(&mut self, key: &str) -> bool {
        let list = self.by_strong.get(key).cloned();
        self.take(list.as_ref())
    }

    /// Marks one expected item with this Message-ID / header key as found.
    fn take_weak(&mut self, key: &str) -> bool {
        let list = self.by_weak.get(key).cloned();
        self.take(list.as_ref())
    }

    fn missing(self) -> Vec<DiffItem> {
        self.items
            .into_iter()
            .filter(|(_, taken)| !taken)
            .map(|(d, _)| d)
            .collect()
    }
}
