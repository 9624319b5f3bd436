//! What a load put where: [`ManifestEntry`] per message, the [`Manifest`] and
//! [`Manifest::verify`] against a server, with its [`VerifyReport`].

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use crate::client::Client;
use crate::date::ImapDate;
use crate::error::{Error, Result};

/// One loaded message as recorded in the [`Manifest`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ManifestEntry {
    /// Position in the corpus.
    pub index: usize,
    /// Folder it was appended to.
    pub folder: String,
    /// UID from `[APPENDUID]`, when the server sent one.
    pub uid: Option<u32>,
    /// Flags and keywords it was appended with (sorted).
    pub flags: Vec<String>,
    /// INTERNALDATE it was appended with (compare with [`ImapDate::same_instant`]).
    pub internal_date: ImapDate,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the bytes.
    pub sha256: [u8; 32],
    /// `Message-ID` header value.
    pub message_id: String,
}

impl ManifestEntry {
    /// The SHA-256 as lower-case hex.
    pub fn sha256_hex(&self) -> String {
        hex(&self.sha256)
    }
}

/// What [`Corpus::load`](super::Corpus::load) put where, to verify against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub(super) folders: Vec<String>,
    pub(super) entries: Vec<ManifestEntry>,
}

/// Result of [`Manifest::verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Folders examined.
    pub folders_checked: usize,
    /// Messages fetched and compared.
    pub messages_checked: usize,
    /// Every difference found, one line each (folder, message, what differs).
    pub mismatches: Vec<String>,
}

impl VerifyReport {
    /// True when nothing differs.
    pub fn is_ok(&self) -> bool {
        self.mismatches.is_empty()
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Manifest {
    /// All folders the corpus created (parents included), in creation order.
    pub fn folders(&self) -> &[String] {
        &self.folders
    }

    /// All entries, by corpus index.
    pub fn entries(&self) -> &[ManifestEntry] {
        &self.entries
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no messages.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total bytes of all messages.
    pub fn total_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }

    /// Entries grouped by folder (every created folder present, possibly empty).
    pub fn by_folder(&self) -> BTreeMap<&str, Vec<&ManifestEntry>> {
        let mut m: BTreeMap<&str, Vec<&ManifestEntry>> = self
            .folders
            .iter()
            .map(|f| (f.as_str(), Vec::new()))
            .collect();
        for e in &self.entries {
            m.entry(e.folder.as_str()).or_default().push(e);
        }
        m
    }

    /// Message count per folder (every created folder present).
    pub fn folder_counts(&self) -> BTreeMap<&str, usize> {
        self.by_folder()
            .into_iter()
            .map(|(k, v)| (k, v.len()))
            .collect()
    }

    /// A short human-readable summary: total, bytes, and the count per folder.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} messages, {:.1} MB",
            self.len(),
            self.total_bytes() as f64 / 1e6
        );
        for (folder, n) in self.folder_counts() {
            s.push_str(&format!("\n  {folder}: {n}"));
        }
        s
    }

    /// Finds an entry by `Message-ID` (with angle brackets).
    pub fn by_message_id(&self, message_id: &str) -> Option<&ManifestEntry> {
        self.entries.iter().find(|e| e.message_id == message_id)
    }

    /// Proves over IMAP that the logged-in mailbox holds exactly this manifest: per folder
    /// the message count, and per message (matched by SHA-256 of `BODY[]`) the flags, the
    /// INTERNALDATE instant and the size. Folders not in the manifest are ignored.
    pub async fn verify(&self, client: &mut Client) -> Result<VerifyReport> {
        self.verify_mapped(client, |f| f.to_owned()).await
    }

    /// Like [`Manifest::verify`], with source folder names mapped to the names on the
    /// server being checked (e.g. after a migration that renames folders).
    pub async fn verify_mapped<F>(&self, client: &mut Client, map: F) -> Result<VerifyReport>
    where
        F: Fn(&str) -> String,
    {
        let mut report = VerifyReport::default();
        for (folder, expected) in self.by_folder() {
            let target = map(folder);
            report.folders_checked += 1;
            let sel = match client.examine(&target).await {
                Ok(s) => s,
                Err(Error::Refused { response, .. }) => {
                    report
                        .mismatches
                        .push(format!("{target:?}: cannot be examined: {response}"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if sel.exists as usize != expected.len() {
                report.mismatches.push(format!(
                    "{target:?}: {} messages, manifest has {}",
                    sel.exists,
                    expected.len()
                ));
            }
            if sel.exists == 0 {
                continue;
            }
            let mut by_sha: HashMap<[u8; 32], &ManifestEntry> =
                expected.iter().map(|e| (e.sha256, *e)).collect();
            let mut problems = Vec::new();
            let mut checked = 0usize;
            client
                .uid_fetch_each(
                    "1:*",
                    "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])",
                    |m| {
                        checked += 1;
                        let uid = m.uid.unwrap_or(0);
                        let Some(body) = m.body.as_deref() else {
                            problems.push(format!("{target:?} UID {uid}: no BODY[] returned"));
                            return;
                        };
                        let digest = sha256(body);
                        let Some(e) = by_sha.remove(&digest) else {
                            problems.push(format!(
                                "{target:?} UID {uid}: not in the manifest (or altered): sha256 {}",
                                hex(&digest)
                            ));
                            return;
                        };
                        let mut flags = m.flags.clone();
                        flags.sort();
                        if flags != e.flags {
                            problems.push(format!(
                                "{target:?} UID {uid} (corpus #{} {}): flags {:?}, manifest {:?}",
                                e.index, e.message_id, flags, e.flags
                            ));
                        }
                        match m.internal_date {
                            Some(d) if d.same_instant(&e.internal_date) => {}
                            other => problems.push(format!(
                                "{target:?} UID {uid} (corpus #{} {}): INTERNALDATE {:?}, manifest {}",
                                e.index, e.message_id, other, e.internal_date
                            )),
                        }
                        if m.size != Some(e.size) {
                            problems.push(format!(
                                "{target:?} UID {uid} (corpus #{} {}): RFC822.SIZE {:?}, manifest {}",
                                e.index, e.message_id, m.size, e.size
                            ));
                        }
                    },
                )
                .await?;
            report.messages_checked += checked;
            let mut missing: Vec<&ManifestEntry> = by_sha.into_values().collect();
            missing.sort_by_key(|e| e.index);
            for e in missing {
                problems.push(format!(
                    "{target:?}: corpus #{} {} missing (or altered)",
                    e.index, e.message_id
                ));
            }
            report.mismatches.extend(problems);
        }
        Ok(report)
    }
}
