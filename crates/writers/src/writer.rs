//! The engine's target trait: what every writer (Graph, IMAP, EWS, EML) implements.
//!
//! # Shape
//!
//! * A [`Target`] is one destination system (a Microsoft 365 tenant, an IMAP server, an Exchange
//!   server, a directory on disk). It is created from configuration, checked once
//!   ([`Target::check`]) and then opens one [`MailboxWriter`] per mailbox
//!   ([`Target::open_mailbox`]).
//! * A [`MailboxWriter`] owns everything per mailbox: the folder cache, the dedupe index, the
//!   per-mailbox throttling (for Graph: at most 4 requests in flight and the request and upload
//!   budgets). It is shared (`Arc`) and all methods take `&self`, so the engine may call
//!   [`MailboxWriter::write`] from several tasks at once; the writer applies its own concurrency
//!   limits, the engine only bounds memory.
//! * The engine hands each message over as a [`WriteItem`]: the **raw RFC 5322 bytes** exactly as
//!   fetched from the source, the source flags, the source INTERNALDATE and the message's
//!   fingerprint. Each writer does its own conversion (Graph converts through the MIME crate into a
//!   JSON message; IMAP appends the bytes unchanged; EWS sends them as `MimeContent`; EML writes
//!   them to disk).
//!
//! # Object safety
//!
//! The engine picks the target at run time from the job file, so both traits are object safe: every
//! async method returns a [`BoxFuture`] (a hand-rolled `Pin<Box<dyn Future + Send>>`, no macro
//! types in the API). Implementations write `Box::pin(async move { ... })`.
//!
//! # Idempotency contract
//!
//! [`MailboxWriter::write`] must not create a second copy of a message that is already in the
//! target folder: when an item with the same Internet Message-ID **or** the same fingerprint is
//! present (written by an earlier run, or concurrently by this one), the writer returns
//! [`WriteOutcome::AlreadyPresent`] and writes nothing. This is what makes a killed run safe to
//! repeat. Writers that cannot look items up (EML export) use the fingerprint as the file name.
//!
//! # Errors
//!
//! Every failure is an [`crate::Error`]; [`crate::Error::scope`] tells the engine whether only this
//! item failed (record it with the reason and go on), the folder, the mailbox, or the whole target.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use o365_migrate_mime::{ContentSummary, Flags, InternalDate};

use crate::Error;

/// A boxed, `Send` future borrowing from `'a`: the return type of every async trait method here.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One destination system; opens a [`MailboxWriter`] per mailbox.
pub trait Target: Send + Sync {
    /// What this target keeps of a message (feeds `docs/fidelity.md` and the plan's warnings).
    fn capabilities(&self) -> Capabilities;

    /// Checks that the target is reachable and that the credentials carry every permission the
    /// job needs (for Graph: the token's roles). The error names what is missing and the fix.
    fn check(&self) -> BoxFuture<'_, Result<(), Error>>;

    /// Opens the writer for one mailbox (for Graph: a user id or user principal name; for IMAP:
    /// the login). Fails with [`crate::Error::MailboxUnavailable`] when the mailbox does not exist
    /// or is not provisioned yet.
    fn open_mailbox<'a>(
        &'a self,
        mailbox: &'a str,
    ) -> BoxFuture<'a, Result<Arc<dyn MailboxWriter>, Error>>;

    /// Opens the contacts, calendars and tasks writer for one mailbox
    /// ([`crate::pim::PimWriter`]); `None` when this target cannot hold them (IMAP, EML), so
    /// the engine records such items as skipped with that reason.
    fn open_pim<'a>(
        &'a self,
        mailbox: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<dyn crate::pim::PimWriter>>, Error>> {
        let _ = mailbox;
        Box::pin(async { Ok(None) })
    }
}

/// Writes into one mailbox. Shared between tasks; every method takes `&self`.
pub trait MailboxWriter: Send + Sync {
    /// The mailbox this writer writes to, as given to [`Target::open_mailbox`].
    fn mailbox(&self) -> &str;

