//! A hostile mail corpus: named messages that break assumptions, each with the outcome a
//! migration must end in.
//!
//! [`HostileCorpus`] generates, deterministically from a seed, one [`HostileCase`] per
//! kind of trouble seen in real mailboxes (see [`CASE_NAMES`]): bare LF line endings, NUL
//! bytes, raw 8-bit headers, no `Message-ID`, one `Message-ID` on two different messages, a
//! 0-byte message, a message over the configured maximum size, broken MIME boundaries, a
//! 1 MB header block, multiparts nested 100 deep, a message with headers and no body, a
//! 20,000-character header line, a truncated base64 part and an unknown charset.
//!
//! Each case says what a migration must do with it ([`ExpectedOutcome`]): arrive, arrive
//! *or* be reported with a reason, or be reported (never silently dropped, never a
//! panic). Every case except the 0-byte one carries a header `X-Hostile-Case: <name>`, so
//! [`case_name_of`] identifies a message on any target.
//!
//! [`HostileCorpus::load`] puts them into a Dovecot folder (default `Hostile`). Most go in
//! by IMAP APPEND; what Dovecot's APPEND refuses is written straight into the user's
//! Maildir ([`Delivery::MaildirFile`]): Dovecot 2.3 answers an APPEND of a 0-byte literal
//! with `NO Can't save a zero byte message`, so the `zero-bytes` case is written as an
//! empty file into `Maildir/.Hostile/tmp/`, renamed into `new/` ([`deliver_file`]), and
//! Dovecot then lists it like any other message (`RFC822.SIZE 0`). Everything else, NUL
//! bytes included, goes in by APPEND. The returned [`HostileManifest`] names each case
//! with its UID, sizes and SHA-256.
//!
//! What Dovecot *serves* is not always what was stored: bare LFs come back as CRLF and
//! NUL bytes as 0x80 (same size). [`HostileEntry::server_size`] and
//! [`HostileEntry::server_sha256`] record the served form, which is what a migration
//! reading from this Dovecot sees and must deliver.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use o365_migrate_testkit::{Dovecot, DovecotOptions, HostileCorpus, HostileOptions};
//!
//! let rt = tokio::runtime::Runtime::new()?;
//! rt.block_on(async {
//!     let dovecot = Dovecot::start(DovecotOptions::default())?;
//!     let corpus = HostileCorpus::new(HostileOptions::default().with_max_message_bytes(2 << 20));
//!     let manifest = corpus.load(&dovecot, "alice").await?;
//!     assert_eq!(manifest.len(), corpus.cases().len());
//!     let mut imap = dovecot.login("alice").await?;
//!     assert!(manifest.verify(&mut imap).await?.is_ok());
//!     Ok::<_, o365_migrate_testkit::Error>(())
//! })?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::client::{AppendRequest, Client};
use crate::corpus::{VerifyReport, sha256};
use crate::date::ImapDate;
use crate::dovecot::Dovecot;
use crate::error::{Error, Result};
use crate::rng::{Rng, derive};

/// The header that names a case inside its message.
pub const CASE_HEADER: &str = "X-Hostile-Case";

/// Every case name, in generation order.
pub const CASE_NAMES: &[&str] = &[
    "bare-lf",
    "nul-bytes",
    "8bit-headers",
    "no-message-id",
    "duplicate-message-id-a",
    "duplicate-message-id-b",
    "zero-bytes",
    "over-max-size",
    "broken-mime-boundary",
    "huge-header-block",
    "deep-nesting",
    "headers-only",
    "long-header-line",
    "truncated-base64",
    "invalid-charset",
];

/// What a migration must do with a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedOutcome {
    /// Must arrive at the target; skipping or failing it is a bug.
    Migrated,
    /// Must arrive, or be reported (skipped/failed) with a reason, because some targets
    /// legitimately refuse it (e.g. Microsoft Graph and NUL bytes). Never silently dropped.
    MigratedOrReported,
    /// Must be reported with a reason and not migrated (e.g. larger than the job's
    /// `max_message_size`).
    Reported,
}

