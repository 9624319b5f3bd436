//! Pause and resume a migration from anywhere that can open its state store: `o365-migrate
//! pause` / `resume`, the dashboard, an embedder. A pause is a record in the state store, so it
//! reaches a run in another process (or on another machine sharing the store): every `run`,
//! `rescan` and `sync` watches for it, stops starting new items, records the ones in flight,
//! keeps the run lock and waits; `resume` deletes the record and the same run goes on.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::state::{StateStore, now_ms};

/// The state-store record that holds a pause request.
pub const PAUSE_RECORD: &str = "pause";

/// How often a run looks for a pause request (and, while paused, for the resume).
pub(crate) const PAUSE_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// A pause someone asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseRequest {
    /// Who asked: `cli`, `dashboard`, or what an embedder says.
    pub by: String,
    /// When, Unix milliseconds.
    pub at: i64,
}

/// Asks every run on this state to pause (idempotent: an earlier request is kept).
pub async fn request_pause(store: &dyn StateStore, by: &str) -> Result<PauseRequest> {
    if let Some(p) = pause_request(store).await? {
        return Ok(p);
    }
    let p = PauseRequest {
        by: by.to_owned(),
        at: now_ms(),
    };
    crate::state::put_json(store, PAUSE_RECORD, &p).await?;
    Ok(p)
}

/// Lets paused runs go on. Returns whether a pause was requested.
pub async fn request_resume(store: &dyn StateStore) -> Result<bool> {
    let was = store.record(PAUSE_RECORD).await?.is_some();
    if was {
        store.put_record(PAUSE_RECORD, None).await?;
    }
    Ok(was)
}

/// The pause request in force, if any.
pub async fn pause_request(store: &dyn StateStore) -> Result<Option<PauseRequest>> {
    match store.record(PAUSE_RECORD).await? {
        None => Ok(None),
        Some(r) => serde_json::from_str(&r.value)
            .map(Some)
            .map_err(|e| Error::Pipeline {
                context: format!("reading the state record `{PAUSE_RECORD}`"),
                message: e.to_string(),
                hint: Some("run `o365-migrate resume` to clear it".into()),
            }),
    }
}