    /// Makes sure every folder of `plan` exists in the target, creating missing ones (parents
    /// first; names compared the way the target compares them, case-insensitively for Exchange),
    /// and returns one [`FolderHandle`] per [`FolderSpec`], in the same order.
    fn ensure_folders<'a>(
        &'a self,
        plan: &'a [FolderSpec],
    ) -> BoxFuture<'a, Result<Vec<FolderHandle>, Error>>;

    /// Looks the folders of `plan` up without creating anything (for verify, which must not
    /// change the target): one entry per [`FolderSpec`], `None` where the folder does not
    /// exist. Writers that cannot tell without creating fall back to
    /// [`MailboxWriter::ensure_folders`]; Graph, IMAP and EML override this.
    fn find_folders<'a>(
        &'a self,
        plan: &'a [FolderSpec],
    ) -> BoxFuture<'a, Result<Vec<Option<FolderHandle>>, Error>> {
        Box::pin(async move {
            Ok(self
                .ensure_folders(plan)
                .await?
                .into_iter()
                .map(Some)
                .collect())
        })
    }

    /// Writes one message into `folder` unless it is already there (see the idempotency contract
    /// in the [module docs](self)).
    fn write<'a>(
        &'a self,
        folder: &'a FolderHandle,
        item: &'a WriteItem,
    ) -> BoxFuture<'a, Result<WriteOutcome, Error>>;

    /// Writes to this mailbox worth having in flight at once: enough to keep the writer's own
    /// requests full (Graph: two `$batch`es' worth, one sent and one gathering), more only hold
    /// memory. `None`: no opinion, the caller's default.
    fn writes_in_flight(&self) -> Option<usize> {
        None
    }

    /// Number of messages currently in `folder` (for verify: source count against target count).
    fn count<'a>(&'a self, folder: &'a FolderHandle) -> BoxFuture<'a, Result<u64, Error>>;

    /// Every message in `folder` with the fields verify compares.
    fn list<'a>(
        &'a self,
        folder: &'a FolderHandle,
    ) -> BoxFuture<'a, Result<Vec<TargetItem>, Error>>;

    /// The message `id` (as [`MailboxWriter::list`] gave it) exactly as the target stores it,
    /// for `verify --deep`; `None` where the target does not keep the raw message (Graph, EWS)
    /// or the item is gone.
    fn read_raw<'a>(
        &'a self,
        folder: &'a FolderHandle,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Bytes>, Error>> {
        let _ = (folder, id);
        Box::pin(async { Ok(None) })
    }

    /// What the target shows of message `id`'s content, for `verify` on targets that do not
    /// keep the raw message (Graph): subject, sender, recipients, sent date, categories and
    /// the attachments' names and sizes; with `deep` also the body text and every
    /// attachment's SHA-256, read from the item's MIME. `None` where the target keeps the raw
    /// bytes (compare those with [`MailboxWriter::read_raw`]) or the item is gone.
    fn read_content<'a>(
        &'a self,
        folder: &'a FolderHandle,
        id: &'a str,
        deep: bool,
    ) -> BoxFuture<'a, Result<Option<ContentSummary>, Error>> {
        let _ = (folder, id, deep);
        Box::pin(async { Ok(None) })
    }

    /// Sets the state of item `id` (as [`MailboxWriter::write`] gave it) in `folder` to
    /// `flags` — read, flagged, answered, keywords (Graph: categories) — and changes nothing
    /// else, for `sync`. `Ok(false)` when the item is no longer in the target. Targets that
    /// cannot change an item they wrote (EML, EWS) answer with an error saying so.
    fn set_flags<'a>(
        &'a self,
        folder: &'a FolderHandle,
        id: &'a str,
        flags: &'a Flags,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        let _ = (folder, id, flags);
        Box::pin(async move { Err(cannot_sync(self.mailbox())) })
    }

    /// Moves item `id` from `folder` to `to`, for `sync` (a move on the source is a move on the
    /// target, never a second copy). Returns the item's id in `to` (Graph and IMAP give a moved
    /// item a new id), or `None` when the item is no longer in the target. An outcome that is
    /// unknown (the answer lost) is looked up in `to` by `item_key` before anything is sent
    /// again.
    fn move_item<'a>(
        &'a self,
        folder: &'a FolderHandle,
        id: &'a str,
        to: &'a FolderHandle,
        item_key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, Error>> {
        let _ = (folder, id, to, item_key);
        Box::pin(async move { Err(cannot_sync(self.mailbox())) })
    }

    /// Deletes item `id` from `folder` (only when the admin asked `sync` to propagate
    /// deletions). `Ok(false)` when it was already gone.
    fn delete_item<'a>(
        &'a self,
        folder: &'a FolderHandle,
        id: &'a str,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        let _ = (folder, id);
        Box::pin(async move { Err(cannot_sync(self.mailbox())) })
    }

    /// What the target's throttling did to this mailbox so far (for the report). Writers of
    /// targets that do not throttle keep the default: nothing.
    fn throttling(&self) -> ThrottleStats {
        ThrottleStats::default()
    }
}

