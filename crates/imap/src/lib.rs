//! Async IMAP client for bulk mailbox copying.
//!
//! * A **sans-IO core**: [`command::Encoder`] turns [`Command`]s into bytes (tags, atom / quoted /
//!   literal choice, LITERAL+ / LITERAL-, modified UTF-7 names) and [`core::ResponseReader`]
//!   turns received bytes into typed [`Response`]s, refusing oversized literals before
//!   allocating anything.
//! * A thin **tokio driver**, [`Session`], with implicit TLS / STARTTLS (rustls + the platform
//!   verifier), LOGIN / PLAIN (master users) / XOAUTH2 / OAUTHBEARER, LIST (SPECIAL-USE,
//!   LIST-STATUS), EXAMINE, UID SEARCH, streamed UID FETCH under a shared [`ByteBudget`],
//!   pipelined APPEND with APPENDUID, CREATE and STORE.
//!
//! ```
//! use o365_migrate_imap::{Command, command::Encoder, core::{ResponseReader, Progress}, Response};
//!
//! let mut enc = Encoder::new();
//! let cmd = enc.encode(&Command::Examine { mailbox: "Entwürfe".into(), condstore: false }).unwrap();
//! assert_eq!(cmd.to_bytes(), b"A1 EXAMINE Entw&APw-rfe\r\n");
//!
//! let mut rd = ResponseReader::default();
//! rd.feed(b"* 1 FETCH (UID 7 BODY[] {5}\r\nHello)\r\nA1 OK done\r\n");
//! assert!(matches!(rd.poll().unwrap(), Progress::LiteralAnnounced(5)));
//! let Progress::Response(Response::Untagged(o365_migrate_imap::Untagged::Fetch(f))) = rd.poll().unwrap() else { panic!() };
//! assert_eq!(f.uid, Some(7));
//! assert_eq!(f.body.as_deref(), Some(&b"Hello"[..]));
//! ```

pub mod auth;
pub mod budget;
pub mod command;
pub mod core;
mod error;
pub mod mutf7;
pub mod response;
mod secret;
mod session;
mod transport;

pub use auth::{Auth, StaticToken, TokenFuture, TokenProvider};
pub use budget::{ByteBudget, Reservation};
pub use command::{AppendMessage, Command, FetchItems, SearchKey, StatusItem, StoreMode, UidSet};
pub use error::{Error, parse_throttle};
/// INTERNALDATE values are the MIME crate's one date type (no conversion between crates).
pub use o365_migrate_mime::InternalDate;
pub use response::{
    Code, Condition, FetchData, ListEntry, Namespaces, Response, Status, StatusData, Untagged,
};
pub use secret::Secret;
pub use session::{
    AppendUid, ClientConfig, FetchOptions, FetchStream, FetchedMessage, FlagsOf, Mailbox, Moved,
    Reconnector, SelectedMailbox, Session, SpecialUse,
};
pub use transport::{Security, Timeouts, TlsOptions};
