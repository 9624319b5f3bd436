//! Migration engine for o365-migrate: the job file, folder mapping, the crash-safe state store
//! and reporting.
//!
//! [`Engine`] runs the migration (`run`, `rescan`, `verify`, `plan`, connection tests)
//! on top of these parts:
//!
//! - [`config`]: the TOML job file (`o365-migrate.toml`), strict and with located errors;
//!   secrets only by reference ([`config::SecretRef`]); [`config::TEMPLATE`] for `init`.
//! - [`folders`]: source IMAP folders → target well-known folders or paths, with a reason for
//!   every decision and every skip.
//! - [`state`]: the [`state::StateStore`] trait and its SQLite implementation
//!   ([`state::SqliteStore`]), which survives `kill -9` at any moment.
//! - [`report`]: the [`report::Reporter`] trait, a JSON-lines event writer, and JSON / CSV /
//!   HTML reports built from the state store.
//!
//! # The pipeline ([`Engine`])
//!
//! Per mailbox (several at once, bounded by `[limits] mailboxes_at_once`):
//!
//! 1. Log in to the source, LIST folders with SPECIAL-USE, map them with
//!    [`folders::FolderMapper`]; report every skipped folder.
//! 2. Per folder: SELECT, read UIDVALIDITY, [`state::StateStore::upsert_folder`]. If UIDVALIDITY
//!    changed, UIDs from before mean nothing: dedupe by fingerprint / Message-ID
//!    ([`state::StateStore::find_by_fingerprint`]) and never write a message twice.
//! 3. UID SEARCH (`run`: ALL; `rescan`: above the folder's watermark), minus
//!    [`state::DoneUids::done`]; metadata FETCH (size, INTERNALDATE, headers); apply `[filters]`
//!    (dates, size) — filtered items are recorded as skipped with their reason.
//! 4. [`state::StateStore::mark_planned`] for the folder's candidates, then dedupe against the
//!    target's own listing (for items written before a crash but not recorded).
//! 5. Fetch bodies in batches under the global `[limits] in_flight_bytes` budget, normalize
//!    (mime crate), write with the target's own concurrency (target crate).
//! 6. Record outcomes through a [`state::BatchWriter`] (or [`state::StateStore::record_batch`]
//!    directly): outcomes + events in one transaction per batch; `flush` before a folder is
//!    reported done. [`report::Reporter`] gets an event per item.
//!
//! `verify` compares per folder source and target counts and per message fingerprints /
//! Message-IDs; `report` calls [`report::write_reports`].
//!
//! # Example
//!
//! ```
//! use o365_migrate_engine::config::Job;
//! use o365_migrate_engine::folders::{FolderMapper, SourceFolder};
//! use o365_migrate_engine::state::{
//!     Batch, ItemMeta, ItemOutcome, ItemStatus, PlannedItem, RunKind, RunOutcome, SqliteStore,
//!     StateStore,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), o365_migrate_engine::Error> {
//! let job = Job::parse(o365_migrate_engine::config::TEMPLATE, "o365-migrate.toml")?;
//! let mapper = FolderMapper::new(&job.folders, &job.filters)?;
//! let plan = mapper.map(&[
//!     SourceFolder::new("INBOX", Some('/'), &[]),
//!     SourceFolder::new("Sent", Some('/'), &["\\Sent"]),
//!     SourceFolder::new("Spam", Some('/'), &["\\Junk"]),
//! ]);
//! assert!(plan[2].skip_reason().is_some()); // excluded by the template's #JunkEmail# filter
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = SqliteStore::open(dir.path().join("state.db")).await?;
//! let run = store.begin_run(RunKind::Run).await?;
//! let mailbox = store.upsert_mailbox("alice@example.com", "alice@contoso.com").await?;
//! let folder = store.upsert_folder(mailbox, "INBOX", "#Inbox#", 42).await?;
//! let planned = [PlannedItem { uid: 1, meta: ItemMeta { size: Some(1200), ..Default::default() } }];
//! store.mark_planned(folder.id, 42, &planned).await?;
//! let batch = Batch {
//!     outcomes: vec![ItemOutcome {
//!         folder: folder.id,
//!         uidvalidity: 42,
//!         uid: 1,
//!         status: ItemStatus::Migrated,
//!         target_id: Some("AAMk...".into()),
//!         reason: None,
//!         meta: ItemMeta::default(),
//!     }],
//!     events: vec![],
//! };
//! store.record_batch(run, &batch).await?;
//! store.finish_run(run, RunOutcome::Completed).await?;
//! assert_eq!(store.done_uids(folder.id).await?.done, vec![1]);
//! assert_eq!(store.counts(None).await?.migrated, 1);
//! # Ok(()) }
//! ```

pub mod config;
mod engine;
mod error;
pub mod folders;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod matching;
mod plan;
pub mod report;
mod run;
mod setup;
mod source;
pub mod state;
mod verify;

pub use engine::{Engine, StopFlag};
pub use error::{Error, Location, Result};
pub use matching::MailboxPair;
pub use plan::{FolderPlan, MailboxPlan, PlanReport};
pub use run::RunTotals;
pub use setup::{CredentialsCheck, build_target, check_credentials_file, load_credentials};
pub use verify::{DiffItem, FolderVerify, MailboxVerify, VerifyReport};