/// The error of the change methods on a writer that cannot change items it wrote.
fn cannot_sync(mailbox: &str) -> Error {
    Error::Config(format!(
        "this target cannot change items it wrote (mailbox {mailbox}); hint: `sync` of flags, \
         moves and deletions needs a Graph or IMAP target, `rescan` copies new items to any"
    ))
}

/// What the target's throttling did to one mailbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ThrottleStats {
    /// Answers that asked to slow down (Graph: 429 or 503) the mailbox was given.
    pub throttled_answers: u64,
    /// Times a `Retry-After` paused every request of the mailbox (requests already sent
    /// excepted).
    pub pauses: u64,
}

/// Folders every mail system has under some name; the engine maps source folders onto them
/// (SPECIAL-USE attributes, a multilingual name table, job rules) and writers map them onto the
/// target's own folders (Graph well-known names, IMAP SPECIAL-USE, EWS distinguished ids).
///
/// The one home of this concept: the job file's `#Inbox#` tokens, the engine's folder map and
/// every writer use this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum WellKnownFolder {
    /// The inbox (`inbox`).
    Inbox,
    /// Sent mail (`sentitems`, IMAP `\Sent`).
    SentItems,
    /// Drafts (`drafts`, IMAP `\Drafts`).
    Drafts,
    /// Deleted mail (`deleteditems`, IMAP `\Trash`).
    DeletedItems,
    /// Junk mail (`junkemail`, IMAP `\Junk`).
    JunkEmail,
    /// The archive folder (`archive`, IMAP `\Archive`).
    Archive,
}

impl WellKnownFolder {
    /// All values, in a stable order.
    pub const ALL: [WellKnownFolder; 6] = [
        Self::Inbox,
        Self::SentItems,
        Self::Drafts,
        Self::DeletedItems,
        Self::JunkEmail,
        Self::Archive,
    ];

