//! The per-folder dedupe cache shared by the writers that can look items up (Graph, IMAP):
//! dedupe keys (fingerprint, `mid:<Message-ID>`) → the target id, one cell per item, so that
//! concurrent writes of the same message create it once.
//!
//! Keys come in two strengths. A content key (the engine's `c1:` item key) names one exact
//! message. A header key (`mid:<Message-ID>`, `hk1:…`, also as `fp:mid:…` from earlier
//! versions) cannot tell two contents apart: it only finds items known under no content key
//! (listed from the target by their headers, or written by another tool), and a new item with
//! a content key is never recorded under one.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::Error;
use crate::writer::WriteOutcome;

/// One item's target id, set once by whoever writes it.
pub(crate) type IdCell = Arc<OnceCell<String>>;

/// A key as the index holds it: the first 128 bits of its SHA-256. Keys are long (a content
/// key is 67 characters, a Message-ID often more) and a mailbox has tens of thousands; two keys
/// sharing a digest would take 2^64 keys to be likely.
type KeyDigest = [u8; 16];

fn digest(key: &str) -> KeyDigest {
    use sha2::Digest;
    let d = sha2::Sha256::digest(key.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// The keys of one target folder, loaded from the server once.
#[derive(Default)]
pub(crate) struct FolderIndex {
    /// Set when the folder's existing items have been read.
    pub(crate) loaded: OnceCell<()>,
    keys: Mutex<HashMap<KeyDigest, IdCell>>,
    /// Items listed from the target by their headers, every one of them per key (a writer
    /// confirms a match by content before it counts an item as present).
    listed: Mutex<HashMap<String, Vec<String>>>,
}

impl FolderIndex {
    /// Records an item already in the folder under `keys` (the first item of a key wins).
    ///
    /// A `mid:<Message-ID>` key is only recorded for an item known under no other key (one
    /// whose content fingerprint is unknown, e.g. written by another tool): one Message-ID
    /// on two different contents is two messages, and a content key tells them apart.
    pub(crate) fn insert_existing<I: IntoIterator<Item = String>>(&self, id: String, keys: I) {
        let keys: Vec<String> = keys.into_iter().collect();
        let has_content_key = keys.iter().any(|k| !is_mid(k));
        let cell: IdCell = Arc::new(OnceCell::new_with(Some(id)));
        let mut map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            if has_content_key && is_mid(&k) {
                continue;
            }
            map.entry(digest(&k)).or_insert_with(|| cell.clone());
        }
    }

    /// Remembers that the listed item `id` has `key` (all items of a key are kept).
    pub(crate) fn insert_listed(&self, key: String, id: String) {
        let mut map = self.listed.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key).or_default().push(id);
    }

    /// Every listed item with `key`, in listing order.
    pub(crate) fn listed(&self, key: &str) -> Vec<String> {
        let map = self.listed.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).cloned().unwrap_or_default()
    }

    /// Forgets the item recorded under `keys` (it was moved away or deleted), so a later write
    /// of the same content into this folder writes it again.
    pub(crate) fn forget(&self, keys: &[String]) {
        let mut map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            map.remove(&digest(k));
        }
    }

    /// Forgets the item with target id `id` under every key (it was deleted).
    pub(crate) fn forget_id(&self, id: &str) {
        let mut map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, c| c.get().map(String::as_str) != Some(id));
    }

    /// Every listed item whose key starts with `prefix`, ordered by id length then id (for
    /// `<uidvalidity>:<uid>` ids: by UID).
    pub(crate) fn listed_by_prefix(&self, prefix: &str) -> Vec<String> {
        let map = self.listed.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<String> = map
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .flat_map(|(_, v)| v.iter().cloned())
            .collect();
        out.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
        out.dedup();
        out
    }

    /// The target id of the item recorded under `key`, if it has been written.
    pub(crate) fn get(&self, key: &str) -> Option<String> {
        let map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&digest(key)).and_then(|c| c.get().cloned())
    }

    /// The cell of the item known under any of `keys`, or a new empty cell under its content
    /// keys (a `mid:` key only finds items recorded without a content key, and a new item is
    /// never recorded under one when it has another key).
    pub(crate) fn claim(&self, keys: &[String]) -> IdCell {
        let digests: Vec<(KeyDigest, bool)> = keys.iter().map(|k| (digest(k), is_mid(k))).collect();
        let mut map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = digests.iter().find_map(|(d, _)| map.get(d).cloned()) {
            return c;
        }
        let c: IdCell = Arc::new(OnceCell::new());
        let has_content_key = digests.iter().any(|(_, mid)| !mid);
        for (d, mid) in digests {
            if has_content_key && mid {
                continue;
            }
            map.insert(d, c.clone());
        }
        c
    }
}

/// A key that names a message by its headers only (`mid:<Message-ID>`, `hk1:` header key, or
/// the writer's `fp:`-prefixed copy of one): it cannot tell two contents apart.
pub(crate) fn is_mid(key: &str) -> bool {
    let k = key.strip_prefix("fp:").unwrap_or(key);
    k.starts_with("mid:") || k.starts_with("hk1:")
}

/// Writes the item of `keys` unless `index` already has it: runs `create` at most once per
/// item (also across concurrent callers) and says which happened.
pub(crate) async fn write_once<F, Fut>(
    index: &FolderIndex,
    keys: &[String],
    notes: Vec<String>,
    create: F,
) -> Result<WriteOutcome, Error>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<String, Error>>,
{
    let cell = index.claim(keys);
    let wrote = AtomicBool::new(false);
    let id = cell
        .get_or_try_init(|| {
            wrote.store(true, Ordering::Relaxed);
            create()
        })
        .await?;
    Ok(if wrote.load(Ordering::Relaxed) {
        WriteOutcome::Written {
            target_id: id.clone(),
            notes,
        }
    } else {
        WriteOutcome::AlreadyPresent {
            target_id: id.clone(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(fp: &str, mid: &str) -> Vec<String> {
        vec![format!("fp:{fp}"), format!("mid:{mid}")]
    }

    #[tokio::test]
    async fn one_message_id_on_two_contents_is_two_messages() {
        let index = FolderIndex::default();
        // Already in the folder with its fingerprint: found by content only.
        index.insert_existing("t1".into(), keys("aaa", "<same@x>"));
        let same = write_once(&index, &keys("aaa", "<same@x>"), vec![], || async {
            Ok("new".to_string())
        })
        .await
        .unwrap();
        assert!(matches!(same, WriteOutcome::AlreadyPresent { .. }));
        let other = write_once(&index, &keys("bbb", "<same@x>"), vec![], || async {
            Ok("t2".to_string())
        })
        .await
        .unwrap();
        assert!(matches!(other, WriteOutcome::Written { .. }), "{other:?}");
        // Two new items of one Message-ID in the same session: both written.
        let third = write_once(&index, &keys("ccc", "<same@x>"), vec![], || async {
            Ok("t3".to_string())
        })
        .await
        .unwrap();
        assert!(matches!(third, WriteOutcome::Written { .. }), "{third:?}");
    }

    #[tokio::test]
    async fn message_id_still_finds_an_item_without_a_fingerprint() {
        let index = FolderIndex::default();
        index.insert_existing("t1".into(), ["mid:<old@x>".to_string()]);
        let r = write_once(&index, &keys("zzz", "<old@x>"), vec![], || async {
            Ok("new".to_string())
        })
        .await
        .unwrap();
        assert!(matches!(r, WriteOutcome::AlreadyPresent { .. }), "{r:?}");
    }
}