/// How a case gets into Dovecot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// IMAP APPEND.
    Append,
    /// A file written into the user's Maildir (`new/`), because APPEND refuses it.
    MaildirFile,
}

/// One hostile message.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostileCase {
    /// Stable name (one of [`CASE_NAMES`]).
    pub name: &'static str,
    /// What is hostile about it.
    pub description: &'static str,
    /// What a migration must do with it.
    pub expected: ExpectedOutcome,
    /// How [`HostileCorpus::load`] stores it.
    pub delivery: Delivery,
    /// The `Message-ID` value (with angle brackets), if the message has one.
    pub message_id: Option<String>,
    /// The raw message.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for HostileCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostileCase")
            .field("name", &self.name)
            .field("expected", &self.expected)
            .field("delivery", &self.delivery)
            .field("message_id", &self.message_id)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Settings for [`HostileCorpus`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostileOptions {
    /// Seed for filler content and Message-IDs.
    pub seed: u64,
    /// The migration's maximum message size; `over-max-size` is exactly one byte larger.
    /// Default 4 MiB (set the job's `max_message_size` to the same value).
    pub max_message_bytes: u64,
    /// Size of the `huge-header-block` header section. Default 1 MiB.
    pub header_block_bytes: usize,
    /// Nesting depth of `deep-nesting`. Default 100.
    pub nesting_depth: usize,
    /// Length of `long-header-line`'s unfolded `Subject` line. Default 20,000.
    pub long_header_chars: usize,
    /// The folder [`HostileCorpus::load`] uses (UTF-8, `/`-separated). Default `Hostile`.
    pub folder: String,
}

impl Default for HostileOptions {
    fn default() -> Self {
        HostileOptions {
            seed: 11,
            max_message_bytes: 4 << 20,
            header_block_bytes: 1 << 20,
            nesting_depth: 100,
            long_header_chars: 20_000,
            folder: "Hostile".to_owned(),
        }
    }
}

impl HostileOptions {
    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the maximum message size (`over-max-size` gets this plus one byte).
    pub fn with_max_message_bytes(mut self, bytes: u64) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Sets the size of the huge header block.
    pub fn with_header_block_bytes(mut self, bytes: usize) -> Self {
        self.header_block_bytes = bytes;
        self
    }

    /// Sets the multipart nesting depth.
    pub fn with_nesting_depth(mut self, depth: usize) -> Self {
        self.nesting_depth = depth.max(1);
        self
    }

    /// Sets the length of the long header line.
    pub fn with_long_header_chars(mut self, chars: usize) -> Self {
        self.long_header_chars = chars;
        self
    }

    /// Sets the folder to load into.
    pub fn with_folder(mut self, folder: impl Into<String>) -> Self {
        self.folder = folder.into();
        self
    }
}

/// One loaded case as recorded in the [`HostileManifest`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostileEntry {
    /// The case name.
    pub name: &'static str,
    /// Folder it is in.
    pub folder: String,
    /// Its UID in that folder.
    pub uid: u32,
    /// What a migration must do with it.
    pub expected: ExpectedOutcome,
    /// How it was stored.
    pub delivery: Delivery,
    /// Size of the generated bytes.
    pub size: u64,
    /// SHA-256 of the generated bytes.
    pub sha256: [u8; 32],
    /// `RFC822.SIZE` as Dovecot reports it (differs from `size` where Dovecot normalizes
    /// line endings, e.g. `bare-lf`).
    pub server_size: u64,
    /// SHA-256 of `BODY[]` as Dovecot serves it (differs from `sha256` for `bare-lf`, whose
    /// LFs become CRLF, and `nul-bytes`, whose NULs are served as 0x80). This is what a
    /// migration reading from this Dovecot sees.
    pub server_sha256: [u8; 32],
    /// The `Message-ID`, if any.
    pub message_id: Option<String>,
}

/// What [`HostileCorpus::load`] stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostileManifest {
    entries: Vec<HostileEntry>,
}

