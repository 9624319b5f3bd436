//! Deterministic, realistic mail corpus: generation, loading by APPEND, and a manifest.
//!
//! A [`Corpus`] is a pure function of its [`CorpusProfile`] (seed, message count, size
//! options): message `i` is always the same bytes, flags, folder and INTERNALDATE, on any
//! machine and with any dependency versions (own PRNG, own encoders). Messages are generated
//! lazily, one at a time, so a 5,000-message / ~700 MB corpus never sits in memory.
//!
//! ```
//! use o365_migrate_testkit::corpus::{Corpus, CorpusProfile};
//!
//! let corpus = Corpus::new(CorpusProfile::small(7, 20));
//! let first = corpus.message(0);
//! assert_eq!(first.bytes, corpus.message(0).bytes); // deterministic
//! assert!(first.bytes.windows(2).all(|w| w[1] != b'\n' || w[0] == b'\r')); // CRLF only
//! assert_eq!(corpus.iter().count(), 20);
//! ```

use std::fmt;

use crate::client::{AppendRequest, Client};
use crate::date::ImapDate;
use crate::dovecot::Dovecot;
use crate::error::{Error, Result};
use crate::rng::{Rng, derive};

mod builder;
mod manifest;
#[cfg(test)]
mod tests;

use builder::{Builder, DOMAINS};
pub use manifest::{Manifest, ManifestEntry, VerifyReport, sha256};

const KB: u64 = 1024;
const MB: u64 = 1024 * 1024;

/// Size and shape options for a [`Corpus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusProfile {
    seed: u64,
    messages: usize,
    attachment_per_mille: u32,
    attachment_max: u64,
    huge_every: Option<usize>,
    huge_min: u64,
    huge_max: u64,
    max_message_bytes: Option<u64>,
}

impl CorpusProfile {
    /// The realistic mix: most messages 2–50 KB, about 8 % with base64 attachments of
    /// 100 KB–5 MB, and one 20–24 MB message per 1,000. A 5,000-message corpus is about
    /// 700 MB.
    pub fn realistic(seed: u64, messages: usize) -> Self {
        CorpusProfile {
            seed,
            messages,
            attachment_per_mille: 80,
            attachment_max: 5 * MB,
            huge_every: Some(1000),
            huge_min: 20 * MB,
            huge_max: 24 * MB,
            max_message_bytes: None,
        }
    }

    /// A light mix for tests: the same structures, attachments up to 300 KB, no huge
    /// message. 500 messages are about 15 MB.
    pub fn small(seed: u64, messages: usize) -> Self {
        CorpusProfile {
            attachment_max: 300 * KB,
            huge_every: None,
            ..Self::realistic(seed, messages)
        }
    }

    /// Sets the number of messages.
    pub fn with_messages(mut self, messages: usize) -> Self {
        self.messages = messages;
        self
    }

    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// One 20 MB+ message per `every` messages (`None`: never).
    pub fn with_huge_every(mut self, every: Option<usize>) -> Self {
        self.huge_every = every.filter(|e| *e > 0);
        self
    }

    /// Caps every message at about `bytes` (attachments and bodies are shrunk to fit;
    /// structure is kept, so tiny caps still give a few KB).
    pub fn with_max_message_bytes(mut self, bytes: Option<u64>) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Largest total attachment size of an attachment message (default 5 MB).
    pub fn with_attachment_max(mut self, bytes: u64) -> Self {
        self.attachment_max = bytes.max(100 * KB);
        self
    }

