//! Contacts, calendars and tasks (issue 18): the trait the engine drives to write what the
//! `o365-migrate-pim` crate converted (Graph JSON bodies, photos, the work after an event's
//! creation) into a target mailbox, and its item types.
//!
//! # Shape
//!
//! A [`Target`](crate::Target) that can hold contacts and events opens one [`PimWriter`] per
//! mailbox ([`Target::open_pim`](crate::Target::open_pim); targets that cannot answer `None`,
//! and the engine records such items as skipped with the reason). The writer:
//!
//! * finds or creates a **collection**: a contact folder, a calendar or a To Do list, by name,
//!   or the mailbox's default one ([`PimCollectionSpec::name`] `None`);
//! * lists what a collection holds with each item's fingerprint (the named extended property
//!   [`FINGERPRINT_PROPERTY_ID`], the same id as the pim crate's);
//! * writes one [`PimWriteItem`] **idempotently**: when an item with the same fingerprint is
//!   already in the collection it writes nothing and answers [`PimWriteOutcome::AlreadyPresent`];
//!   an event's work after creation (cancelled occurrences deleted, moved or changed
//!   occurrences patched, attachments added, the photo of a contact) is part of the write and is
//!   finished on a second call when a first one was interrupted;
//! * deletes an item it wrote (a source item that changed is written anew, then the old copy is
//!   deleted: a crash in between leaves two copies for a moment, never none);
//! * reads an item back for verify ([`PimWriter::read`]): its properties as the target stores
//!   them and, for a series, its occurrences in a window.
//!
//! Writers honour the same per-mailbox limits as the mail writer (Graph: the same limiter, so
//! mail and calendar requests of one mailbox share its 4 concurrent requests and budgets), and
//! an outcome that is unknown (the answer lost after the request reached the service) is looked
//! up by fingerprint before anything is sent again.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::Error;
use crate::writer::BoxFuture;

/// The Graph `singleValueExtendedProperties` id under which an item's fingerprint is stored
/// (kept equal to `o365_migrate_pim::FINGERPRINT_PROPERTY_ID`; a test checks).
pub const FINGERPRINT_PROPERTY_ID: &str =
    "String {6d3b1f52-8f0e-4d4a-9c8e-1f0a5e7c2b90} Name o365-migrate-pim-fingerprint";

/// What kind of items a collection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PimKind {
    /// Contacts (Graph `contactFolders`; the default is the mailbox's Contacts folder).
    Contacts,
    /// Events (Graph `calendars`; the default is the mailbox's Calendar).
    Calendar,
    /// Tasks (Microsoft To Do lists; the default is the `defaultList`).
    Tasks,
}

impl PimKind {
    /// The word used in the state store, reports and the job file: `contacts`, `calendar`,
    /// `tasks`.
    pub fn as_str(self) -> &'static str {
        match self {
            PimKind::Contacts => "contacts",
            PimKind::Calendar => "calendar",
            PimKind::Tasks => "tasks",
        }
    }

    /// The inverse of [`PimKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "contacts" => Some(PimKind::Contacts),
            "calendar" => Some(PimKind::Calendar),
            "tasks" => Some(PimKind::Tasks),
            _ => None,
        }
    }
}

impl fmt::Display for PimKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A collection to find or create.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PimCollectionSpec {
    /// What it holds.
    pub kind: PimKind,
    /// Its display name; `None` for the mailbox's default contact folder, calendar or task list.
    /// Names are compared the way the target compares them (case-insensitively on Exchange).
    pub name: Option<String>,
}

/// A collection found or created in the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PimCollection {
    /// What it holds.
    pub kind: PimKind,
    /// The target's id for it.
    pub id: String,
    /// Its display name in the target.
    pub name: String,
    /// Whether this call created it.
    pub created: bool,
}

/// An item already in a collection, as [`PimWriter::list`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PimStored {
    /// The target's id.
    pub id: String,
    /// The fingerprint the item carries (`None`: not written by us).
    pub fingerprint: Option<String>,
}

/// One occurrence that differs from the series' pattern, named by its original start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PimOccurrenceChange {
    /// The occurrence's original start in UTC, RFC 3339 (`2027-03-01T09:00:00Z`); the writer
    /// finds the instance whose `originalStart` is this instant.
    pub original_start_utc: String,
    /// `None`: the occurrence is cancelled (deleted). `Some(json)`: a Graph `event` PATCH body
    /// for the instance (a moved or changed occurrence).
    pub patch_json: Option<String>,
}

/// A file attached to an event (Graph `fileAttachment`; bigger than 3 MB through an upload
/// session).
#[derive(Clone, PartialEq, Eq)]
pub struct PimAttachment {
    /// File name.
    pub name: String,
    /// Media type.
    pub content_type: String,
    /// The bytes.
    pub bytes: Bytes,
}

