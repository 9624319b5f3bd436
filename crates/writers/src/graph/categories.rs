//! The mailbox's master category list: every category the writer sets on a message is in it,
//! with a colour.
//!
//! Outlook shows a category that is not in the master list without colour. Before a message
//! (or a `sync` flag change) carries categories, [`MasterCategories::resolve`] makes sure each
//! one is listed:
//!
//! - The list is read once per mailbox writer (`GET /users/{id}/outlook/masterCategories`), on
//!   the first message with categories.
//! - Names are compared case-insensitively (Unicode lower case), as Exchange keeps one entry
//!   per name: a message carries the name exactly as the list spells it (`work` when the list
//!   has `work` and the source keyword is `Work`).
//! - A missing one is created (`POST …/masterCategories` with `{displayName, color}`) once per
//!   name, also when many writes want it at the same moment: the first caller creates, the
//!   others wait for its outcome. Its colour is [`color_for`] the name.
//! - A create that is refused or whose answer is lost re-reads the list: a category that is
//!   there now (created meanwhile, by another process, or by the lost request itself) counts
//!   as made. Microsoft's reference names no answer for a duplicate name; 409 Conflict is
//!   assumed (the emulator answers so) and not relied on.
//! - A category that still cannot be made is set on the message anyway (it shows without
//!   colour) and the item gets a note; the outcome is kept for the writer's life, so one
//!   refused name costs one create, not one per message.
//!
//! Every request goes through the mailbox's limiter and the client's retries like the writer's
//! others. The master list needs `MailboxSettings.ReadWrite` (application permission).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::json;
use tokio::sync::OnceCell;

use super::client::{Call, GraphClient};
use super::throttle::MailboxLimiter;
use crate::Error;

/// The colours Graph offers for a category: `preset0` to `preset24`.
const PRESETS: u32 = 25;

/// The colour a new category gets: the 32-bit FNV-1a hash of its lower-cased UTF-8 name,
/// modulo 25, as `preset0`…`preset24`. Stable across runs, machines and versions, and the same
/// for names that differ only in case.
pub(crate) fn color_for(name: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.to_lowercase().bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("preset{}", h % PRESETS)
}

fn key(name: &str) -> String {
    name.to_lowercase()
}

/// What creating one category came to: the name as the list spells it, or why it is not there.
type Made = Result<String, String>;

/// One mailbox's master category list, as far as the writer needs it.
pub(crate) struct MasterCategories {
    client: Arc<GraphClient>,
    limiter: Arc<MailboxLimiter>,
    url: String,
    /// Lower-cased name → the list's spelling, read once.
    listed: OnceCell<HashMap<String, String>>,
    /// Lower-cased name → the outcome of creating it (one create per name).
    made: Mutex<HashMap<String, Arc<OnceCell<Made>>>>,
}

impl MasterCategories {
    /// The list of the mailbox under `user_path` (`/users/{id}`).
    pub(crate) fn new(
        client: Arc<GraphClient>,
        limiter: Arc<MailboxLimiter>,
        user_path: &str,
    ) -> Self {
        Self {
            client,
            limiter,
            url: format!("{user_path}/outlook/masterCategories"),
            listed: OnceCell::new(),
            made: Mutex::new(HashMap::new()),
        }
    }

    /// The categories to set instead of `wanted` (each spelt as the master list spells it),
    /// every one of them in the list unless a note says why not.
    pub(crate) async fn resolve(&self, wanted: &[String]) -> (Vec<String>, Vec<String>) {
        if wanted.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let listed = match self.listed.get_or_try_init(|| self.read()).await {
            Ok(l) => l,
            Err(e) => {
                let note = format!(
                    "categories {} set without checking the master category list (they may show without colour): {e}",
                    wanted.join(", ")
                );
                return (wanted.to_vec(), vec![note]);
            }
        };
        let mut out = Vec::with_capacity(wanted.len());
        let mut notes = Vec::new();
        for name in wanted {
            if let Some(spelt) = listed.get(&key(name)) {
                out.push(spelt.clone());
                continue;
            }
            let cell = self
                .made
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key(name))
                .or_default()
                .clone();
            match cell.get_or_init(|| self.create(name)).await {
                Ok(spelt) => out.push(spelt.clone()),
                Err(why) => {
                    notes.push(format!(
                        "category {name} is not in the master category list (it shows without colour): {why}"
                    ));
                    out.push(name.clone());
                }
            }
        }
        (out, notes)
    }

    /// The list as it is now: lower-cased name → spelling.
    async fn read(&self) -> Result<HashMap<String, String>, Error> {
        let items = self
            .client
            .get_all(self.url.clone(), Some(&self.limiter))
            .await?;
        Ok(items
            .iter()
            .filter_map(|c| c["displayName"].as_str())
            .map(|n| (key(n), n.to_owned()))
            .collect())
    }

    /// Creates `name`; a refusal or a lost answer looks the name up in the list again.
    async fn create(&self, name: &str) -> Made {
        let body = json!({"displayName": name, "color": color_for(name)});
        let mut call = Call::post_json(
            self.url.clone(),
            Some(&self.limiter),
            Bytes::from(body.to_string()),
        );
        // Safe to send again after a lost answer: a category made by the first attempt makes
        // the second one a duplicate, which the look-up below finds.
        call.idempotent = true;
        let why = match self.client.call(call).await {
            Ok(reply) if reply.status == 201 || reply.status == 200 => {
                let v = reply.json(&self.url).unwrap_or_default();
                return Ok(v["displayName"].as_str().unwrap_or(name).to_owned());
            }
            Ok(reply) => reply.into_error("POST", &self.url).to_string(),
            Err(e) => e.to_string(),
        };
        match self.read().await {
            Ok(now) => now.get(&key(name)).cloned().ok_or(why),
            Err(e) => Err(format!("{why}; reading the list again: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::color_for;

    #[test]
    fn colours_are_stable_presets_and_ignore_case() {
        assert_eq!(color_for("Work"), color_for("work"));
        assert_eq!(color_for("Reisekosten Über"), color_for("REISEKOSTEN ÜBER"));
        for name in ["Work", "Clients/ACME", "Reisekosten Über", ""] {
            let c = color_for(name);
            let n: u32 = c.strip_prefix("preset").unwrap().parse().unwrap();
            assert!(n <= 24, "{c}");
        }
        // Pinned: a change of the hash would recolour every later run's new categories.
        assert_eq!(color_for("Work"), "preset9");
        assert_eq!(color_for("Clients/ACME"), "preset13");
        assert_eq!(color_for("Reisekosten Über"), "preset4");
    }
}
