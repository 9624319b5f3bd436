//! Migration engine for o365-migrate: composes the IMAP client, the MIME crate, the target
//! writers, the credentials reader and automatch into `plan`, `run`, `rescan`, `verify`,
//! `match` and `provision`, with a crash-safe state store and reporting.
//!
//! [`Engine`] is the entry point. The crate's rooms:
//!
//! - [`config`]: the TOML job file (`o365-migrate.toml`), strict and with located errors;
//!   secrets only by reference ([`config::SecretRef`]); [`config::TEMPLATE`] for `init`.
//! - [`folders`]: source IMAP folders → target well-known folders or paths, with a reason for
//!   every decision and every skip.
//! - [`matching`]: which source mailbox goes where ([`MailboxPair`]), automatch against the
//!   target directory, provisioning.
//! - [`state`]: the [`state::StateStore`] trait and its SQLite implementation
//!   ([`state::SqlStore`]), which survives `kill -9` at any moment, and the run lock
//!   ([`state::RunLock`]): never two runs on one state.
//! - [`report`]: the [`report::Reporter`] trait, a JSON-lines event writer, and JSON / CSV /
//!   HTML reports built from the state store.
//! - Private rooms behind [`Engine`]: `setup` (the target writer, credentials and IMAP client
//!   settings built from the job), `source` (login, LIST and folder map, the metadata scan, the
//!   job's filters), `run` (the copy loop), `plan`, `verify`.
//!
//! # The path of one message (`run`)
//!
//! Per mailbox (several at once, bounded by `[limits] mailboxes_at_once`; up to 4 folders of a
//! mailbox at once, each with its own source session):
//!
//! 1. Log in to the source, LIST folders with SPECIAL-USE, map them with
//!    [`folders::FolderMapper`]; report every skipped folder. Ensure the target folders.
//! 2. Per folder: EXAMINE (read-only: the source is never changed), read UIDVALIDITY,
//!    [`state::StateStore::upsert_folder`]. If UIDVALIDITY changed, UIDs from before mean
//!    nothing: dedupe by item key ([`state::StateStore::find_by_fingerprint`]) and never write a
//!    message twice.
//! 3. `UID SEARCH ALL`, then, in memory, minus [`state::DoneUids::done`] (`rescan` keeps only
//!    UIDs above the folder's watermark, failed ones and planned ones). The job's `[filters]`
//!    are not sent to the server: they are applied to the metadata FETCH (size, INTERNALDATE,
//!    headers), so every filtered item is recorded as skipped with its reason and exact
//!    INTERNALDATE comparison (not the server's day-granular `SINCE`) decides.
//! 4. [`state::StateStore::mark_planned`] for the folder's candidates.
//! 5. Fetch bodies in batches (`BODY.PEEK[]`) under the global `[limits] in_flight_bytes`
//!    budget; convert what was FETCHed once into the writers' [`o365_migrate_target::WriteItem`]
//!    (the MIME crate's `Flags` and `InternalDate`, the item key); the writer checks the target
//!    folder for the item key before it writes (items written before a crash but not recorded
//!    are found there).
//! 6. Record outcomes through a [`state::BatchWriter`] (or [`state::StateStore::record_batch`]
//!    directly): outcomes + events in one transaction per batch; `flush` before a folder is
//!    reported done. [`report::Reporter`] gets an event per item.
//!
//! `verify` compares per folder source and target counts and per message item keys /
//! Message-IDs; `report` calls [`report::write_reports`].
//!
//! # Errors
//!
//! One [`Error`] type. Failures of the crates below keep their error as the source
//! ([`Error::Source`], [`Error::Target`], [`Error::Credentials`], [`Error::Matching`]), so
//! [`Error::is_retryable`] and [`Error::target_scope`] answer from the lower crate's own
//! classification.
//!
//! # Example
//!
//! ```
//! use o365_migrate_engine::config::Job;
//! use o365_migrate_engine::folders::{FolderMapper, SourceFolder};
//! use o365_migrate_engine::state::{
//!     Batch, ItemMeta, ItemOutcome, ItemStatus, PlannedItem, RunKind, RunOutcome, SqlStore,
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
//! let store = SqlStore::open(dir.path().join("state.db")).await?;
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
pub mod control;
mod engine;
mod error;
pub mod export;
pub mod folders;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod gmail;
pub mod matching;
mod pim;
mod plan;
pub mod report;
mod run;
mod setup;
mod signin;
mod source;
pub mod state;
#[cfg(test)]
mod test_backends;
mod verify;
pub mod worker;

pub use engine::{Engine, StopFlag, TargetTest};
pub use error::{Error, Location, Result};
pub use matching::{MailboxPair, Pairing, PairingOrigin, Unpaired};
pub use pim::{CollectionPlan, CollectionVerify, PimDiff};
pub use plan::{
    ANSWER_TIMES_RECORD, FolderPlan, GmailPlan, MailboxPlan, MeasuredAnswerTimes, PLAN_RECORD,
    PlanReport,
};
pub use run::{FinalReceipt, LastMessage, RunTotals, SyncOptions, SyncTotals};

/// `cutover check`: the DNS records that move a domain's mail to Exchange Online
/// (the `o365-migrate-cutover` crate).
pub use o365_migrate_cutover as cutover;
pub use setup::{
    CredentialsCheck, build_target, check_credentials_file, load_credentials, target_identity,
};
pub use signin::google_authorize;
pub use verify::{
    DiffItem, Difference, FolderVerify, KeptMailboxVerify, KeptVerify, MailboxVerify,
    VERIFY_RECORD, VerifyReport,
};