impl fmt::Debug for PimAttachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PimAttachment")
            .field("name", &self.name)
            .field("content_type", &self.content_type)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// What to write.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PimBody {
    /// A Graph `contact` create body, and the photo for `.../photo/$value` (media type, bytes).
    Contact {
        /// The create body (JSON text, without the fingerprint property: the writer adds it).
        json: String,
        /// The photo.
        photo: Option<(String, Bytes)>,
    },
    /// A Graph `event` create body (an appointment: never attendees, so no invitation is sent),
    /// and the work after creation.
    Event {
        /// The create body (JSON text, without the fingerprint property).
        json: String,
        /// Cancelled and changed occurrences of a series.
        occurrences: Vec<PimOccurrenceChange>,
        /// Files attached.
        attachments: Vec<PimAttachment>,
    },
    /// A To Do `todoTask` create body.
    Task {
        /// The create body (JSON text).
        json: String,
    },
}

/// One contact, event or task to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PimWriteItem {
    /// `pim1:…`: stored with the item; the idempotency key.
    pub fingerprint: String,
    /// What to write.
    pub body: PimBody,
}

impl PimWriteItem {
    /// The kind of collection this item belongs in.
    pub fn kind(&self) -> PimKind {
        match self.body {
            PimBody::Contact { .. } => PimKind::Contacts,
            PimBody::Event { .. } => PimKind::Calendar,
            PimBody::Task { .. } => PimKind::Tasks,
        }
    }
}

/// What [`PimWriter::write`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PimWriteOutcome {
    /// The item was created (and its work after creation done).
    Created {
        /// The target's id.
        id: String,
    },
    /// An item with this fingerprint was already there, complete; nothing was written.
    AlreadyPresent {
        /// The target's id.
        id: String,
    },
}

impl PimWriteOutcome {
    /// The target's id of the item.
    pub fn id(&self) -> &str {
        match self {
            PimWriteOutcome::Created { id } | PimWriteOutcome::AlreadyPresent { id } => id,
        }
    }
}

/// An occurrence of a series as the target expands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PimInstance {
    /// Start in UTC, RFC 3339.
    pub start_utc: String,
    /// End in UTC, RFC 3339.
    pub end_utc: String,
    /// The original start in UTC (for an occurrence moved away from its pattern).
    pub original_start_utc: Option<String>,
    /// The instance's properties as JSON text (subject, location, … as the target stores them).
    pub json: String,
}

/// An item read back for verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PimReadBack {
    /// The target's id.
    pub id: String,
    /// The fingerprint it carries.
    pub fingerprint: Option<String>,
    /// Its properties as JSON text, as the target stores them (Graph: the resource with
    /// `start`/`end` in their own zones).
    pub json: String,
    /// For a series: its occurrences overlapping the window asked for, sorted by start; for a
    /// single event, contact or task: empty.
    pub instances: Vec<PimInstance>,
    /// For a contact: whether it has a photo, and its size in bytes.
    pub photo_len: Option<u64>,
}

/// Writes contacts, events and tasks into one mailbox. Shared between tasks; every method takes
/// `&self`. See the [module docs](self).
pub trait PimWriter: Send + Sync {
    /// The mailbox this writer writes to.
    fn mailbox(&self) -> &str;

    /// Finds or creates the collection.
    fn ensure_collection<'a>(
        &'a self,
        spec: &'a PimCollectionSpec,
    ) -> BoxFuture<'a, Result<PimCollection, Error>>;

    /// Finds the collection without creating it (for verify); `None` when it does not exist.
    fn find_collection<'a>(
        &'a self,
        spec: &'a PimCollectionSpec,
    ) -> BoxFuture<'a, Result<Option<PimCollection>, Error>>;

    /// Every item of the collection with its fingerprint (series masters only, not instances).
    fn list<'a>(
        &'a self,
        collection: &'a PimCollection,
    ) -> BoxFuture<'a, Result<Vec<PimStored>, Error>>;

    /// Writes one item unless an item with its fingerprint is already in the collection.
    fn write<'a>(
        &'a self,
        collection: &'a PimCollection,
        item: &'a PimWriteItem,
    ) -> BoxFuture<'a, Result<PimWriteOutcome, Error>>;

    /// Deletes an item by id (an item that is already gone is not an error).
    fn delete<'a>(
        &'a self,
        collection: &'a PimCollection,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// Reads an item back; `window` (UTC, RFC 3339 start and end) bounds the instances read for
    /// a series.
    fn read<'a>(
        &'a self,
        collection: &'a PimCollection,
        id: &'a str,
        window: (&'a str, &'a str),
    ) -> BoxFuture<'a, Result<PimReadBack, Error>>;
}

/// A shared [`PimWriter`].
pub type SharedPimWriter = Arc<dyn PimWriter>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_their_names() {
        for k in [PimKind::Contacts, PimKind::Calendar, PimKind::Tasks] {
            assert_eq!(PimKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(PimKind::parse("Contacts"), None);
    }

    #[test]
    fn the_trait_is_object_safe() {
        fn takes(_: Option<&dyn PimWriter>) {}
        takes(None);
    }
}