    /// The Microsoft Graph well-known folder name (usable as a folder id).
    pub fn graph_name(self) -> &'static str {
        match self {
            Self::Inbox => "inbox",
            Self::SentItems => "sentitems",
            Self::DeletedItems => "deleteditems",
            Self::JunkEmail => "junkemail",
            Self::Drafts => "drafts",
            Self::Archive => "archive",
        }
    }

    /// The job-file token with its marks: `#Inbox#`, `#SentItems#`, ...
    pub fn token(self) -> &'static str {
        match self {
            Self::Inbox => "#Inbox#",
            Self::SentItems => "#SentItems#",
            Self::Drafts => "#Drafts#",
            Self::DeletedItems => "#DeletedItems#",
            Self::JunkEmail => "#JunkEmail#",
            Self::Archive => "#Archive#",
        }
    }

    /// Parses a job-file token such as `#SentItems#` (exact spelling).
    pub fn from_token(s: &str) -> Option<WellKnownFolder> {
        Self::ALL.into_iter().find(|k| k.token() == s)
    }

    /// The English display name (`Sent Items`).
    pub fn display_name(self) -> &'static str {
        match self {
            Self::Inbox => "Inbox",
            Self::SentItems => "Sent Items",
            Self::Drafts => "Drafts",
            Self::DeletedItems => "Deleted Items",
            Self::JunkEmail => "Junk Email",
            Self::Archive => "Archive",
        }
    }

    /// The folder an IMAP SPECIAL-USE attribute (RFC 6154, any case) names: `\Sent`,
    /// `\Drafts`, `\Trash`, `\Junk` (or the older `\Spam`), `\Archive`.
    pub fn from_special_use(attr: &str) -> Option<WellKnownFolder> {
        match attr.to_ascii_lowercase().as_str() {
            "\\sent" => Some(Self::SentItems),
            "\\drafts" => Some(Self::Drafts),
            "\\trash" => Some(Self::DeletedItems),
            "\\junk" | "\\spam" => Some(Self::JunkEmail),
            "\\archive" => Some(Self::Archive),
            _ => None,
        }
    }
}

impl fmt::Display for WellKnownFolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display_name())
    }
}

/// Where a planned folder hangs in the target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FolderBase {
    /// The top of the mailbox's folder tree (Graph `msgfolderroot`, IMAP top level).
    Root,
    /// Inside (or, with an empty path, exactly) a well-known folder.
    WellKnown(WellKnownFolder),
}

/// One folder of the engine's folder plan: where a source folder goes in the target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FolderSpec {
    /// The source folder's full name as the source shows it (used in reports and handed back in
    /// the [`FolderHandle`]).
    pub source: String,
    /// The folder the path starts from.
    pub base: FolderBase,
    /// Display names below `base`, outermost first (`["Projects", "2024"]`); empty means `base`
    /// itself. Names are already translated out of the source's hierarchy delimiter and
    /// modified UTF-7, i.e. plain Unicode.
    pub path: Vec<String>,
}

impl FolderSpec {
    /// The source folder maps exactly onto a well-known folder.
    pub fn well_known(source: impl Into<String>, folder: WellKnownFolder) -> Self {
        Self {
            source: source.into(),
            base: FolderBase::WellKnown(folder),
            path: Vec::new(),
        }
    }

    /// The source folder maps onto `path` below the top of the mailbox.
    pub fn at_root<S: Into<String>>(
        source: impl Into<String>,
        path: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            source: source.into(),
            base: FolderBase::Root,
            path: path.into_iter().map(Into::into).collect(),
        }
    }

    /// The source folder maps onto `path` below a well-known folder (`Inbox/Receipts`).
    pub fn under<S: Into<String>>(
        source: impl Into<String>,
        folder: WellKnownFolder,
        path: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            source: source.into(),
            base: FolderBase::WellKnown(folder),
            path: path.into_iter().map(Into::into).collect(),
        }
    }

    /// A human-readable target path such as `#Inbox#/Receipts` or `Projects/2024`.
    pub fn display_path(&self) -> String {
        let mut out = match &self.base {
            FolderBase::Root => String::new(),
            FolderBase::WellKnown(k) => k.token().to_owned(),
        };
        for segment in &self.path {
            if !out.is_empty() {
                out.push('/');
            }
            out.push_str(segment);
        }
        out
    }
}

