//! Typed server responses (the crate's own types; no parser types leak out).

use crate::InternalDate;
use bytes::Bytes;

/// Status of a tagged or untagged condition response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// OK.
    Ok,
    /// NO.
    No,
    /// BAD.
    Bad,
    /// PREAUTH (greeting only).
    PreAuth,
    /// BYE.
    Bye,
}

/// A bracketed response code.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Code {
    /// `[ALERT]`.
    Alert,
    /// `[CAPABILITY ...]`.
    Capabilities(Vec<String>),
    /// `[UIDVALIDITY n]`.
    UidValidity(u32),
    /// `[UIDNEXT n]`.
    UidNext(u32),
    /// `[HIGHESTMODSEQ n]`.
    HighestModSeq(u64),
    /// `[PERMANENTFLAGS (...)]`.
    PermanentFlags(Vec<String>),
    /// `[READ-ONLY]`.
    ReadOnly,
    /// `[READ-WRITE]`.
    ReadWrite,
    /// `[TRYCREATE]`.
    TryCreate,
    /// `[APPENDUID uidvalidity uids]` (RFC 4315).
    AppendUid {
        /// UIDVALIDITY of the target mailbox.
        uid_validity: u32,
        /// UIDs assigned, in APPEND order.
        uids: Vec<u32>,
    },
    /// `[COPYUID uidvalidity source-uids dest-uids]` (RFC 4315), after UID COPY or UID MOVE.
    CopyUid {
        /// UIDVALIDITY of the destination mailbox.
        uid_validity: u32,
        /// Source UIDs, in the order the server paired them.
        source: Vec<u32>,
        /// Destination UIDs, one per source UID.
        dest: Vec<u32>,
    },
    /// Any other code, by its atom (e.g. `UNAVAILABLE`, `LIMIT`).
    Other(String),
}

/// A condition (OK/NO/BAD/BYE/PREAUTH) with optional code and text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// The status.
    pub status: Status,
    /// Response code, if any.
    pub code: Option<Code>,
    /// Human-readable text.
    pub text: String,
}

/// One LIST entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    /// Mailbox name decoded to UTF-8.
    pub name: String,
    /// Name as the server sent it (modified UTF-7).
    pub raw_name: String,
    /// Hierarchy delimiter, if any.
    pub delimiter: Option<char>,
    /// Attributes such as `\Noselect`, `\HasChildren`, `\Sent` (as sent, with the backslash).
    pub attributes: Vec<String>,
}

/// STATUS values (also from LIST-STATUS).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusData {
    /// Mailbox name (UTF-8).
    pub mailbox: String,
    /// MESSAGES.
    pub messages: Option<u32>,
    /// UIDNEXT.
    pub uid_next: Option<u32>,
    /// UIDVALIDITY.
    pub uid_validity: Option<u32>,
    /// UNSEEN.
    pub unseen: Option<u32>,
    /// HIGHESTMODSEQ.
    pub highest_modseq: Option<u64>,
}

/// One FETCH response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchData {
    /// Message sequence number.
    pub seq: u32,
    /// UID.
    pub uid: Option<u32>,
    /// FLAGS.
    pub flags: Option<Vec<String>>,
    /// INTERNALDATE.
    pub internal_date: Option<InternalDate>,
    /// RFC822.SIZE.
    pub size: Option<u32>,
    /// `BODY[HEADER.FIELDS (...)]`.
    pub header: Option<Bytes>,
    /// `BODY[]` — shares the receive buffer, no copy.
    pub body: Option<Bytes>,
    /// MODSEQ.
    pub modseq: Option<u64>,
    /// X-GM-MSGID.
    pub gmail_msgid: Option<u64>,
    /// X-GM-THRID.
    pub gmail_thrid: Option<u64>,
    /// X-GM-LABELS.
    pub gmail_labels: Option<Vec<String>>,
}

/// A NAMESPACE entry: prefix and delimiter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceEntry {
    /// Prefix (UTF-8), e.g. `""` or `"INBOX."`.
    pub prefix: String,
    /// Hierarchy delimiter.
    pub delimiter: Option<char>,
}

/// NAMESPACE response (RFC 2342).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Namespaces {
    /// Personal namespaces.
    pub personal: Vec<NamespaceEntry>,
    /// Other users' namespaces.
    pub other_users: Vec<NamespaceEntry>,
    /// Shared namespaces.
    pub shared: Vec<NamespaceEntry>,
}

/// Untagged data.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Untagged {
    /// `* OK/NO/BAD/BYE/PREAUTH ...`.
    Condition(Condition),
    /// `* CAPABILITY ...`.
    Capabilities(Vec<String>),
    /// `* ENABLED ...`.
    Enabled(Vec<String>),
    /// `* n EXISTS`.
    Exists(u32),
    /// `* n RECENT`.
    Recent(u32),
    /// `* n EXPUNGE`.
    Expunge(u32),
    /// `* FLAGS (...)`.
    Flags(Vec<String>),
    /// `* LIST ...`.
    List(ListEntry),
    /// `* STATUS ...`.
    Status(StatusData),
    /// `* SEARCH ...`.
    Search(Vec<u32>),
    /// `* n FETCH (...)`.
    Fetch(Box<FetchData>),
    /// `* NAMESPACE ...`.
    Namespace(Namespaces),
    /// `* ID ...`.
    Id(Vec<(String, String)>),
    /// A response this crate does not interpret (kept raw, never an error).
    Other(Bytes),
}

/// One complete server response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Tagged completion.
    Tagged {
        /// Tag of the command it completes.
        tag: String,
        /// Outcome.
        condition: Condition,
    },
    /// `+ ...` continuation request.
    Continue {
        /// Text after `+ ` (base64 SASL challenge or a human text).
        text: String,
    },
    /// Untagged data.
    Untagged(Untagged),
}