impl HostileManifest {
    /// All entries, in case order.
    pub fn entries(&self) -> &[HostileEntry] {
        &self.entries
    }

    /// Number of cases loaded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing was loaded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry of one case.
    pub fn get(&self, name: &str) -> Option<&HostileEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The case names loaded, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|e| e.name).collect()
    }

    /// Proves the folder holds exactly the loaded cases: same count, each UID present with
    /// the size and SHA-256 Dovecot served after loading, and each message naming its case
    /// ([`case_name_of`]).
    pub async fn verify(&self, client: &mut Client) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let mut folders: Vec<&str> = self.entries.iter().map(|e| e.folder.as_str()).collect();
        folders.dedup();
        for folder in folders {
            report.folders_checked += 1;
            client.examine(folder).await?;
            let fetched = client.uid_fetch_full("1:*").await?;
            let expected: Vec<&HostileEntry> =
                self.entries.iter().filter(|e| e.folder == folder).collect();
            if fetched.len() != expected.len() {
                report.mismatches.push(format!(
                    "{folder}: {} messages, expected {}",
                    fetched.len(),
                    expected.len()
                ));
            }
            for e in expected {
                let Some(m) = fetched.iter().find(|m| m.uid == Some(e.uid)) else {
                    report.mismatches.push(format!(
                        "{folder}: case {} (UID {}) is missing",
                        e.name, e.uid
                    ));
                    continue;
                };
                report.messages_checked += 1;
                let body = m.body.as_deref().unwrap_or_default();
                if m.size != Some(e.server_size) || sha256(body) != e.server_sha256 {
                    report.mismatches.push(format!(
                        "{folder}: case {} has size {:?} and different content, expected {} bytes with the loaded SHA-256",
                        e.name, m.size, e.server_size
                    ));
                }
                let named = case_name_of(body);
                if named.as_deref() != Some(e.name) {
                    report.mismatches.push(format!(
                        "{folder}: UID {} should be case {} but names {named:?}",
                        e.uid, e.name
                    ));
                }
            }
        }
        client.raw("UNSELECT").await.ok();
        Ok(report)
    }
}

/// Which case a message is: the value of its `X-Hostile-Case` header, or `zero-bytes` for
/// an empty message. Tolerates CRLF or LF and any content around it.
pub fn case_name_of(message: &[u8]) -> Option<String> {
    if message.is_empty() {
        return Some("zero-bytes".to_owned());
    }
    let needle = format!("{CASE_HEADER}: ");
    let needle = needle.as_bytes();
    let start = message
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + needle.len())?;
    let rest = message.get(start..)?;
    let end = rest
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(rest.len());
    let name = String::from_utf8_lossy(rest.get(..end)?).into_owned();
    CASE_NAMES.contains(&name.as_str()).then_some(name)
}

/// The hostile corpus generator.
#[derive(Debug, Clone)]
pub struct HostileCorpus {
    options: HostileOptions,
}

/// A fixed INTERNALDATE for every case (2024-03-01 12:00:00 UTC).
const INTERNAL_DATE: i64 = 1_709_294_400;

impl HostileCorpus {
    /// A generator with these options.
    pub fn new(options: HostileOptions) -> Self {
        HostileCorpus { options }
    }

    /// The options.
    pub fn options(&self) -> &HostileOptions {
        &self.options
    }

    /// Generates every case (in [`CASE_NAMES`] order).
    pub fn cases(&self) -> Vec<HostileCase> {
        CASE_NAMES.iter().filter_map(|n| self.case(n)).collect()
    }

