//! What the client returns: collections, item references, items, changes.

use crate::Href;

/// What a collection holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CollectionKind {
    /// A CardDAV address book (RFC 6352): vCards.
    AddressBook,
    /// A CalDAV calendar (RFC 4791): iCalendar objects.
    Calendar,
}

/// An address book or calendar found by discovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collection {
    /// Its address (ends with `/`).
    pub href: Href,
    /// `DAV:displayname`, if the server gives one.
    pub display_name: Option<String>,
    /// Address book or calendar.
    pub kind: CollectionKind,
    /// For calendars, the component types it accepts (`VEVENT`, `VTODO`, ...), upper case, from
    /// `supported-calendar-component-set`; empty when the server does not say (then any).
    pub components: Vec<String>,
    /// `CS:getctag` (calendarserver.org), a value that changes whenever the collection does.
    pub ctag: Option<String>,
    /// `DAV:sync-token` (RFC 6578), if the server offers one.
    pub sync_token: Option<String>,
    /// Whether `DAV:sync-collection` is in `supported-report-set`.
    pub supports_sync: bool,
}

/// An item of a collection, without its data.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemRef {
    /// Its address.
    pub href: Href,
    /// `DAV:getetag` as the server wrote it (quotes included), if given.
    pub etag: Option<String>,
}

/// An item with its data: a vCard or an iCalendar object, unparsed.
#[derive(Clone, PartialEq, Eq)]
pub struct Item {
    /// Its address.
    pub href: Href,
    /// `DAV:getetag` (or the `ETag` header of a GET), if given.
    pub etag: Option<String>,
    /// The vCard / iCalendar text exactly as the server sent it.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Item")
            .field("href", &self.href)
            .field("etag", &self.etag)
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// Items fetched by [`DavClient::fetch`](crate::DavClient::fetch).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fetched {
    /// The items found, in the order asked for.
    pub items: Vec<Item>,
    /// Hrefs the server says are not there (deleted since they were listed).
    pub missing: Vec<Href>,
}

/// What changed in a collection since a sync token (RFC 6578 `sync-collection`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncChanges {
    /// Items added or changed, with their new etags.
    pub changed: Vec<ItemRef>,
    /// Items removed.
    pub deleted: Vec<Href>,
    /// The token to give next time.
    pub token: String,
    /// The server returned only part of the changes (507 on the collection): ask again with
    /// [`SyncChanges::token`] for the rest.
    pub truncated: bool,
}

/// What discovery found for one account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Discovery {
    /// The principals (`current-user-principal`), one per service when they differ.
    pub principals: Vec<Href>,
    /// `addressbook-home-set` (CardDAV).
    pub addressbook_homes: Vec<Href>,
    /// `calendar-home-set` (CalDAV).
    pub calendar_homes: Vec<Href>,
    /// Address books and calendars in the home sets, sorted by href.
    pub collections: Vec<Collection>,
}
