//! Lenient results: a value plus the list of what had to be repaired, approximated or lost.

use std::fmt;

/// How bad a [`Problem`] is for fidelity.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Severity {
    /// Worth knowing, nothing the user would miss (e.g. headers Graph has no field for).
    Info,
    /// The bytes were changed on purpose to make a transport accept them; the content is kept.
    Repaired,
    /// Kept, but not exactly as it was (e.g. an S/MIME signature that no longer verifies).
    Approximated,
    /// Something could not be carried over at all.
    Lost,
}

/// What a [`Problem`] is about. Stable, machine-readable codes (kebab-case in JSON).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ProblemKind {
    /// The bytes could not be parsed as a message at all (no header block).
    Unparseable,
    /// Lines ended with a bare LF (or bare CR) instead of CRLF.
    BareLineEnding,
    /// A line was longer than the limit a transport accepts.
    LongLine,
    /// No `Date:` header, or one that could not be read.
    MissingDate,
    /// No `Message-ID:` header, or one that is not sane.
    MissingMessageId,
    /// Raw 8-bit bytes in the header block (not RFC 2047 encoded).
    EightBitHeader,
    /// A charset that is unknown or wrong; text decoded as best it could be.
    Charset,
    /// A MIME part whose structure or transfer encoding is broken.
    BrokenPart,
    /// A header appears more than once where only one is allowed; the first was used.
    DuplicateHeader,
    /// An S/MIME or PGP signature that cannot survive the conversion byte-for-byte.
    Signature,
    /// Encrypted content carried over as an opaque attachment.
    Encrypted,
    /// A calendar invitation carried over as an `.ics` attachment, not as a meeting item.
    Calendar,
    /// Headers the target has no place for.
    Headers,
    /// An IMAP flag the target cannot represent.
    Flag,
    /// An address without an e-mail address (e.g. an empty group).
    Address,
    /// An attachment that is too large for the target.
    AttachmentTooLarge,
    /// The request would be larger than the target accepts.
    RequestTooLarge,
    /// A date that could not be determined and was substituted.
    Date,
}

impl ProblemKind {
    /// The stable kebab-case code, as in JSON.
    pub fn code(self) -> &'static str {
        match self {
            Self::Unparseable => "unparseable",
            Self::BareLineEnding => "bare-line-ending",
            Self::LongLine => "long-line",
            Self::MissingDate => "missing-date",
            Self::MissingMessageId => "missing-message-id",
            Self::EightBitHeader => "eight-bit-header",
            Self::Charset => "charset",
            Self::BrokenPart => "broken-part",
            Self::DuplicateHeader => "duplicate-header",
            Self::Signature => "signature",
            Self::Encrypted => "encrypted",
            Self::Calendar => "calendar",
            Self::Headers => "headers",
            Self::Flag => "flag",
            Self::Address => "address",
            Self::AttachmentTooLarge => "attachment-too-large",
            Self::RequestTooLarge => "request-too-large",
            Self::Date => "date",
        }
    }
}

/// One thing that was repaired, approximated or lost while reading or converting a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    /// How bad it is.
    pub severity: Severity,
    /// What it is about.
    pub kind: ProblemKind,
    /// Human-readable detail (never contains message bodies; may quote a header name).
    pub detail: String,
}

impl Problem {
    /// A problem of the given severity and kind.
    pub fn new(severity: Severity, kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self {
            severity,
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Info => "info",
            Severity::Repaired => "repaired",
            Severity::Approximated => "approximated",
            Severity::Lost => "lost",
        };
        write!(f, "{sev} [{}]: {}", self.kind.code(), self.detail)
    }
}

/// A lenient result: the value that could be produced plus everything that went wrong on
/// the way. Nothing here is ever silently dropped: whatever was not kept is in `problems`.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted<T> {
    /// The produced value.
    pub value: T,
    /// What was repaired, approximated or lost, in the order it was found.
    pub problems: Vec<Problem>,
}

impl<T> Converted<T> {
    /// The worst severity among the problems, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.problems.iter().map(|p| p.severity).max()
    }

    /// Maps the value, keeping the problems.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Converted<U> {
        Converted {
            value: f(self.value),
            problems: self.problems,
        }
    }
}