    /// Generates one case by name.
    pub fn case(&self, name: &str) -> Option<HostileCase> {
        let o = &self.options;
        let seed = o.seed;
        let idx = CASE_NAMES.iter().position(|n| *n == name)? as u64;
        let mut rng = Rng::new(derive(seed, idx, 0x686f_7374));
        let name: &'static str = CASE_NAMES.get(idx as usize)?;
        let mid = |tag: &str| format!("<hostile-{tag}.{seed}@o365-migrate.test>");
        let dup_id = mid("duplicate");
        let own_id = mid(name);
        use Delivery::*;
        use ExpectedOutcome::*;
        let (description, expected, delivery, message_id, bytes): (
            &'static str,
            ExpectedOutcome,
            Delivery,
            Option<String>,
            Vec<u8>,
        ) = match name {
            "bare-lf" => {
                let m = simple(name, &own_id, "Bare LF line endings", &filler(&mut rng, 20))
                    .replace("\r\n", "\n");
                (
                    "every line ends in LF only, no CR",
                    Migrated,
                    Append,
                    Some(own_id),
                    m.into_bytes(),
                )
            }
            "nul-bytes" => {
                let mut m =
                    simple(name, &own_id, "NUL bytes in the body", "before NUL\r\n").into_bytes();
                m.extend_from_slice(b"a\0b\0\0c\r\n\0\r\nafter NUL\r\n");
                (
                    "NUL bytes inside the text body (Dovecot serves them as 0x80)",
                    MigratedOrReported,
                    Append,
                    Some(own_id),
                    m,
                )
            }
            "8bit-headers" => {
                let mut m = Vec::new();
                m.extend_from_slice("From: Jürgen Müller <juergen@example.test>\r\nTo: Zoë <zoe@example.test>\r\nSubject: Grüße aus Köln – 8-bit, not RFC 2047 encoded\r\n".as_bytes());
                // A Latin-1 byte (é) that is not valid UTF-8, as old clients wrote it.
                m.extend_from_slice(b"X-Latin1: caf\xe9\r\n");
                m.extend_from_slice(
                    format!(
                        "Date: Fri, 1 Mar 2024 12:00:00 +0000\r\nMessage-ID: {own_id}\r\n{CASE_HEADER}: {name}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nRaw 8-bit header values.\r\n"
                    )
                    .as_bytes(),
                );
                (
                    "raw UTF-8 and Latin-1 bytes in header values",
                    Migrated,
                    Append,
                    Some(own_id),
                    m,
                )
            }
            "no-message-id" => {
                let m = format!(
                    "From: Nobody <nobody@example.test>\r\nTo: alice@example.test\r\nSubject: No Message-ID header\r\nDate: Fri, 1 Mar 2024 12:00:00 +0000\r\n{CASE_HEADER}: {name}\r\n\r\n{}",
                    filler(&mut rng, 5)
                );
                (
                    "no Message-ID header at all",
                    Migrated,
                    Append,
                    None,
                    m.into_bytes(),
                )
            }
            "duplicate-message-id-a" | "duplicate-message-id-b" => {
                let m = simple(
                    name,
                    &dup_id,
                    "Same Message-ID, different content",
                    &filler(&mut rng, 8),
                );
                (
                    "shares its Message-ID with the other duplicate-message-id case; content differs",
                    Migrated,
                    Append,
                    Some(dup_id),
                    m.into_bytes(),
                )
            }
            "zero-bytes" => (
                "an empty (0-byte) message; Dovecot's APPEND refuses it, so it is a Maildir file",
                MigratedOrReported,
                MaildirFile,
                None,
                Vec::new(),
            ),
            "over-max-size" => {
                let target = o.max_message_bytes.saturating_add(1);
                let head = simple(name, &own_id, "Larger than the maximum message size", "");
                let mut m = head.into_bytes();
                let mut line = [0u8; 76];
                while (m.len() as u64) < target {
                    rng.fill(&mut line);
                    let text: Vec<u8> = line.iter().map(|b| b'a' + b % 26).collect();
                    m.extend_from_slice(&text);
                    m.extend_from_slice(b"\r\n");
                }
                m.truncate(target as usize);
                (
                    "one byte larger than max_message_bytes: must be skipped with a reason",
                    Reported,
                    Append,
                    Some(own_id),
                    m,
                )
            }
            "broken-mime-boundary" => {
                let m = format!(
                    "From: a@example.test\r\nTo: b@example.test\r\nSubject: Broken MIME boundaries\r\nDate: Fri, 1 Mar 2024 12:00:00 +0000\r\nMessage-ID: {own_id}\r\n{CASE_HEADER}: {name}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"declared-boundary\"\r\n\r\npreamble\r\n--wrong-boundary\r\nContent-Type: text/plain\r\n\r\nThis part uses a boundary that was never declared.\r\n--declared-boundary\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n--inner\r\nContent-Type: text/plain\r\n\r\nInner part whose multipart never closes.\r\n--declared-boundary\r\nContent-Type: text/html\r\n\r\n<p>{}</p>\r\n",
                    filler(&mut rng, 2).trim_end()
                );
                (
                    "undeclared boundary, unclosed inner multipart, no closing delimiter",
                    Migrated,
                    Append,
                    Some(own_id),
                    m.into_bytes(),
                )
            }
            "huge-header-block" => {
                let mut m = format!(
                    "From: a@example.test\r\nTo: b@example.test\r\nSubject: A 1 MB header block\r\nDate: Fri, 1 Mar 2024 12:00:00 +0000\r\nMessage-ID: {own_id}\r\n{CASE_HEADER}: {name}\r\n"
                )
                .into_bytes();
                let mut i = 0u32;
                while m.len() < o.header_block_bytes {
                    i += 1;
                    m.extend_from_slice(
                        format!("Received: from relay{i}.example.test by mx.example.test; Fri, 1 Mar 2024 12:00:00 +0000\r\n")
                            .as_bytes(),
                    );
                }
                m.extend_from_slice(b"\r\nSmall body under a huge header block.\r\n");
                (
                    "about header_block_bytes of Received headers",
                    MigratedOrReported,
                    Append,
                    Some(own_id),
                    m,
                )
            }
            "deep-nesting" => {
                let depth = o.nesting_depth.max(1);
                let mut m = format!(
                    "From: a@example.test\r\nTo: b@example.test\r\nSubject: Multiparts nested {depth} deep\r\nDate: Fri, 1 Mar 2024 12:00:00 +0000\r\nMessage-ID: {own_id}\r\n{CASE_HEADER}: {name}\r\nMIME-Version: 1.0\r\n"
                );
                for level in 0..depth {
                    m.push_str(&format!(
                        "Content-Type: multipart/mixed; boundary=\"nest{level}\"\r\n\r\n--nest{level}\r\nContent-Type: text/plain\r\n\r\nlevel {level}\r\n--nest{level}\r\n"
                    ));
                }
                m.push_str("Content-Type: text/plain\r\n\r\nthe innermost part\r\n");
                for level in (0..depth).rev() {
                    m.push_str(&format!("--nest{level}--\r\n"));
                }
                (
                    "multipart/mixed nested nesting_depth deep",
                    MigratedOrReported,
                    Append,
                    Some(own_id),
                    m.into_bytes(),
                )
            }
            "headers-only" => {
                let m = format!(
                    "From: a@example.test\r\nTo: b@example.test\r\nSubject: Headers and no body\r\nDate: Fri, 1 Mar 2024 12:00:00 +0000\r\nMessage-ID: {own_id}\r\n{CASE_HEADER}: {name}\r\n"
                );
                (
                    "a header section with no blank line and no body",
                    Migrated,
                    Append,
                    Some(own_id),
                    m.into_bytes(),
                )
            }
            "long-header-line" => {
                let subject: String = (0..o.long_header_chars)
                    .map(|_| char::from(b'a' + (rng.below(26) as u8)))
                    .collect();
                let m = format!(
                    "From: a@example.test\r\nTo: b@example.test\r\nSubject: {subject}\r\nDate: Fri, 1 Mar 2024 12:00:00 +0000\r\nMessage-ID: {own_id}\r\n{CASE_HEADER}: {name}\r\n\r\nThe Subject line is not folded.\r\n"
                );
                (
                    "an unfolded Subject line of long_header_chars characters",
                    MigratedOrReported,
                    Append,
                    Some(own_id),
                    m.into_bytes(),
                )
            }
            "truncated-base64" => {
                let mut data = vec![0u8; 3000];
                rng.fill(&mut data);
                let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
                let cut = b64.get(..1234).unwrap_or_default();
                let lines: Vec<&str> = cut
                    .as_bytes()
                    .chunks(76)
                    .map(|c| std::str::from_utf8(c).unwrap_or_default())
                    .collect();
                let m = format!(
                    "From: a@example.test\r\nTo: b@example.test\r\nSubject: Truncated base64 attachment\r\nDate: Fri, 1 Mar 2024 12:00:00 +0000\r\nMessage-ID: {own_id}\r\n{CASE_HEADER}: {name}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b64\"\r\n\r\n--b64\r\nContent-Type: text/plain\r\n\r\nSee attachment.\r\n--b64\r\nContent-Type: application/octet-stream; name=\"cut.bin\"\r\nContent-Disposition: attachment; filename=\"cut.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
                    lines.join("\r\n")
                );
                (
                    "a base64 attachment cut mid-quantum, no closing boundary",
                    Migrated,
                    Append,
                    Some(own_id),
                    m.into_bytes(),
                )
            }
            "invalid-charset" => {
                let m = format!(
                    "From: =?x-no-such-charset?Q?Bad=E9_Name?= <a@example.test>\r\nTo: b@example.test\r\nSubject: =?x-no-such-charset?B?SGVsbG8=?=\r\nDate: Fri, 1 Mar 2024 12:00:00 +0000\r\nMessage-ID: {own_id}\r\n{CASE_HEADER}: {name}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"x-no-such-charset\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\nBody in an unknown charset: \u{e9}t\u{e9}.\r\n"
                );
                (
                    "an unknown charset in RFC 2047 words and Content-Type",
                    Migrated,
                    Append,
                    Some(own_id),
                    m.into_bytes(),
                )
            }
            _ => return None,
        };
        Some(HostileCase {
            name,
            description,
            expected,
            delivery,
            message_id,
            bytes,
        })
    }

