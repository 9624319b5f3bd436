//! Outcomes that wrote nothing: skipped or failed items, recorded with their reason.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Tally;
use crate::engine::Engine;
use crate::error::Result;
use crate::matching::MailboxPair;
use crate::report::Event;
use crate::state::{BatchWriter, FolderId, ItemMeta, ItemOutcome, ItemStatus};

/// Records outcomes that wrote nothing (skipped or failed, with the reason) for one folder:
/// the tally, the state store and, when announced, the reporter.
pub(super) struct Settle<'a> {
    pub(super) engine: &'a Engine,
    pub(super) pair: &'a MailboxPair,
    pub(super) path: &'a str,
    pub(super) folder: FolderId,
    pub(super) uidvalidity: u32,
    pub(super) tally: &'a Tally,
    pub(super) writer: &'a Arc<BatchWriter>,
}

impl Settle<'_> {
    pub(super) async fn record(
        &self,
        uid: u32,
        meta: ItemMeta,
        status: ItemStatus,
        reason: String,
        announce: bool,
    ) -> Result<()> {
        let (mailbox, folder) = (self.pair.source.clone(), self.path.to_owned());
        let (event, count) = match status {
            ItemStatus::Skipped => (
                Event::ItemSkipped {
                    mailbox,
                    folder,
                    uid,
                    reason: reason.clone(),
                },
                &self.tally.skipped,
            ),
            _ => (
                Event::ItemFailed {
                    mailbox,
                    folder,
                    uid,
                    reason: reason.clone(),
                },
                &self.tally.failed,
            ),
        };
        if announce {
            self.engine.reporter.report(&event);
        }
        count.fetch_add(1, Ordering::Relaxed);
        self.writer
            .record(ItemOutcome {
                folder: self.folder,
                uidvalidity: self.uidvalidity,
                uid,
                status,
                target_id: None,
                reason: Some(reason),
                meta,
            })
            .await
    }
}
