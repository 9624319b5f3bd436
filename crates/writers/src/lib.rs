//! Target writers for mailbox migration: the engine's [`Target`] / [`MailboxWriter`] traits and
//! their implementations — Microsoft Graph for Exchange Online ([`graph`]), IMAP APPEND for any
//! IMAP server and Exchange Online ([`imap`]), EWS for Exchange Server ([`ews`]) and an
//! EML/Maildir export ([`eml`]) — with identity (client credentials, certificates, device code,
//! national clouds) and throttling. What each path keeps: `docs/fidelity.md`.
//!
//! The traits are the hub of the architecture: the engine plans folders and fetches raw messages
//! from the source, then hands each one to a [`MailboxWriter`] of whichever target the job names.
//! See the [`writer`] module for the full contract.
//!
//! ```
//! use o365_migrate_target::{FolderSpec, WellKnownFolder, WriteOutcome};
//!
//! // The engine's folder plan for a mailbox: source folder → target folder.
//! let plan = vec![
//!     FolderSpec::well_known("INBOX", WellKnownFolder::Inbox),
//!     FolderSpec::under("INBOX/Receipts", WellKnownFolder::Inbox, ["Receipts"]),
//!     FolderSpec::at_root("Projects/2024", ["Projects", "2024"]),
//! ];
//! assert_eq!(plan[1].display_path(), "#Inbox#/Receipts");
//! assert_eq!(plan[2].display_path(), "Projects/2024");
//! let outcome = WriteOutcome::AlreadyPresent { target_id: "AAMk".into() };
//! assert_eq!(outcome.target_id(), "AAMk");
//! ```

mod cloud;
#[cfg(any(feature = "graph", feature = "imap"))]
mod dedupe;
#[cfg(feature = "eml")]
pub mod eml;
mod error;
#[cfg(feature = "ews")]
pub mod ews;
#[cfg(feature = "graph")]
pub mod graph;
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "identity")]
pub mod identity;
#[cfg(feature = "imap")]
pub mod imap;
pub mod pim;
mod secret;
pub mod writer;

pub use cloud::{Cloud, Endpoints};
pub use error::{Error, ErrorScope};
/// The message state a [`WriteItem`] carries: the MIME crate's one type for flags and one for
/// dates, re-exported so an embedder needs no second import.
pub use o365_migrate_mime::{AttachmentSummary, ContentSummary, Flags, InternalDate};
pub use secret::SecretString;
pub use writer::{
    BoxFuture, Capabilities, FolderBase, FolderHandle, FolderSpec, MailboxWriter, Target,
    TargetItem, ThrottleStats, WellKnownFolder, WriteItem, WriteOutcome,
};
