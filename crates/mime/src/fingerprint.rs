//! The tool-neutral dedupe identity of a message.
//!
//! The algorithm is documented in the crate README ("Dedupe identity") so that other tools
//! can compute the same values. It works on the raw bytes only (no MIME decoding), so it is
//! deterministic across runs, platforms and versions of the MIME parser.

use sha2::{Digest, Sha256};

use crate::headers::{scan, unfold};

/// Version tag that prefixes every [`Identity::header_key`].
pub const HEADER_KEY_VERSION: &str = "hk1";

/// Longest Message-ID (with angle brackets) accepted as sane.
pub const MAX_MESSAGE_ID_LEN: usize = 250;

/// The dedupe identity of one message. Alias: [`Fingerprint`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    /// The first `Message-ID:` when present and sane, as `<left@right>` (angle brackets
    /// included, otherwise verbatim). Sane: one `<…>` token (or a bare token), printable
    /// US-ASCII without spaces, one `@` with both sides non-empty, at most
    /// [`MAX_MESSAGE_ID_LEN`] characters.
    pub message_id: Option<String>,
    /// `hk1:` + lowercase hex SHA-256 over the unfolded raw values of the first `Date`,
    /// `From`, `Subject` and `Received` fields (see the README for the exact byte layout).
    /// Always present, also when a Message-ID is.
    pub header_key: String,
    /// SHA-256 of the raw bytes exactly as given.
    pub content_sha256: [u8; 32],
}

/// Alias of [`Identity`], the name used in some design notes.
pub type Fingerprint = Identity;

impl Identity {
    /// The key to deduplicate on: `mid:<Message-ID>` when there is a sane Message-ID,
    /// else the header key (`hk1:…`).
    pub fn dedupe_key(&self) -> String {
        match &self.message_id {
            Some(id) => format!("mid:{id}"),
            None => self.header_key.clone(),
        }
    }

    /// The content hash as 64 lowercase hex characters.
    pub fn content_sha256_hex(&self) -> String {
        hex(&self.content_sha256)
    }
}

/// Version tag of [`item_key`].
pub const ITEM_KEY_VERSION: &str = "c1";

/// A cheap, stable tag of the raw bytes: `<length>-<16 hex digits>`, the hex being a 64-bit
/// multiply-rotate hash over little-endian 8-byte words (the tail zero-padded), seeded with
/// the length. Not cryptographic: it only tells apart messages that already share a
/// Message-ID or header key, at several GB/s (the body SHA-256 cost 14 % of a migration's
/// CPU). The algorithm is fixed: the tag is stored in targets and state databases.
///
/// ```
/// use o365_migrate_mime::content_tag;
/// assert_eq!(content_tag(b"abc"), content_tag(b"abc"));
/// assert_ne!(content_tag(b"abc"), content_tag(b"abd"));
/// assert!(content_tag(b"abc").starts_with("3-"));
/// ```
pub fn content_tag(raw: &[u8]) -> String {
    const K1: u64 = 0x9E37_79B9_7F4A_7C15;
    const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;
    let mut h = (raw.len() as u64) ^ K2;
    let mut chunks = raw.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K1).rotate_left(29);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K1).rotate_left(29);
    }
    // Final avalanche (SplitMix64's finaliser).
    h ^= h >> 30;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^= h >> 31;
    format!("{}-{h:016x}", raw.len())
}

/// The key an item is stored and deduplicated under: `c1:<content tag>:<dedupe key>`. Two
/// messages with the same Message-ID (or, without one, the same header key) but different
/// bytes get different item keys, so neither is taken for the other; [`weak_key`] gives back
/// the Message-ID / header-key part for matching items whose bytes are unknown (listed from a
/// target by their headers, or written by another tool).
///
/// ```
/// use o365_migrate_mime::{fingerprint, item_key, weak_key};
/// let a = b"Message-ID: <same@x>\r\n\r\none\r\n";
/// let b = b"Message-ID: <same@x>\r\n\r\ntwo\r\n";
/// let (ka, kb) = (item_key(a, &fingerprint(a)), item_key(b, &fingerprint(b)));
/// assert_ne!(ka, kb);
/// assert_eq!(weak_key(&ka), "mid:<same@x>");
/// assert_eq!(weak_key(&ka), weak_key(&kb));
/// assert_eq!(weak_key("mid:<old@x>"), "mid:<old@x>");
/// ```
pub fn item_key(raw: &[u8], identity: &Identity) -> String {
    format!(
        "{ITEM_KEY_VERSION}:{}:{}",
        content_tag(raw),
        identity.dedupe_key()
    )
}