    /// Logs in to `dovecot` as `user` and loads every case into the options' folder (see
    /// [`HostileCorpus::load_into`]).
    pub async fn load(&self, dovecot: &Dovecot, user: &str) -> Result<HostileManifest> {
        let mut client = dovecot.login(user).await?;
        let maildir = dovecot.maildir(user);
        let manifest = self.load_into(&mut client, &maildir).await?;
        client.logout().await?;
        Ok(manifest)
    }

    /// Loads every case over a logged-in connection: creates the folder, APPENDs the
    /// [`Delivery::Append`] cases and writes the [`Delivery::MaildirFile`] cases into
    /// `maildir` (the user's Maildir root, [`Dovecot::maildir`]) one at a time, letting
    /// Dovecot pick each up. Fails naming the case if Dovecot refuses one.
    pub async fn load_into(&self, client: &mut Client, maildir: &Path) -> Result<HostileManifest> {
        let folder = self.options.folder.clone();
        if folder != "INBOX" {
            client.create_if_missing(&folder).await?;
        }
        let date = ImapDate::from_unix_utc(INTERNAL_DATE);
        let mut entries = Vec::new();
        for case in self.cases() {
            let uid = match case.delivery {
                Delivery::Append => {
                    let req = AppendRequest::new(case.bytes.clone(), Vec::new(), Some(date));
                    let uid = client.append(&folder, &req).await.map_err(|e| {
                        Error::protocol(
                            format!("loading hostile case {}", case.name),
                            e.to_string(),
                        )
                    })?;
                    match uid {
                        Some(u) => u,
                        None => {
                            return Err(Error::protocol(
                                format!("loading hostile case {}", case.name),
                                "Dovecot sent no APPENDUID",
                            ));
                        }
                    }
                }
                Delivery::MaildirFile => {
                    let before = client.select(&folder).await?;
                    let dir = maildir_folder(maildir, &folder);
                    deliver_file(&dir, case.name, &case.bytes)?;
                    client.select(&folder).await?;
                    let from = before.uid_next.unwrap_or(1);
                    let new = client.uid_fetch_meta(&format!("{from}:*")).await?;
                    new.iter()
                        .filter_map(|m| m.uid)
                        .filter(|u| *u >= from)
                        .max()
                        .ok_or_else(|| {
                            Error::protocol(
                                format!("loading hostile case {}", case.name),
                                format!(
                                    "Dovecot did not pick up the file written to {}",
                                    dir.display()
                                ),
                            )
                        })?
                }
            };
            entries.push(HostileEntry {
                name: case.name,
                folder: folder.clone(),
                uid,
                expected: case.expected,
                delivery: case.delivery,
                size: case.bytes.len() as u64,
                sha256: sha256(&case.bytes),
                server_size: 0,
                server_sha256: [0; 32],
                message_id: case.message_id.clone(),
            });
        }
        client.examine(&folder).await?;
        let served = client.uid_fetch_full("1:*").await?;
        for e in &mut entries {
            let (size, body) = served
                .iter()
                .find(|m| m.uid == Some(e.uid))
                .and_then(|m| Some((m.size?, m.body.as_deref()?)))
                .ok_or_else(|| {
                    Error::protocol(
                        format!("loading hostile case {}", e.name),
                        format!("UID {} is not in {folder} after loading", e.uid),
                    )
                })?;
            e.server_size = size;
            e.server_sha256 = sha256(body);
        }
        client.raw("UNSELECT").await.ok();
        Ok(HostileManifest { entries })
    }
}

