//! Gmail's All Mail in a run: each candidate placed by its labels ([`GmailLayout::place`]),
//! the target folders it needs made, and skips and failures recorded with their reason.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use o365_migrate_target as target;

use super::settle::Settle;
use super::{ItemDest, MailboxRun};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::gmail::{DownloadWindow, GmailLayout, Placement, window_record};
use crate::state::{ItemMeta, ItemStatus};

impl Engine {
    /// Places every UID of `to_copy` by its `X-GM-LABELS`: the destination of each message to
    /// write (Archive is `archive`), the others removed from `to_copy` with a recorded skip
    /// (`labels-as-folders`) or failure (its target folder could not be made).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn place_by_labels(
        &self,
        mb: &MailboxRun<'_>,
        settle: &Settle<'_>,
        layout: &GmailLayout,
        archive: &target::FolderHandle,
        labels: &HashMap<u32, Vec<String>>,
        to_copy: &mut Vec<u32>,
        meta_of_uid: &dyn Fn(&u32) -> ItemMeta,
    ) -> Result<HashMap<u32, Arc<ItemDest>>> {
        let mut placed = Vec::with_capacity(to_copy.len());
        for uid in to_copy.iter() {
            let l = labels.get(uid).map(Vec::as_slice).unwrap_or(&[]);
            match layout.place(l) {
                Placement::Skip(reason) => {
                    settle
                        .record(
                            *uid,
                            meta_of_uid(uid),
                            ItemStatus::Skipped,
                            reason.to_owned(),
                            false,
                        )
                        .await?
                }
                Placement::To {
                    folder,
                    keywords,
                    flagged,
                } => placed.push((*uid, folder, keywords, flagged)),
            }
        }
        // The label folders this batch needs (Archive exists already).
        let folders: BTreeSet<&String> = placed
            .iter()
            .map(|p| &p.1)
            .filter(|f| **f != layout.all_mail)
            .collect();
        let specs: Vec<target::FolderSpec> = folders
            .iter()
            .filter_map(|f| layout.spec(f).cloned())
            .collect();
        let handles = if specs.is_empty() {
            HashMap::new()
        } else {
            self.ensure_target_folders(mb.pair, mb.mailbox, &**mb.mw, &specs, mb.writer)
                .await?
        };
        let mut dests = HashMap::with_capacity(placed.len());
        for (uid, folder, keywords, flagged) in placed {
            let handle = if folder == layout.all_mail {
                Ok(archive.clone())
            } else {
                handles.get(&folder).cloned().unwrap_or_else(|| {
                    Err(format!(
                        "the target did not return a folder for label folder {folder}"
                    ))
                })
            };
            match handle {
                Ok(handle) => {
                    dests.insert(
                        uid,
                        Arc::new(ItemDest {
                            handle,
                            keywords,
                            flagged,
                        }),
                    );
                }
                Err(reason) => {
                    settle
                        .record(uid, meta_of_uid(&uid), ItemStatus::Failed, reason, true)
                        .await?;
                }
            }
        }
        to_copy.retain(|u| dests.contains_key(u));
        Ok(dests)
    }
}

impl Engine {
    fn download_budget(&self) -> (u64, i64) {
        let g = &self.job.gmail;
        let window_ms =
            i64::try_from(g.download_window_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        (g.daily_download.0.max(1), window_ms)
    }

    async fn download_window(&self, login: &str) -> Result<DownloadWindow> {
        Ok(self
            .store
            .record(&window_record(login))
            .await?
            .and_then(|r| serde_json::from_str(&r.value).ok())
            .unwrap_or_default())
    }

    fn paused(&self, login: &str, w: &DownloadWindow, reason: String) -> Error {
        let (_, window_ms) = self.download_budget();
        Error::Paused {
            mailbox: login.to_owned(),
            until: w.reopens(window_ms),
            reason,
        }
    }

    fn budget_reason(&self) -> String {
        let g = &self.job.gmail;
        format!(
            "its Gmail download allowance of {} bytes per {} s is used ([gmail] daily_download)",
            g.daily_download.0, g.download_window_seconds
        )
    }

    /// Changes `login`'s current Gmail download window (a fresh one when the last is over)
    /// with `change` and keeps it; one change at a time.
    async fn update_window<T>(
        &self,
        login: &str,
        change: impl FnOnce(&mut DownloadWindow, u64) -> T,
    ) -> Result<(DownloadWindow, T)> {
        let _one = self.download_windows.lock().await;
        let (budget, window_ms) = self.download_budget();
        let mut w = self
            .download_window(login)
            .await?
            .at(crate::state::now_ms(), window_ms);
        let out = change(&mut w, budget);
        crate::state::put_json(self.store.as_ref(), &window_record(login), &w).await?;
        Ok((w, out))
    }

    /// Takes the leading messages of `sizes` from `login`'s Gmail download window and returns
    /// how many may be downloaded now; [`Error::Paused`] when none.
    pub(super) async fn take_download(&self, login: &str, sizes: &[u64]) -> Result<usize> {
        let (w, n) = self
            .update_window(login, |w, budget| w.admit(sizes, budget))
            .await?;
        if n == 0 && !sizes.is_empty() {
            return Err(self.paused(login, &w, self.budget_reason()));
        }
        Ok(n)
    }

    /// Counts `bytes` already downloaded (header fields) in `login`'s Gmail download window.
    pub(super) async fn charge_download(&self, login: &str, bytes: u64) -> Result<()> {
        self.update_window(login, |w, _| w.bytes = w.bytes.saturating_add(bytes))
            .await
            .map(drop)
    }

    /// The pause of `login`, whose window is full.
    pub(super) async fn window_paused(&self, login: &str) -> Result<Error> {
        let w = self.download_window(login).await?;
        Ok(self.paused(login, &w, self.budget_reason()))
    }

    /// Google answered with its bandwidth alert: the window is closed until it reopens.
    pub(super) async fn close_download_window(&self, login: &str, alert: &str) -> Result<Error> {
        let (w, ()) = self.update_window(login, |w, _| w.closed = true).await?;
        Ok(self.paused(login, &w, format!("Gmail refused more downloads: {alert}")))
    }

    /// Before a mailbox is opened: [`Error::Paused`] while its window is spent or closed (no
    /// login is tried then: Google extends a lock on an account that keeps trying).
    pub(super) async fn download_window_open(&self, login: &str) -> Result<()> {
        let (budget, window_ms) = self.download_budget();
        let w = self.download_window(login).await?;
        if w.start_ms == 0 {
            return Ok(());
        }
        let now = w.at(crate::state::now_ms(), window_ms);
        if now.start_ms == w.start_ms && w.is_spent(budget) {
            let reason = if w.closed {
                "Gmail refused more downloads in this window".to_owned()
            } else {
                self.budget_reason()
            };
            return Err(self.paused(login, &w, reason));
        }
        Ok(())
    }
}