/// The Message-ID / header-key part of an [`item_key`] (`mid:<…>` or `hk1:…`); any other key
/// is returned as it is.
pub fn weak_key(key: &str) -> &str {
    key.strip_prefix("c1:")
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, weak)| weak)
        .unwrap_or(key)
}

/// Computes the [`Identity`] of raw message bytes. Never fails; deterministic.
///
/// ```
/// let id = o365_migrate_mime::fingerprint(b"Message-ID: <a@b>\r\nSubject: x\r\n\r\nhi\r\n");
/// assert_eq!(id.message_id.as_deref(), Some("<a@b>"));
/// assert_eq!(id.dedupe_key(), "mid:<a@b>");
/// assert!(id.header_key.starts_with("hk1:"));
/// ```
pub fn fingerprint(raw: &[u8]) -> Identity {
    let (headers, _) = scan(raw);
    let mut date = None;
    let mut from = None;
    let mut subject = None;
    let mut received = None;
    let mut message_id = None;
    for h in &headers {
        let slot = if h.is("date") {
            &mut date
        } else if h.is("from") {
            &mut from
        } else if h.is("subject") {
            &mut subject
        } else if h.is("received") {
            &mut received
        } else if h.is("message-id") {
            &mut message_id
        } else {
            continue;
        };
        if slot.is_none() {
            *slot = Some(h.value);
        }
    }
    Identity {
        message_id: message_id.and_then(sane_message_id),
        header_key: header_key(date, from, subject, received),
        content_sha256: Sha256::digest(raw).into(),
    }
}

pub(crate) fn header_key(
    date: Option<&[u8]>,
    from: Option<&[u8]>,
    subject: Option<&[u8]>,
    received: Option<&[u8]>,
) -> String {
    let mut h = Sha256::new();
    for (label, v) in [
        (&b"date:"[..], date),
        (b"from:", from),
        (b"subject:", subject),
        (b"received:", received),
    ] {
        h.update(label);
        h.update(unfold(v.unwrap_or_default()));
        h.update(b"\n");
    }
    format!("{HEADER_KEY_VERSION}:{}", hex(&h.finalize()))
}

/// Returns the Message-ID as `<id>` when the raw header value is sane.
pub(crate) fn sane_message_id(value: &[u8]) -> Option<String> {
    let v = unfold(value);
    let v = std::str::from_utf8(&v).ok()?;
    let inner = match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => {
            // Exactly one bracketed token, nothing else but comments-free whitespace.
            if v[b + 1..].contains('<') || !v[..a].trim().is_empty() {
                return None;
            }
            &v[a + 1..b]
        }
        (None, None) => v.trim(),
        _ => return None,
    };
    let ok_char = |c: char| c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"' | '\\');
    let (left, right) = inner.split_once('@')?;
    if left.is_empty()
        || right.is_empty()
        || right.contains('@')
        || !inner.chars().all(ok_char)
        || inner.len() + 2 > MAX_MESSAGE_ID_LEN
    {
        return None;
    }
    Some(format!("<{inner}>"))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// The deterministic Message-ID given to a message that has no sane one:
/// `<` + first 16 bytes of the content SHA-256 in hex + `@o365-migrate.invalid>`.
pub fn synthesized_message_id(raw: &[u8]) -> String {
    let digest = Sha256::digest(raw);
    format!("<{}@o365-migrate.invalid>", hex(&digest[..16]))
}