/// `From`/`To`/`Subject`/`Date`/`Message-ID`/case header, a blank line and `body`.
fn simple(name: &str, message_id: &str, subject: &str, body: &str) -> String {
    format!(
        "From: Hostile Corpus <hostile@example.test>\r\nTo: alice@example.test\r\nSubject: {subject}\r\nDate: Fri, 1 Mar 2024 12:00:00 +0000\r\nMessage-ID: {message_id}\r\n{CASE_HEADER}: {name}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{body}"
    )
}

/// `lines` CRLF lines of seeded words.
fn filler(rng: &mut Rng, lines: usize) -> String {
    const WORDS: &[&str] = &[
        "mailbox",
        "quarterly",
        "report",
        "invoice",
        "meeting",
        "draft",
        "migration",
        "server",
        "budget",
        "review",
        "lunch",
        "project",
        "deadline",
        "attachment",
        "schedule",
    ];
    let mut s = String::new();
    for _ in 0..lines {
        let n = rng.range(4, 12);
        let words: Vec<&str> = (0..n).map(|_| *rng.pick(WORDS)).collect();
        s.push_str(&words.join(" "));
        s.push_str("\r\n");
    }
    s
}

/// The on-disk directory of `folder` in a Maildir++ root (Dovecot's default layout:
/// `INBOX` is the root, `A/B` is `.A.B`).
pub fn maildir_folder(maildir: &Path, folder: &str) -> PathBuf {
    if folder.eq_ignore_ascii_case("INBOX") {
        maildir.to_path_buf()
    } else {
        let encoded = crate::utf7::encode(folder).replace('/', ".");
        maildir.join(format!(".{encoded}"))
    }
}

