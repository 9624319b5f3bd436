//! Contacts and calendars for mailbox migration (issue 18): read vCard (`.vcf`, CardDAV) and
//! iCalendar (`.ics`, CalDAV) with Stalwart's [`calcard`](https://crates.io/crates/calcard)
//! parser, fingerprint each item, and convert it to the JSON Microsoft Graph takes for a
//! contact or an event, reporting every property that cannot be carried. Pure code, no I/O.
//!
//! - [`parse_contacts`] splits a vCard stream into [`Contact`]s; [`Contact::graph_json`] is
//!   the body of `POST /users/{id}/contactFolders/{id}/contacts`, [`Contact::photo`] goes to
//!   `PUT /users/{id}/contacts/{id}/photo/$value`.
//! - [`parse_calendar`] splits an iCalendar stream into [`CalendarItem`]s: an [`Event`]
//!   (master plus its `RECURRENCE-ID` overrides) or a [`Task`].
//! - Every item carries a [`fingerprint`](Contact::fingerprint) of its normalised source for
//!   idempotency (store it in [`FINGERPRINT_PROPERTY_ID`]) and a `not_carried` list: what the
//!   target cannot hold, one human sentence per property, never dropped in silence.
//! - One malformed item is one [`Error`] (label, line, hint) among the results; the other items
//!   of the same file still convert.
//!
//! - Verify: [`Event::occurrences`] expands a source event from its own iCalendar (RRULE,
//!   EXDATE, RECURRENCE-ID overrides) in a window ([`Event::verify_window`]);
//!   [`compare_contact`] and [`compare_event`] list, one sentence each, how what the target
//!   stored (Graph GET JSON, a series' instances) differs from the source.
//!
//! # Writing events without sending invitations
//!
//! Microsoft's "Create event" page (Graph v1.0, `POST /users/{id}/events`) says: "When an event
//! is sent, the server sends invitations to all the attendees", and Graph has no flag to
//! suppress them (answers on Microsoft Q&A say the same: no flag disables the invitation mail).
//! So [`Event::graph_json`] is an *appointment*: it never contains `attendees`; the attendee
//! list is returned apart ([`Event::attendees_json`]) and each attendee and the organizer are
//! listed in `not_carried`. A writer that adds attendees later (PATCH) would send invitations
//! or updates too; it must not. The organizer of an imported appointment is the mailbox owner.
//!
//! # Exceptions of a series
//!
//! Graph creates a series from `recurrence`; its occurrences are then read with
//! `GET /users/{id}/events/{seriesId}/instances?startDateTime=..&endDateTime=..` and an
//! occurrence is removed with `DELETE` on the instance (for an appointment there is nobody to
//! notify; `POST .../cancel` is the organizer's cancel-with-message for meetings) or changed
//! with `PATCH`. [`Event::cancelled_occurrences`] (EXDATE) and [`Event::overrides`]
//! (RECURRENCE-ID components) name each occurrence by its original start, local in the event's
//! zone and in UTC (an instance's `originalStart`).
//!
//! ```
//! let vcf = b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Ann Example\r\nN:Example;Ann;;;\r\n\
//! EMAIL:ann@example.com\r\nEND:VCARD\r\n";
//! let contacts = o365_migrate_pim::parse_contacts("ann.vcf", vcf).unwrap();
//! let ann = contacts[0].as_ref().unwrap();
//! let json: serde_json::Value = serde_json::from_str(&ann.graph_json()).unwrap();
//! assert_eq!(json["givenName"], "Ann");
//! assert_eq!(json["emailAddresses"][0]["address"], "ann@example.com");
//! assert!(ann.not_carried.is_empty());
//! ```

mod contact;
mod event;
mod rrule;
mod split;
mod tz;
mod verify;
mod windows_zones;

use sha2::{Digest, Sha256};

pub use event::{Attachment, CalendarItem, CalendarOptions, Event, Occurrence, Override, Task};
pub use tz::iana_for_windows;
pub use verify::{SourceOccurrence, TargetInstance, compare_contact, compare_event};

/// The Graph `singleValueExtendedProperties` id under which a writer stores an item's
/// [fingerprint](Contact::fingerprint) (a named string property in this crate's own GUID
/// namespace), to find an item it already created.
pub const FINGERPRINT_PROPERTY_ID: &str =
    "String {6d3b1f52-8f0e-4d4a-9c8e-1f0a5e7c2b90} Name o365-migrate-pim-fingerprint";

/// Version prefix of [`Contact::fingerprint`] and [`Event::fingerprint`]; bumped if the
/// normalisation changes.
pub const FINGERPRINT_VERSION: &str = "pim1";

