//! The per-folder dedupe cache shared by the writers that can look items up (Graph, IMAP):
//! dedupe keys (fingerprint, `mid:<Message-ID>`) → the target id, one cell per item, so that
//! concurrent writes of the same message create it once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::Error;
use crate::writer::WriteOutcome;

/// One item's target id, set once by whoever writes it.
pub(crate) type IdCell = Arc<OnceCell<String>>;

/// The keys of one target folder, loaded from the server once.
#[derive(Default)]
pub(crate) struct FolderIndex {
    /// Set when the folder's existing items have been read.
    pub(crate) loaded: OnceCell<()>,
    keys: Mutex<HashMap<String, IdCell>>,
}

impl FolderIndex {
    /// Records an item already in the folder under `keys` (the first item of a key wins).
    pub(crate) fn insert_existing<I: IntoIterator<Item = String>>(&self, id: String, keys: I) {
        let cell: IdCell = Arc::new(OnceCell::new_with(Some(id)));
        let mut map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            map.entry(k).or_insert_with(|| cell.clone());
        }
    }

    /// The cell of the item known under any of `keys`, or a new empty cell under all of them.
    pub(crate) fn claim(&self, keys: &[String]) -> IdCell {
        let mut map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = keys.iter().find_map(|k| map.get(k).cloned()) {
            return c;
        }
        let c: IdCell = Arc::new(OnceCell::new());
        for k in keys {
            map.insert(k.clone(), c.clone());
        }
        c
    }
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