    /// Share of messages with attachments, in ‰ (default 80).
    pub fn with_attachment_per_mille(mut self, per_mille: u32) -> Self {
        self.attachment_per_mille = per_mille.min(1000);
        self
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The number of messages.
    pub fn messages(&self) -> usize {
        self.messages
    }
}

/// The folders a corpus uses, parents first. Parents without messages are created too.
const FOLDERS: &[(&str, u32)] = &[
    ("INBOX", 35),
    ("Sent", 15),
    ("Drafts", 3),
    ("Trash", 6),
    ("Junk", 5),
    ("Archive", 0),
    ("Archive/2022", 6),
    ("Archive/2023", 10),
    ("Projects", 0),
    ("Projects/Alpha", 4),
    ("Projects/Alpha/Reports", 6),
    ("Projects/Beta", 4),
    ("Überweisungen", 0),
    ("Überweisungen/Août", 4),
    ("Kunden & Partner", 2),
];

/// Everything about a message except its bytes (cheap to compute).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageMeta {
    /// Position in the corpus (0-based).
    pub index: usize,
    /// Folder (UTF-8, `/`-separated).
    pub folder: String,
    /// Flags and keywords to APPEND with.
    pub flags: Vec<String>,
    /// INTERNALDATE to APPEND with.
    pub internal_date: ImapDate,
    /// The `Message-ID` header value, with angle brackets; unique in the corpus.
    pub message_id: String,
}

/// A generated message.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GeneratedMessage {
    /// Folder, flags, date, Message-ID.
    pub meta: MessageMeta,
    /// The RFC 5322 message (CRLF line endings).
    pub bytes: Vec<u8>,
}

impl fmt::Debug for GeneratedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedMessage")
            .field("meta", &self.meta)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// A deterministic corpus; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Corpus {
    profile: CorpusProfile,
}

impl Corpus {
    /// A corpus for `profile`.
    pub fn new(profile: CorpusProfile) -> Self {
        Corpus { profile }
    }

    /// The profile.
    pub fn profile(&self) -> &CorpusProfile {
        &self.profile
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.profile.messages
    }

    /// Whether the corpus has no messages.
    pub fn is_empty(&self) -> bool {
        self.profile.messages == 0
    }

    /// Every folder the corpus uses, parents first (INBOX first).
    pub fn folders(&self) -> Vec<String> {
        FOLDERS.iter().map(|(f, _)| (*f).to_owned()).collect()
    }

    /// Folder, flags, INTERNALDATE and Message-ID of message `index` (no body generated).
    pub fn meta(&self, index: usize) -> MessageMeta {
        let mut r = Rng::new(derive(self.profile.seed, index as u64, 1));
        let total: u32 = FOLDERS.iter().map(|(_, w)| w).sum();
        let mut pick = r.below(u64::from(total)) as u32;
        let mut folder = "INBOX";
        for (f, w) in FOLDERS {
            if pick < *w {
                folder = f;
                break;
            }
            pick -= w;
        }
        let flags = flags_for(folder, &mut r);
        let (lo, hi) = match folder {
            "Archive/2022" => (1_640_995_200, 1_672_531_199),
            "Archive/2023" => (1_672_531_200, 1_704_067_199),
            _ => (1_420_070_400, 1_767_225_599), // 2015 … 2025
        };
        let unix = r.range(lo, hi) as i64;
        const OFFSETS: [i16; 15] = [
            0, 60, 120, -300, -240, -480, -420, 330, 345, 540, 600, -180, -210, 780, 480,
        ];
        let offset = *r.pick(&OFFSETS);
        let internal_date =
            ImapDate::from_unix(unix, offset).unwrap_or_else(|| ImapDate::from_unix_utc(unix));
        MessageMeta {
            index,
            folder: folder.to_owned(),
            flags,
            internal_date,
            message_id: format!(
                "<corpus.{:016x}.{index:07}@{}>",
                self.profile.seed,
                DOMAINS[index % DOMAINS.len()]
            ),
        }
    }

    /// Generates message `index` (any index; no state is kept between calls).
    pub fn message(&self, index: usize) -> GeneratedMessage {
        let meta = self.meta(index);
        let bytes = Builder::new(&self.profile, &meta).build();
        GeneratedMessage { meta, bytes }
    }