/// Why an item (or a whole input) could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not text in UTF-8.
    #[error("{label}: not UTF-8 text ({source}); hint: {hint}")]
    NotUtf8 {
        /// The caller's name for the input (file path, DAV href).
        label: String,
        /// The decoding error.
        #[source]
        source: std::str::Utf8Error,
        /// What to do about it.
        hint: &'static str,
    },
    /// One item is malformed; the other items of the same input are unaffected.
    #[error("{label}, line {line}: {what}; hint: {hint}")]
    Malformed {
        /// The caller's name for the input.
        label: String,
        /// The 1-based line where the problem was found.
        line: usize,
        /// What is wrong.
        what: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// An item of a kind this crate does not convert (VJOURNAL, VFREEBUSY, ...).
    #[error("{label}, line {line}: {kind} is not supported yet; hint: {hint}")]
    Unsupported {
        /// The caller's name for the input.
        label: String,
        /// The line of the item's BEGIN.
        line: usize,
        /// The component kind.
        kind: String,
        /// What to do about it.
        hint: &'static str,
    },
}

impl Error {
    /// The line the error names, when it names one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Error::NotUtf8 { .. } => None,
            Error::Malformed { line, .. } | Error::Unsupported { line, .. } => Some(*line),
        }
    }
}

/// Result of this crate's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

const MALFORMED_HINT: &str =
    "fix or remove this item in the source (the other items still migrate)";

fn malformed(label: &str, line: usize, what: impl Into<String>) -> Error {
    Error::Malformed {
        label: label.to_string(),
        line,
        what: what.into(),
        hint: MALFORMED_HINT,
    }
}

fn text<'a>(label: &str, bytes: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|source| Error::NotUtf8 {
        label: label.to_string(),
        source,
        hint: "vCard 4.0 and iCalendar are UTF-8; re-export the file as UTF-8",
    })
}

/// A vCard converted for Graph.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Contact {
    /// The 1-based line of the item's `BEGIN:VCARD`.
    pub line: usize,
    /// The vCard `UID`, if any.
    pub uid: Option<String>,
    /// `pim1:` + SHA-256 (hex) of the normalised vCard (see [`FINGERPRINT_VERSION`]).
    pub fingerprint: String,
    /// Every property not carried, or carried only in part, one sentence each.
    pub not_carried: Vec<String>,
    /// The photo for the contact photo endpoint, when the vCard holds one inline.
    pub photo: Option<Photo>,
    graph: serde_json::Value,
}

impl Contact {
    /// The Graph `contact` create body (JSON text).
    pub fn graph_json(&self) -> String {
        self.graph.to_string()
    }
}

/// A contact photo: bytes and media type for `PUT /users/{id}/contacts/{id}/photo/$value`
/// (Graph "Update profilePhoto": the request body is the binary image, `Content-Type` its type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    /// The image's media type, e.g. `image/jpeg`.
    pub content_type: String,
    /// The image bytes.
    pub bytes: Vec<u8>,
}

/// Parses a vCard stream (one or many cards). `label` names the input in errors (a file path,
/// a DAV href). The outer error is for the whole input (not UTF-8); each card then converts or
/// fails on its own.
pub fn parse_contacts(label: &str, bytes: &[u8]) -> Result<Vec<Result<Contact>>> {
    let text = text(label, bytes)?;
    let split = split::split(text, false);
    Ok(split
        .items
        .into_iter()
        .map(|item| match item {
            Err(b) => Err(malformed(label, b.line, b.what)),
            Ok(block) => contact::convert(label, &block),
        })
        .collect())
}

/// Parses an iCalendar stream with the default [`CalendarOptions`] (floating times in UTC).
pub fn parse_calendar(label: &str, bytes: &[u8]) -> Result<Vec<Result<CalendarItem>>> {
    parse_calendar_with(label, bytes, &CalendarOptions::default())
}

/// Parses an iCalendar stream (one or many VCALENDARs): each VEVENT series (the master with
/// its RECURRENCE-ID overrides, grouped by UID) or VTODO is one item.
pub fn parse_calendar_with(
    label: &str,
    bytes: &[u8],
    options: &CalendarOptions,
) -> Result<Vec<Result<CalendarItem>>> {
    let text = text(label, bytes)?;
    Ok(event::convert_all(label, split::split(text, true), options))
}

/// Properties left out of a fingerprint: they change on every export without the item
/// changing (RFC 5545 DTSTAMP, RFC 6350 REV, PRODID).
const VOLATILE: &[&str] = &["DTSTAMP", "REV", "PRODID", "LAST-MODIFIED"];

/// `pim1:` + hex SHA-256 of the blocks' unfolded lines (trailing blanks trimmed, volatile
/// properties dropped, CRLF-joined).
pub(crate) fn fingerprint(blocks: &[&split::Block]) -> String {
    let mut h = Sha256::new();
    for b in blocks {
        for l in &b.lines {
            if VOLATILE.contains(&split::prop_name(&l.text).as_str()) {
                continue;
            }
            h.update(l.text.trim_end().as_bytes());
            h.update(b"\r\n");
        }
    }
    let digest = h.finalize();
    let mut s = String::with_capacity(FINGERPRINT_VERSION.len() + 65);
    s.push_str(FINGERPRINT_VERSION);
    s.push(':');
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}