/// A folder that exists in the target, as returned by [`MailboxWriter::ensure_folders`]. The
/// engine stores nothing of it across runs; it asks again each run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FolderHandle {
    /// The source folder name from the [`FolderSpec`].
    pub source: String,
    /// The target's own folder id (Graph folder id, IMAP mailbox name, EWS folder id, directory).
    pub target_id: String,
    /// Human-readable target path for reports.
    pub display_path: String,
    /// Whether this call created the folder (or any of its parents).
    pub created: bool,
    /// What the writer had to change about the folder for the report (a reserved name renamed,
    /// a hierarchy delimiter inside a name replaced); empty when the path is as planned.
    pub notes: Vec<String>,
}

/// One message handed to [`MailboxWriter::write`].
#[derive(Clone, PartialEq, Eq)]
pub struct WriteItem {
    /// The raw message (RFC 5322) exactly as fetched from the source.
    pub raw: Bytes,
    /// The source flags and keywords.
    pub flags: Flags,
    /// The source INTERNALDATE (time of arrival); the received date in the target.
    pub internal_date: Option<InternalDate>,
    /// The message's item key from the MIME crate: `o365_migrate_mime::item_key(raw, &id)`,
    /// `c1:<content tag>:<Message-ID or header key>` (stable across runs and servers; two
    /// contents that share a Message-ID get two keys). Writers that can store it with the item
    /// (Graph: an extended property) do, so a later run finds the item again;
    /// `o365_migrate_mime::weak_key` gives its Message-ID / header-key part.
    pub fingerprint: String,
    /// The Message-ID (with angle brackets) if the engine already knows it from the envelope;
    /// writers that need it and find `None` extract it from `raw` themselves.
    pub internet_message_id: Option<String>,
}

impl fmt::Debug for WriteItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The body is not printed: it is large and may hold private mail.
        f.debug_struct("WriteItem")
            .field("raw_len", &self.raw.len())
            .field("flags", &self.flags)
            .field("internal_date", &self.internal_date)
            .field("fingerprint", &self.fingerprint)
            .field("internet_message_id", &self.internet_message_id)
            .finish()
    }
}

/// What [`MailboxWriter::write`] did.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WriteOutcome {
    /// The message was written; `target_id` is its id in the target.
    Written {
        /// The target's id of the new item.
        target_id: String,
        /// What the conversion could not carry over exactly (empty for byte-identical paths),
        /// for the per-item report.
        notes: Vec<String>,
    },
    /// The message was already in the folder (same Message-ID or fingerprint); nothing written.
    AlreadyPresent {
        /// The target's id of the existing item.
        target_id: String,
    },
}

impl WriteOutcome {
    /// The target id either way.
    pub fn target_id(&self) -> &str {
        match self {
            Self::Written { target_id, .. } | Self::AlreadyPresent { target_id } => target_id,
        }
    }
}

/// A message as the target holds it, for verify.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TargetItem {
    /// The target's id.
    pub id: String,
    /// Internet Message-ID with angle brackets, if the item has one.
    pub internet_message_id: Option<String>,
    /// The fingerprint the writer stored with the item, if the target can store one.
    pub fingerprint: Option<String>,
    /// Subject.
    pub subject: Option<String>,
    /// Sender address.
    pub from: Option<String>,
    /// Received date (Graph `receivedDateTime`, IMAP INTERNALDATE).
    pub received: Option<InternalDate>,
    /// Whether the target considers it a draft.
    pub is_draft: bool,
    /// Read state.
    pub is_read: bool,
    /// Flagged for follow-up.
    pub flagged: bool,
    /// Replied to (`\Answered`), where the target keeps it.
    pub answered: bool,
    /// Keywords (IMAP) or categories, where the target keeps them.
    pub keywords: Vec<String>,
    /// Size in bytes as the target reports it, if it does.
    pub size: Option<u64>,
}

