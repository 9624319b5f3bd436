//! Test harness for o365-migrate: private Dovecot instances, a minimal IMAP client and a
//! deterministic mail corpus generator.
//!
//! This crate is a **dev-dependency only**. Tests start real servers on 127.0.0.1:
//!
//! - [`Dovecot`]: a private `dovecot` (Debian package `dovecot-imapd`) per test, with its
//!   own config, passwd-file users, a master user, a CA and server certificate generated at
//!   run time, plain (STARTTLS) and implicit-TLS listeners on ephemeral ports; stopped on drop.
//! - [`Client`]: a small async IMAP client (plain, STARTTLS, TLS) for loading and checking.
//! - [`corpus`]: a seeded generator of realistic messages, loaded by APPEND, returning a
//!   [`Manifest`] to verify against ([`Manifest::verify`]).
//! - [`fault`]: [`FaultProxy`], a TCP proxy that cuts, resets, stalls, trickles, injects
//!   `* BYE` and refuses connections on a script, with counters.
//! - [`hostile`]: [`HostileCorpus`], named hostile messages (bare LF, NUL bytes, 0 bytes,
//!   oversized, broken MIME, ...) with the outcome each must end in, loaded into Dovecot.
//! - [`browser`]: [`Browser`], a small WebDriver client driving headless Chromium through
//!   `chromedriver`, for end-to-end tests of the web dashboard and screenshots.
//! - [`Postgres`]: a private PostgreSQL cluster (Debian package `postgresql`) per test on a
//!   free 127.0.0.1 port, copied from a template built once by `initdb`; superuser `o365m`
//!   with a random password over TCP, optional TLS, `psql` over its unix socket; stopped on
//!   drop.
//! - [`Radicale`]: a private Radicale CardDAV/CalDAV server (Debian package `radicale`) per
//!   test on a free 127.0.0.1 port, htpasswd users, optional TLS, helpers to create address
//!   books and calendars and to PUT items; stopped on drop.
//! - [`pim_corpus`]: [`PimCorpus`], seeded contacts and calendars (recurring series with
//!   exceptions, four zones, all-day, floating, multi-language text, photos) loaded into
//!   Radicale or written as files, with a manifest of expected occurrences and a change set.
//! - [`gmail`]: [`GmailServer`], an in-process Gmail-flavoured IMAP server (X-GM-EXT-1, labels
//!   as folders, XOAUTH2, connection cap, download allowance) on 127.0.0.1, optional TLS.
//! - [`google_token`]: [`GoogleTokenStandIn`], Google's token endpoint (JWT-bearer and refresh
//!   grants) whose issued tokens [`GmailServer`] accepts.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use o365_migrate_testkit::{Corpus, CorpusProfile, Dovecot, DovecotOptions};
//!
//! let rt = tokio::runtime::Runtime::new()?;
//! rt.block_on(async {
//!     let dovecot = Dovecot::start(DovecotOptions::default())?;
//!     let manifest = Corpus::new(CorpusProfile::small(42, 10)).load(&dovecot, "alice").await?;
//!     let mut imap = dovecot.login("alice").await?;
//!     let report = manifest.verify(&mut imap).await?;
//!     assert!(report.is_ok(), "{:?}", report.mismatches);
//!     assert_eq!(report.messages_checked, 10);
//!     Ok::<_, o365_migrate_testkit::Error>(())
//! })?;
//! # Ok(()) }
//! ```

mod background;
pub mod browser;
mod certs;
pub mod client;
pub mod corpus;
pub mod date;
pub mod dnsmasq;
pub mod dovecot;
mod error;
pub mod fault;
pub mod gmail;
pub mod google_token;
pub mod hostile;
pub mod pim_corpus;
pub mod postgres;
pub mod radicale;
mod rng;
pub mod utf7;

pub use browser::{Browser, Element, missing_browser_message};
pub use client::{
    AppendRequest, Client, FetchedMessage, ListEntry, MailboxStatus, Selected, TlsTrust,
};
pub use corpus::{Corpus, CorpusProfile, Manifest, ManifestEntry, VerifyReport};
pub use date::ImapDate;
pub use dnsmasq::{Dnsmasq, SilentServer, Zone};
pub use dovecot::{Dovecot, DovecotOptions, User};
pub use error::{Error, Result, missing_dovecot_message};
pub use fault::{Action, Fault, FaultPlan, FaultProxy, FaultStats, Trigger};
pub use gmail::{GmailMessage, GmailOptions, GmailServer, GmailUserStats, Place, StoredMessage};
pub use google_token::{GoogleTokenStandIn, IssuedToken, RefreshGrant, TokenConfig, TokenRegistry};
pub use hostile::{
    Delivery, ExpectedOutcome, HostileCase, HostileCorpus, HostileEntry, HostileManifest,
    HostileOptions,
};
pub use pim_corpus::{PimChangeSet, PimCorpus, PimCorpusProfile, PimKind, PimManifestEntry};
pub use postgres::{Postgres, PostgresOptions};
pub use radicale::{HttpAnswer, Radicale, RadicaleOptions, missing_radicale_message};