/// The header block of a message up to and including the empty line that ends it (the whole
/// message when there is none): what [`fingerprint`] reads the identity's
/// header fields from. `fingerprint(header_block(raw))` gives the same Message-ID, header key
/// and dedupe key as `fingerprint(raw)` without hashing the body (its `content_sha256` then
/// covers the header block only).
///
/// ```
/// use o365_migrate_mime::header_block;
/// assert_eq!(header_block(b"Subject: x\r\n\r\nbody"), b"Subject: x\r\n\r\n");
/// ```
pub fn header_block(raw: &[u8]) -> &[u8] {
    if raw.starts_with(b"\r\n") {
        return &raw[..2];
    }
    if raw.starts_with(b"\n") {
        return &raw[..1];
    }
    let mut i = 0;
    while let Some(off) = raw
        .get(i..)
        .and_then(|r| r.iter().position(|&b| b == b'\n'))
    {
        let nl = i + off;
        match raw.get(nl + 1..) {
            Some([b'\n', ..]) => return &raw[..nl + 2],
            Some([b'\r', b'\n', ..]) => return &raw[..nl + 3],
            _ => i = nl + 1,
        }
    }
    raw
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_sanity() {
        assert_eq!(sane_message_id(b" <a@b.c>"), Some("<a@b.c>".into()));
        assert_eq!(sane_message_id(b"a@b.c"), Some("<a@b.c>".into()));
        assert_eq!(
            sane_message_id(b" <a@b.c> (comment)"),
            Some("<a@b.c>".into())
        );
        assert_eq!(sane_message_id(b"<a b@c>"), None);
        assert_eq!(sane_message_id(b"<ab.c>"), None);
        assert_eq!(sane_message_id(b"<a@b@c>"), None);
        assert_eq!(sane_message_id(b"<@c>"), None);
        assert_eq!(sane_message_id(b"<a@b><c@d>"), None);
        assert_eq!(sane_message_id(b"<\xc3\xa9@b>"), None);
        assert_eq!(sane_message_id(b""), None);
        let long = format!("<{}@b>", "x".repeat(300));
        assert_eq!(sane_message_id(long.as_bytes()), None);
    }

    #[test]
    fn header_key_ignores_folding_and_order_of_other_headers() {
        let a = fingerprint(b"Subject: hello\r\n world\r\nFrom: x@y\r\nX-A: 1\r\n\r\nbody");
        let b = fingerprint(b"X-B: 2\nFrom:  x@y\nSubject: hello world\n\nother body");
        assert_eq!(a.header_key, b.header_key);
        assert_ne!(a.content_sha256, b.content_sha256);
        assert_eq!(a.message_id, None);
        assert_eq!(a.dedupe_key(), a.header_key);
    }

    #[test]
    fn known_vector() {
        // Pinned so that the documented algorithm cannot drift silently.
        let id = fingerprint(b"");
        assert_eq!(
            id.content_sha256_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let expected = {
            let mut h = Sha256::new();
            h.update(b"date:\nfrom:\nsubject:\nreceived:\n");
            format!("hk1:{}", hex(&h.finalize()))
        };
        assert_eq!(id.header_key, expected);
    }

    #[test]
    fn header_block_gives_the_same_header_identity() {
        let cases: [&[u8]; 6] = [
            b"Message-ID: <a@b>\r\nSubject: x\r\n\r\nbody\r\n\r\nmore",
            b"Subject: no id\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n\nbody",
            b"Subject: folded\r\n two\r\nFrom: a@b\r\n\r\n",
            b"\r\nno headers",
            b"Subject: no body",
            b"",
        ];
        for raw in cases {
            let whole = fingerprint(raw);
            let head = fingerprint(header_block(raw));
            assert_eq!(whole.dedupe_key(), head.dedupe_key(), "{raw:?}");
            assert_eq!(whole.message_id, head.message_id, "{raw:?}");
        }
        assert_eq!(header_block(b"A: b\r\n\r\nbody"), b"A: b\r\n\r\n");
    }
}