/// What a write path keeps of a message. One row of `docs/fidelity.md`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Capabilities {
    /// Short name of the path (`graph`, `imap`, `ews`, `eml`).
    pub name: &'static str,
    /// Largest message the target accepts, in bytes (raw size), if it has a limit.
    pub max_message_bytes: Option<u64>,
    /// The target stores the original bytes unchanged (a byte-identical copy).
    pub keeps_raw_bytes: bool,
    /// The received date (INTERNALDATE) is kept.
    pub keeps_received_date: bool,
    /// The sent date (`Date:` header) is kept as the item's sent date.
    pub keeps_sent_date: bool,
    /// `\Seen` is kept.
    pub keeps_seen: bool,
    /// `\Flagged` is kept.
    pub keeps_flagged: bool,
    /// `\Answered` is kept (Graph: only as an icon/extended property, if at all).
    pub keeps_answered: bool,
    /// Items arrive as real (non-draft) items unless they were drafts.
    pub keeps_draft_state: bool,
    /// Keywords are kept (as keywords or as categories).
    pub keeps_keywords: bool,
    /// The writer finds items already present (idempotent writes across runs).
    pub dedupes: bool,
    /// Folder names that differ only in case are one folder in the target (Exchange): the
    /// engine gives such source folders distinct names before it creates them.
    pub folder_names_fold_case: bool,
    /// Longest folder name (one level) the target accepts, in characters, if limited.
    pub max_folder_name_chars: Option<usize>,
}

impl Capabilities {
    /// A row for a path that keeps the dates, the IMAP flags, keywords and draft state and
    /// dedupes (every writer here except Graph, which cannot keep `\Answered`); raw bytes and
    /// the size limit are left to the caller.
    #[cfg(any(feature = "imap", feature = "ews", feature = "eml"))]
    pub(crate) fn keeps_state(name: &'static str) -> Self {
        Self {
            keeps_received_date: true,
            keeps_sent_date: true,
            keeps_seen: true,
            keeps_flagged: true,
            keeps_answered: true,
            keeps_draft_state: true,
            keeps_keywords: true,
            dedupes: true,
            ..Self::none(name)
        }
    }

    /// Exchange's folder names (Graph, EWS, Exchange Online IMAP): case does not tell two
    /// apart, and one level is at most 255 characters.
    pub fn with_exchange_folder_names(mut self) -> Self {
        self.folder_names_fold_case = true;
        self.max_folder_name_chars = Some(255);
        self
    }

    /// A capability row with everything `false` and no size limit; writers fill in what they keep.
    pub fn none(name: &'static str) -> Self {
        Self {
            name,
            max_message_bytes: None,
            keeps_raw_bytes: false,
            keeps_received_date: false,
            keeps_sent_date: false,
            keeps_seen: false,
            keeps_flagged: false,
            keeps_answered: false,
            keeps_draft_state: false,
            keeps_keywords: false,
            dedupes: false,
            folder_names_fold_case: false,
            max_folder_name_chars: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Compile-time proof that both traits are object safe and the futures are `Send`.
    #[allow(dead_code)]
    fn object_safe(t: &dyn Target, w: Arc<dyn MailboxWriter>) {
        fn is_send<T: Send>(_: &T) {}
        let f = t.open_mailbox("a@b");
        is_send(&f);
        let _ = w.mailbox();
    }

    #[test]
    fn well_known_names_match_graph() {
        let names: Vec<_> = WellKnownFolder::ALL
            .iter()
            .map(|k| k.graph_name())
            .collect();
        assert_eq!(
            names,
            [
                "inbox",
                "sentitems",
                "drafts",
                "deleteditems",
                "junkemail",
                "archive"
            ]
        );
        assert_eq!(
            FolderSpec::well_known("Sent", WellKnownFolder::SentItems).display_path(),
            "#SentItems#"
        );
    }

    #[test]
    fn write_item_debug_hides_the_body() {
        let item = WriteItem {
            raw: Bytes::from_static(b"Subject: private\r\n\r\nsecret body"),
            flags: Flags::default(),
            internal_date: None,
            fingerprint: "fp".into(),
            internet_message_id: None,
        };
        let shown = format!("{item:?}");
        assert!(!shown.contains("secret body") && shown.contains("raw_len"));
    }
}