    /// All messages in order, generated lazily.
    pub fn iter(&self) -> impl Iterator<Item = GeneratedMessage> + '_ {
        (0..self.len()).map(move |i| self.message(i))
    }

    /// Logs in to `dovecot` as `user` and loads the corpus over one connection (see
    /// [`Corpus::load_into`]). UIDs then follow corpus order within each folder.
    pub async fn load(&self, dovecot: &Dovecot, user: &str) -> Result<Manifest> {
        let mut client = dovecot.login(user).await?;
        let manifest = self.load_into(&mut client).await?;
        client.logout().await?;
        Ok(manifest)
    }

    /// Loads over `connections` parallel connections (each APPENDs pipelined into its
    /// SELECTed folder, taking chunks of up to 200 messages from a shared queue). Faster
    /// when the server is bound by fsync latency; UIDs within a folder then no longer
    /// follow corpus order (the manifest records each message's UID).
    pub async fn load_parallel(
        &self,
        dovecot: &Dovecot,
        user: &str,
        connections: usize,
    ) -> Result<Manifest> {
        let connections = connections.max(1);
        let password = dovecot
            .user(user)
            .ok_or_else(|| {
                Error::InvalidOption(format!(
                    "no user {user:?} in this Dovecot; configure it with DovecotOptions::with_user"
                ))
            })?
            .password()
            .to_owned();
        let mut first = dovecot.login(user).await?;
        self.create_folders(&mut first).await?;
        let metas: Vec<MessageMeta> = (0..self.len()).map(|i| self.meta(i)).collect();
        let mut queue = std::collections::VecDeque::new();
        for (folder, _) in FOLDERS {
            let idx: Vec<usize> = metas
                .iter()
                .filter(|m| m.folder == *folder)
                .map(|m| m.index)
                .collect();
            for chunk in idx.chunks(200) {
                queue.push_back(chunk.to_vec());
            }
        }
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        let metas = std::sync::Arc::new(metas);
        let mut clients = vec![first];
        for _ in 1..connections {
            let mut c = dovecot.connect_plain().await?;
            c.login(user, &password).await?;
            clients.push(c);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for mut client in clients {
            let queue = queue.clone();
            let metas = metas.clone();
            let profile = self.profile.clone();
            tasks.spawn(async move {
                let mut out = Vec::new();
                let mut selected: Option<String> = None;
                loop {
                    let next = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None);
                    let Some(chunk) = next else { break };
                    let Some(folder) = chunk
                        .first()
                        .and_then(|i| metas.get(*i))
                        .map(|m| m.folder.clone())
                    else {
                        continue;
                    };
                    if selected.as_deref() != Some(folder.as_str()) {
                        client.select(&folder).await?;
                        selected = Some(folder.clone());
                    }
                    out.extend(append_group(&mut client, &profile, &folder, &chunk, &metas).await?);
                }
                client.logout().await?;
                Ok::<_, Error>(out)
            });
        }
        let mut entries = Vec::with_capacity(self.len());
        while let Some(joined) = tasks.join_next().await {
            let part = joined.map_err(|e| {
                Error::protocol("loading the corpus", format!("a loader task failed: {e}"))
            })??;
            entries.extend(part);
        }
        self.finish(entries)
    }

    async fn create_folders(&self, client: &mut Client) -> Result<()> {
        for (folder, _) in FOLDERS {
            if *folder != "INBOX" {
                client.create_if_missing(folder).await?;
            }
        }
        Ok(())
    }

    fn finish(&self, mut entries: Vec<ManifestEntry>) -> Result<Manifest> {
        entries.sort_by_key(|e| e.index);
        let complete =
            entries.len() == self.len() && entries.iter().enumerate().all(|(i, e)| e.index == i);
        if !complete {
            return Err(Error::protocol(
                "loading the corpus",
                format!(
                    "{} of {} messages were recorded; this is a testkit bug",
                    entries.len(),
                    self.len()
                ),
            ));
        }
        Ok(Manifest {
            folders: self.folders(),
            entries,
        })
    }

    /// Creates the folders and APPENDs every message over an already logged-in
    /// connection: folder by folder, SELECTing the folder first and pipelining the
    /// APPENDs (LITERAL+). Returns the manifest.
    pub async fn load_into(&self, client: &mut Client) -> Result<Manifest> {
        let metas: Vec<MessageMeta> = (0..self.len()).map(|i| self.meta(i)).collect();
        self.create_folders(client).await?;
        let mut entries = Vec::with_capacity(self.len());
        for (folder, _) in FOLDERS {
            let indices: Vec<usize> = metas
                .iter()
                .filter(|m| m.folder == *folder)
                .map(|m| m.index)
                .collect();
            if indices.is_empty() {
                continue;
            }
            client.select(folder).await?;
            entries.extend(append_group(client, &self.profile, folder, &indices, &metas).await?);
        }
        client.raw("UNSELECT").await.ok();
        self.finish(entries)
    }
}