/// Writes `bytes` as a new message into the Maildir folder `dir` (`tmp/` then rename to
/// `new/`), owned like `dir` (Dovecot runs as `mail` when the tests run as root).
pub fn deliver_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(dir).map_err(|e| {
        Error::io(
            format!(
                "reading Maildir folder {} (create the folder over IMAP first)",
                dir.display()
            ),
            e,
        )
    })?;
    let file_name = format!(
        "{INTERNAL_DATE}.M{}P{}.o365mt-{name}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or_default(),
        std::process::id()
    );
    let tmp = dir.join("tmp").join(&file_name);
    let new = dir.join("new").join(&file_name);
    for sub in ["tmp", "new", "cur"] {
        let p = dir.join(sub);
        if !p.exists() {
            fs::create_dir(&p).map_err(|e| Error::io(format!("creating {}", p.display()), e))?;
            let _ = std::os::unix::fs::chown(&p, Some(meta.uid()), Some(meta.gid()));
        }
    }
    let mut f =
        fs::File::create(&tmp).map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    drop(f);
    // Best effort: only root can chown, and only root needs to (Dovecot runs as `mail`).
    let _ = std::os::unix::fs::chown(&tmp, Some(meta.uid()), Some(meta.gid()));
    fs::rename(&tmp, &new)
        .map_err(|e| Error::io(format!("moving {} to {}", tmp.display(), new.display()), e))?;
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_is_generated_and_named() {
        let c = HostileCorpus::new(HostileOptions::default().with_max_message_bytes(100_000));
        let cases = c.cases();
        assert_eq!(cases.len(), CASE_NAMES.len());
        for case in &cases {
            assert_eq!(
                case_name_of(&case.bytes).as_deref(),
                Some(case.name),
                "{}",
                case.name
            );
        }
        let get = |n: &str| cases.iter().find(|c| c.name == n).unwrap();
        assert!(get("zero-bytes").bytes.is_empty());
        assert_eq!(get("over-max-size").bytes.len(), 100_001);
        assert!(!get("bare-lf").bytes.contains(&b'\r'));
        assert!(get("nul-bytes").bytes.contains(&0));
        assert!(get("8bit-headers").bytes.iter().any(|b| *b >= 0x80));
        assert!(std::str::from_utf8(&get("8bit-headers").bytes).is_err());
        assert!(get("no-message-id").message_id.is_none());
        assert!(!String::from_utf8_lossy(&get("no-message-id").bytes).contains("\r\nMessage-ID:"));
        let (a, b) = (get("duplicate-message-id-a"), get("duplicate-message-id-b"));
        assert_eq!(a.message_id, b.message_id);
        assert_ne!(a.bytes, b.bytes);
        assert!(get("huge-header-block").bytes.len() >= 1 << 20);
        let deep = String::from_utf8_lossy(&get("deep-nesting").bytes).into_owned();
        assert_eq!(deep.matches("multipart/mixed").count(), 100);
        assert!(!String::from_utf8_lossy(&get("headers-only").bytes).contains("\r\n\r\n"));
        let long = String::from_utf8_lossy(&get("long-header-line").bytes).into_owned();
        assert!(long.lines().any(|l| l.len() > 20_000));
        assert_eq!(
            cases
                .iter()
                .filter(|c| c.expected == ExpectedOutcome::Reported)
                .count(),
            1
        );
    }

    #[test]
    fn deterministic_per_seed() {
        let a = HostileCorpus::new(HostileOptions::default().with_max_message_bytes(10_000));
        let b = HostileCorpus::new(HostileOptions::default().with_max_message_bytes(10_000));
        let c = HostileCorpus::new(
            HostileOptions::default()
                .with_max_message_bytes(10_000)
                .with_seed(12),
        );
        assert_eq!(a.cases(), b.cases());
        assert_ne!(a.cases(), c.cases());
    }

    #[test]
    fn parses_with_a_real_mime_parser_without_panicking() {
        let c = HostileCorpus::new(HostileOptions::default().with_max_message_bytes(10_000));
        for case in c.cases() {
            let _ = mail_parser::MessageParser::default().parse(&case.bytes);
        }
    }

    #[test]
    fn unknown_marker_is_not_a_case() {
        assert_eq!(case_name_of(b"X-Hostile-Case: nope\r\n\r\n"), None);
        assert_eq!(case_name_of(b"Subject: x\r\n\r\n"), None);
        assert_eq!(
            case_name_of(b"X-Hostile-Case: bare-lf\n\nbody").as_deref(),
            Some("bare-lf")
        );
    }

    #[test]
    fn maildir_layout() {
        let root = Path::new("/m");
        assert_eq!(maildir_folder(root, "INBOX"), PathBuf::from("/m"));
        assert_eq!(
            maildir_folder(root, "Hostile"),
            PathBuf::from("/m/.Hostile")
        );
        assert_eq!(maildir_folder(root, "A/B"), PathBuf::from("/m/.A.B"));
    }
}
