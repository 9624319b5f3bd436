//! MIME normalizer for mailbox migration: read any real-world message, fingerprint it, and
//! turn it into what each target needs. Pure code, no I/O.
//!
//! - [`normalize`] parses raw bytes (with [`mail_parser`] 0.11 and all its charsets) into a
//!   [`NormalizedMessage`];
//! - [`fingerprint`] computes the tool-neutral dedupe [`Identity`] (Message-ID, header key,
//!   content SHA-256);
//! - [`repair`] applies transport repairs (bare LF, long lines, missing Date/Message-ID,
//!   8-bit headers) only when asked;
//! - [`to_graph`] builds the Microsoft Graph `message` create request ([`graph::GraphMessage`]);
//! - [`ContentSummary`] is what `verify` compares of a message, read alike from raw bytes, a
//!   converted message or a Graph item.
//!
//! Every lenient operation returns a [`Converted`] value: the result plus the
//! [`Problem`]s met on the way (what was repaired, approximated or lost).
//!
//! ```
//! use o365_migrate_mime::{Flags, fingerprint, normalize, to_graph};
//!
//! let raw = b"From: Ann <ann@example.com>\r\nTo: bob@example.com\r\n\
//! Subject: Report\r\nDate: Mon, 3 Mar 2025 09:00:00 +0000\r\n\
//! Message-ID: <r1@example.com>\r\n\r\nSee you.\r\n";
//!
//! let id = fingerprint(raw);
//! assert_eq!(id.dedupe_key(), "mid:<r1@example.com>");
//!
//! let view = normalize(raw);
//! assert_eq!(view.value.subject.as_deref(), Some("Report"));
//! assert!(view.problems.is_empty());
//!
//! let graph = to_graph(raw, &Flags::default(), None);
//! let json = serde_json::to_value(&graph.value).unwrap();
//! assert_eq!(json["body"]["contentType"], "text");
//! assert_eq!(json["singleValueExtendedProperties"][0]["id"], "Integer 0x0E07");
//! assert_eq!(json["singleValueExtendedProperties"][0]["value"], "0"); // unread, not a draft
//! ```

mod fingerprint;
mod flags;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod graph;
mod headers;
mod normalize;
mod problem;
mod repair;
mod summary;

pub use fingerprint::{
    Fingerprint, HEADER_KEY_VERSION, ITEM_KEY_VERSION, Identity, MAX_MESSAGE_ID_LEN, content_tag,
    fingerprint, header_block, item_key, synthesized_message_id, weak_key,
};
pub use flags::{Flags, InternalDate};
pub use graph::{GraphMessage, GraphOptions, LargeAttachment, to_graph, to_graph_with};
pub use normalize::{
    AttachmentInfo, AttachmentKind, Importance, Mailbox, NormalizedMessage, decoded_from,
    decoded_subject, normalize,
};
pub use problem::{Converted, Problem, ProblemKind, Severity};
pub use repair::{EXCHANGE_IMAP_MAX_LINE, RepairOptions, repair};
pub use summary::{ATTACHMENT_SIZE_SLACK, AttachmentSummary, ContentSummary, normalized_text};

/// Alias of [`Flags`].
pub type MessageFlags = Flags;

/// Errors from this crate. The conversions are lenient and report [`Problem`]s instead;
/// this type is for the few strict entry points.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A date given to the crate was outside what it can represent.
    #[error("invalid date {0:?}: expected years 0000-9999 and an offset within ±23:59")]
    InvalidDate(String),
}