/// Generates each message of a group as it is needed, recording its manifest entry.
/// (A named iterator rather than a closure: closures held across `.await` in spawned
/// tasks trip rustc's higher-ranked lifetime inference.)
struct GroupRequests<'a> {
    profile: &'a CorpusProfile,
    metas: &'a [MessageMeta],
    indices: std::slice::Iter<'a, usize>,
    pending: &'a mut Vec<ManifestEntry>,
}

impl Iterator for GroupRequests<'_> {
    type Item = AppendRequest;

    fn next(&mut self) -> Option<AppendRequest> {
        let meta = loop {
            let i = *self.indices.next()?;
            if let Some(m) = self.metas.get(i) {
                break m;
            }
        };
        let bytes = Builder::new(self.profile, meta).build();
        let mut flags = meta.flags.clone();
        flags.sort();
        self.pending.push(ManifestEntry {
            index: meta.index,
            folder: meta.folder.clone(),
            uid: None,
            flags,
            internal_date: meta.internal_date,
            size: bytes.len() as u64,
            sha256: sha256(&bytes),
            message_id: meta.message_id.clone(),
        });
        Some(AppendRequest::new(
            bytes,
            meta.flags.clone(),
            Some(meta.internal_date),
        ))
    }
}

/// APPENDs `indices` (all in `folder`, which the client has SELECTed) pipelined.
async fn append_group(
    client: &mut Client,
    profile: &CorpusProfile,
    folder: &str,
    indices: &[usize],
    metas: &[MessageMeta],
) -> Result<Vec<ManifestEntry>> {
    let mut pending: Vec<ManifestEntry> = Vec::with_capacity(indices.len());
    let requests = GroupRequests {
        profile,
        metas,
        indices: indices.iter(),
        pending: &mut pending,
    };
    let uids = client.append_pipelined(folder, requests).await?;
    for (e, uid) in pending.iter_mut().zip(uids) {
        e.uid = uid;
    }
    Ok(pending)
}

fn flags_for(folder: &str, r: &mut Rng) -> Vec<String> {
    let mut f: Vec<&str> = Vec::new();
    let mut add = |cond: bool, flag: &'static str| {
        if cond {
            f.push(flag);
        }
    };
    match folder {
        "Sent" => {
            add(true, "\\Seen");
            add(r.chance(0.03), "\\Flagged");
        }
        "Drafts" => {
            add(true, "\\Draft");
            add(r.chance(0.5), "\\Seen");
        }
        "Trash" => add(r.chance(0.8), "\\Seen"),
        "Junk" => {
            add(r.chance(0.3), "\\Seen");
            add(r.chance(0.5), "$Junk");
        }
        _ => {
            add(r.chance(0.75), "\\Seen");
            add(r.chance(0.08), "\\Flagged");
            add(r.chance(0.15), "\\Answered");
            add(r.chance(0.05), "$Label1");
            add(r.chance(0.05), "Work");
            add(r.chance(0.03), "$Forwarded");
        }
    }
    f.into_iter().map(str::to_owned).collect()
}
