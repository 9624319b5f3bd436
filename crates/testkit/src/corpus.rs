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

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::client::{AppendRequest, Client};
use crate::date::ImapDate;
use crate::dovecot::Dovecot;
use crate::error::{Error, Result};
use crate::rng::{Rng, derive};

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

/// What [`Corpus::load`] put where, to verify against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    folders: Vec<String>,
    entries: Vec<ManifestEntry>,
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

fn hex(bytes: &[u8]) -> String {
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

// ---- message builder ----------------------------------------------------------------

const DOMAINS: [&str; 5] = [
    "example.org",
    "example.com",
    "mail.example.net",
    "beispiel.de",
    "exemple.fr",
];

const PEOPLE: [(&str, &str); 12] = [
    ("Alice Adams", "alice"),
    ("Bob Brown", "bob"),
    ("Jürgen Müller", "juergen.mueller"),
    ("Zoë Lefèvre", "zoe.lefevre"),
    ("Carol Chen", "carol"),
    ("Søren Østergaard", "soren"),
    ("María José García", "mj.garcia"),
    ("Dave O'Neil", "dave"),
    ("Łukasz Żółć", "lukasz"),
    ("Émilie Dubois", "emilie"),
    ("山田 太郎", "yamada"),
    ("Frank Fischer", "frank"),
];

const WORDS_ASCII: [&str; 40] = [
    "the",
    "project",
    "meeting",
    "report",
    "budget",
    "please",
    "review",
    "attached",
    "draft",
    "schedule",
    "invoice",
    "quarter",
    "results",
    "team",
    "update",
    "status",
    "next",
    "week",
    "thanks",
    "regards",
    "deadline",
    "customer",
    "contract",
    "proposal",
    "follow",
    "up",
    "agenda",
    "minutes",
    "call",
    "Monday",
    "Friday",
    "approve",
    "numbers",
    "plan",
    "risk",
    "migration",
    "mailbox",
    "server",
    "and",
    "with",
];

const WORDS_LATIN1: [&str; 16] = [
    "Grüße",
    "Besprechung",
    "Überweisung",
    "Rechnung",
    "Prüfung",
    "März",
    "août",
    "réunion",
    "échéance",
    "reçu",
    "señor",
    "año",
    "Straße",
    "Größe",
    "naïve",
    "café",
];

const WORDS_UNICODE: [&str; 8] = [
    "Zoë",
    "Łódź",
    "€100",
    "日本語",
    "Ελληνικά",
    "русский",
    "✓",
    "😀",
];

const SUBJECTS: [&str; 14] = [
    "Quarterly report",
    "Re: Budget 2024",
    "Meeting notes",
    "Invoice #",
    "Fwd: Contract draft",
    "Überweisung bestätigt",
    "Réunion de lundi",
    "Status update",
    "Projektplan für März",
    "Urgent: server migration",
    "Your order has shipped",
    "Photos from the trip",
    "Newsletter – Ausgabe",
    "日本語の件名",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Charset {
    Ascii,
    Utf8,
    Latin1,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cte {
    SevenBit,
    EightBit,
    QuotedPrintable,
    Base64,
}

struct Builder<'a> {
    profile: &'a CorpusProfile,
    meta: &'a MessageMeta,
    r: Rng,
    out: Vec<u8>,
    boundary_n: u32,
}

impl<'a> Builder<'a> {
    fn new(profile: &'a CorpusProfile, meta: &'a MessageMeta) -> Self {
        Builder {
            profile,
            meta,
            r: Rng::new(derive(profile.seed, meta.index as u64, 2)),
            out: Vec::new(),
            boundary_n: 0,
        }
    }

    fn cap(&self, n: u64) -> u64 {
        match self.profile.max_message_bytes {
            Some(c) => n.min(c.saturating_sub(2 * KB).max(KB)),
            None => n,
        }
    }

    fn build(mut self) -> Vec<u8> {
        let p = self.profile;
        let huge = p.huge_every.is_some_and(|every| {
            let block = self.meta.index / every;
            let chosen = derive(p.seed, block as u64, 3) % every as u64;
            self.meta.index % every == chosen as usize
        });
        let attach = !huge && self.r.below(1000) < u64::from(p.attachment_per_mille);
        let target = if huge {
            self.r.range(p.huge_min, p.huge_max)
        } else if attach {
            self.r.log_uniform(100 * KB, p.attachment_max)
        } else {
            self.r.log_uniform(2 * KB, 50 * KB)
        };
        let target = self.cap(target);
        let capacity = usize::try_from(target + 4 * KB).unwrap_or(usize::MAX);
        self.out.reserve(capacity);
        self.headers();
        if huge || attach {
            self.mixed(target);
        } else {
            match self.r.below(100) {
                0..=39 => self.text_leaf(target.saturating_sub(1200), false),
                40..=74 => self.alternative(target.saturating_sub(1500)),
                75..=89 => self.related(target.saturating_sub(1500)),
                _ => self.mixed(target),
            }
        }
        self.out
    }

    fn line(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn boundary(&mut self) -> String {
        self.boundary_n += 1;
        format!(
            "=_corpus_{}_{}_{:08x}",
            self.meta.index,
            self.boundary_n,
            self.r.next_u64() as u32
        )
    }

    fn person(&mut self) -> String {
        let (name, local) = *self.r.pick(&PEOPLE);
        let domain = *self.r.pick(&DOMAINS);
        let display = if name.is_ascii() {
            if name.contains('\'') {
                format!("\"{name}\"")
            } else {
                name.to_owned()
            }
        } else {
            encode_word(name, self.r.chance(0.5))
        };
        format!("{display} <{local}@{domain}>")
    }

    fn headers(&mut self) {
        let date = self.meta.internal_date;
        let sent = ImapDate::from_unix(
            date.unix_seconds() - self.r.range(0, 600) as i64,
            date.offset_minutes(),
        )
        .unwrap_or(date);
        let hops = self.r.range(1, 2);
        for h in 0..hops {
            let ip = self.r.range(1, 254);
            let id = self.r.next_u64() & 0xffff_ffff_ffff;
            let host = DOMAINS[(self.meta.index + h as usize) % DOMAINS.len()];
            self.line(&format!(
                "Received: from mx{n}.{host} (mx{n}.{host} [192.0.2.{ip}])",
                n = h + 1
            ));
            self.line(&format!("\tby imap.example.org with ESMTPS id {id:012x};"));
            self.line(&format!("\t{}", date.to_rfc5322()));
        }
        let me = format!("Mailbox Owner <owner@{}>", DOMAINS[0]);
        let (from, to) = if matches!(self.meta.folder.as_str(), "Sent" | "Drafts") {
            (me, self.person())
        } else {
            (self.person(), me)
        };
        self.line(&format!("From: {from}"));
        self.line(&format!("To: {to}"));
        if self.r.chance(0.3) {
            let cc = self.person();
            let cc2 = self.person();
            self.line(&format!("Cc: {cc},\r\n {cc2}"));
        }
        let subject = self.subject();
        self.line(&format!("Subject: {subject}"));
        self.line(&format!("Date: {}", sent.to_rfc5322()));
        self.line(&format!("Message-ID: {}", self.meta.message_id));
        if self.meta.flags.iter().any(|f| f == "\\Answered") || self.r.chance(0.2) {
            let parent = format!(
                "<parent.{:x}@{}>",
                self.r.next_u64(),
                DOMAINS[self.meta.index % DOMAINS.len()]
            );
            self.line(&format!("In-Reply-To: {parent}"));
            self.line(&format!("References: {parent}"));
        }
        if self.r.chance(0.1) {
            self.line("X-Priority: 1 (Highest)");
        }
        self.line(&format!("X-Corpus-Index: {}", self.meta.index));
        self.line("MIME-Version: 1.0");
    }

    fn subject(&mut self) -> String {
        let base = *self.r.pick(&SUBJECTS);
        let text = format!("{base} {}", self.r.range(1, 9999));
        if text.is_ascii() {
            if self.r.chance(0.1) {
                // A long subject, folded.
                return format!(
                    "{text} – long thread about {}\r\n {}",
                    self.words(6, Charset::Ascii),
                    self.words(8, Charset::Ascii)
                )
                .replace('–', "-");
            }
            text
        } else {
            match self.r.below(3) {
                0 => encode_word(&text, true),
                1 => encode_word(&text, false),
                _ => encode_latin1_word(&text).unwrap_or_else(|| encode_word(&text, true)),
            }
        }
    }

    fn words(&mut self, n: usize, cs: Charset) -> String {
        let mut s = String::new();
        for i in 0..n {
            if i > 0 {
                s.push(' ');
            }
            let roll = self.r.below(100);
            let w = match cs {
                Charset::Ascii => *self.r.pick(&WORDS_ASCII),
                Charset::Latin1 if roll < 20 => *self.r.pick(&WORDS_LATIN1),
                Charset::Utf8 if roll < 10 => *self.r.pick(&WORDS_LATIN1),
                Charset::Utf8 if roll < 15 => *self.r.pick(&WORDS_UNICODE),
                _ => *self.r.pick(&WORDS_ASCII),
            };
            s.push_str(w);
        }
        s
    }

    /// Paragraphs of text of about `len` bytes, lines ≤ 76 characters.
    fn text(&mut self, len: u64, cs: Charset) -> String {
        let mut s = String::with_capacity(len as usize + 100);
        let mut line_len = 0;
        let mut sentence_start = true;
        while (s.len() as u64) < len {
            let mut w = self.words(1, cs);
            if sentence_start {
                let mut c = w.chars();
                if let Some(f) = c.next() {
                    w = f.to_uppercase().chain(c).collect();
                }
                sentence_start = false;
            }
            if self.r.chance(0.1) {
                w.push('.');
                sentence_start = true;
            }
            if line_len + w.chars().count() > 72 {
                s.push_str("\r\n");
                line_len = 0;
                if self.r.chance(0.15) {
                    s.push_str("\r\n");
                }
            } else if line_len > 0 {
                s.push(' ');
                line_len += 1;
            }
            line_len += w.chars().count();
            s.push_str(&w);
        }
        s.push_str("\r\n");
        s
    }

    fn pick_text_encoding(&mut self) -> (Charset, Cte) {
        match self.r.below(10) {
            0..=3 => (Charset::Utf8, Cte::EightBit),
            4..=5 => (Charset::Utf8, Cte::QuotedPrintable),
            6 => (Charset::Latin1, Cte::EightBit),
            7 => (Charset::Latin1, Cte::QuotedPrintable),
            8 => (Charset::Utf8, Cte::Base64),
            _ => (Charset::Ascii, Cte::SevenBit),
        }
    }

    /// A text/plain (or text/html) leaf with headers.
    fn text_leaf(&mut self, len: u64, html: bool) {
        let (cs, cte) = self.pick_text_encoding();
        let mut body = self.text(len.max(200), cs);
        if html {
            body = format!(
                "<!DOCTYPE html>\r\n<html><head><meta charset=\"{}\"></head><body>\r\n<p>{}</p>\r\n</body></html>\r\n",
                charset_name(cs),
                body.replace("\r\n\r\n", "</p>\r\n<p>")
            );
        }
        self.leaf_from_text(
            &body,
            cs,
            cte,
            if html { "text/html" } else { "text/plain" },
        );
    }

    fn leaf_from_text(&mut self, body: &str, cs: Charset, cte: Cte, ctype: &str) {
        let bytes: Vec<u8> = match cs {
            Charset::Latin1 => body
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                .collect(),
            _ => body.as_bytes().to_vec(),
        };
        let flowed = ctype == "text/plain" && self.r.chance(0.2);
        self.line(&format!(
            "Content-Type: {ctype}; charset=\"{}\"{}",
            charset_name(cs),
            if flowed { "; format=flowed" } else { "" }
        ));
        let cte = if cs == Charset::Ascii {
            Cte::SevenBit
        } else {
            cte
        };
        self.line(&format!("Content-Transfer-Encoding: {}", cte_name(cte)));
        self.line("");
        match cte {
            Cte::SevenBit | Cte::EightBit => self.out.extend_from_slice(&bytes),
            Cte::QuotedPrintable => quoted_printable(&bytes, &mut self.out),
            Cte::Base64 => base64_lines(&bytes, &mut self.out),
        }
    }

    fn alternative(&mut self, len: u64) {
        let b = self.boundary();
        self.line(&format!(
            "Content-Type: multipart/alternative; boundary=\"{b}\""
        ));
        self.line("");
        self.line("This is a multi-part message in MIME format.");
        self.line(&format!("--{b}"));
        self.text_leaf(len / 2, false);
        self.line(&format!("--{b}"));
        self.text_leaf(len / 2, true);
        self.line(&format!("--{b}--"));
    }

    fn related(&mut self, len: u64) {
        let b = self.boundary();
        let images = self.r.range(1, 2);
        let img_len = (len / 3).clamp(KB, 40 * KB);
        let text_len = len.saturating_sub(img_len * images);
        self.line(&format!(
            "Content-Type: multipart/related; boundary=\"{b}\"; type=\"multipart/alternative\""
        ));
        self.line("");
        self.line(&format!("--{b}"));
        let cids: Vec<String> = (0..images)
            .map(|k| format!("img{k}.{}@corpus.example", self.meta.index))
            .collect();
        // multipart/alternative whose HTML references the images.
        let ab = self.boundary();
        self.line(&format!(
            "Content-Type: multipart/alternative; boundary=\"{ab}\""
        ));
        self.line("");
        self.line(&format!("--{ab}"));
        self.text_leaf(text_len / 2, false);
        self.line(&format!("--{ab}"));
        let (cs, cte) = self.pick_text_encoding();
        let text = self.text(text_len / 2, cs);
        let imgs: String = cids
            .iter()
            .map(|c| format!("<img src=\"cid:{c}\" alt=\"logo\">\r\n"))
            .collect();
        let html = format!(
            "<html><body>\r\n{imgs}<p>{}</p>\r\n</body></html>\r\n",
            text.replace("\r\n\r\n", "</p>\r\n<p>")
        );
        self.leaf_from_text(&html, cs, cte, "text/html");
        self.line(&format!("--{ab}--"));
        for (k, cid) in cids.iter().enumerate() {
            self.line(&format!("--{b}"));
            let png = self.binary(img_len, b"\x89PNG\r\n\x1a\n");
            self.line(&format!("Content-Type: image/png; name=\"image{k}.png\""));
            self.line("Content-Transfer-Encoding: base64");
            self.line(&format!("Content-ID: <{cid}>"));
            self.line(&format!(
                "Content-Disposition: inline; filename=\"image{k}.png\""
            ));
            self.line("");
            base64_lines(&png, &mut self.out);
        }
        self.line(&format!("--{b}--"));
    }

    fn binary(&mut self, len: u64, magic: &[u8]) -> Vec<u8> {
        let len = usize::try_from(len).unwrap_or(usize::MAX).max(magic.len());
        let mut v = vec![0u8; len];
        self.r.fill(&mut v);
        v[..magic.len()].copy_from_slice(magic);
        v
    }

    fn mixed(&mut self, target: u64) {
        let b = self.boundary();
        self.line(&format!("Content-Type: multipart/mixed; boundary=\"{b}\""));
        self.line("");
        self.line("This is a multi-part message in MIME format.");
        self.line(&format!("--{b}"));
        let text_len = self.r.log_uniform(500, 6 * KB).min(target / 4 + 200);
        if self.r.chance(0.5) {
            self.alternative(text_len);
        } else {
            self.text_leaf(text_len, false);
        }
        // Encoded size ≈ raw × 4/3 (+ CRLF per 76 chars): aim the raw total at that.
        let raw_total = target.saturating_sub(text_len + 2 * KB) * 3 / 4 * 76 / 78;
        let count = if target > 20 * MB {
            1
        } else {
            self.r.range(1, 3)
        };
        for k in 0..count {
            let share = if k + 1 == count {
                raw_total / count + raw_total % count
            } else {
                raw_total / count
            };
            self.line(&format!("--{b}"));
            self.attachment(share.max(64), k);
        }
        self.line(&format!("--{b}--"));
    }

    fn attachment(&mut self, raw_len: u64, k: u64) {
        const KINDS: [(&str, &str, &[u8]); 6] = [
            ("application/pdf", "pdf", b"%PDF-1.7\n"),
            ("image/jpeg", "jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF"),
            ("application/zip", "zip", b"PK\x03\x04"),
            (
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "docx",
                b"PK\x03\x04",
            ),
            ("application/octet-stream", "bin", b""),
            ("text/csv", "csv", b""),
        ];
        let (ctype, ext, magic) = *self.r.pick(&KINDS);
        let stems = [
            "Report",
            "Rechnung_März",
            "Résumé",
            "scan",
            "data",
            "Präsentation",
        ];
        let stem = *self.r.pick(&stems);
        let filename = format!("{stem}_{k}.{ext}");
        let data = if ctype == "text/csv" {
            let mut s = String::from("id;name;amount\r\n");
            let mut i = 0;
            while (s.len() as u64) < raw_len {
                i += 1;
                s.push_str(&format!(
                    "{i};{};{}\r\n",
                    self.words(1, Charset::Utf8),
                    self.r.below(100_000)
                ));
            }
            s.into_bytes()
        } else {
            self.binary(raw_len, magic)
        };
        if filename.is_ascii() {
            self.line(&format!("Content-Type: {ctype}; name=\"{filename}\""));
            self.line(&format!(
                "Content-Disposition: attachment; filename=\"{filename}\"; size={}",
                data.len()
            ));
        } else {
            // RFC 2047 in name= (what many clients send) and RFC 2231 in filename*.
            self.line(&format!(
                "Content-Type: {ctype};\r\n name=\"{}\"",
                encode_word(&filename, true)
            ));
            self.line(&format!(
                "Content-Disposition: attachment;\r\n filename*=UTF-8''{}",
                percent_encode(&filename)
            ));
        }
        self.line("Content-Transfer-Encoding: base64");
        self.line("");
        base64_lines(&data, &mut self.out);
    }
}

fn charset_name(cs: Charset) -> &'static str {
    match cs {
        Charset::Ascii => "us-ascii",
        Charset::Utf8 => "utf-8",
        Charset::Latin1 => "iso-8859-1",
    }
}

fn cte_name(cte: Cte) -> &'static str {
    match cte {
        Cte::SevenBit => "7bit",
        Cte::EightBit => "8bit",
        Cte::QuotedPrintable => "quoted-printable",
        Cte::Base64 => "base64",
    }
}

/// Base64 with CRLF every 76 characters.
fn base64_lines(data: &[u8], out: &mut Vec<u8>) {
    let engine = &base64::engine::general_purpose::STANDARD;
    let mut line = [0u8; 80];
    out.reserve(data.len() / 57 * 78 + 80);
    for chunk in data.chunks(57) {
        let n = engine.encode_slice(chunk, &mut line).unwrap_or(0);
        out.extend_from_slice(&line[..n]);
        out.extend_from_slice(b"\r\n");
    }
}

/// Quoted-printable (RFC 2045 6.7) of text with CRLF line breaks.
fn quoted_printable(data: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for (li, line) in data.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if li > 0 {
            out.extend_from_slice(b"\r\n");
        }
        let mut col = 0;
        for (i, &b) in line.iter().enumerate() {
            let last = i + 1 == line.len();
            let literal =
                (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let width = if literal { 1 } else { 3 };
            if col + width > 75 {
                out.extend_from_slice(b"=\r\n");
                col = 0;
            }
            if literal {
                out.push(b);
            } else {
                out.extend_from_slice(&[b'=', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
            col += width;
        }
    }
}

/// RFC 2047 encoded-words (UTF-8, B or Q), folded so each word stays ≤ 75 characters.
fn encode_word(text: &str, b_encoding: bool) -> String {
    let mut words = Vec::new();
    let mut chunk = String::new();
    let limit = if b_encoding { 45 } else { 20 };
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > limit {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| {
            if b_encoding {
                format!(
                    "=?UTF-8?B?{}?=",
                    base64::engine::general_purpose::STANDARD.encode(w.as_bytes())
                )
            } else {
                format!("=?UTF-8?Q?{}?=", q_encode(w.as_bytes()))
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n ")
}

/// RFC 2047 Q encoding in ISO-8859-1, or `None` when the text is not Latin-1.
fn encode_latin1_word(text: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = text
        .chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect();
    Some(format!("=?ISO-8859-1?Q?{}?=", q_encode(&bytes?)))
}

fn q_encode(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        match b {
            b' ' => s.push('_'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'!' | b'*' | b'+' | b'-' | b'/' => {
                s.push(b as char)
            }
            _ => s.push_str(&format!("={b:02X}")),
        }
    }
    s
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn deterministic_and_independent_of_order() {
        let c = Corpus::new(CorpusProfile::small(11, 50));
        let forward: Vec<Vec<u8>> = c.iter().map(|m| m.bytes).collect();
        let again = Corpus::new(CorpusProfile::small(11, 50));
        for i in (0..50).rev() {
            assert_eq!(again.message(i).bytes, forward[i], "message {i}");
        }
        let other = Corpus::new(CorpusProfile::small(12, 50));
        assert_ne!(other.message(0).bytes, forward[0]);
    }

    #[test]
    fn frozen_output() {
        // Guards against accidental changes of the generator: the corpus for a seed must not
        // change between releases (benchmarks and fixtures compare across versions).
        let c = Corpus::new(CorpusProfile::small(1, 3));
        let m = c.message(0);
        assert_eq!(
            m.meta.message_id,
            "<corpus.0000000000000001.0000000@example.org>"
        );
        let digests: Vec<String> = c
            .iter()
            .map(|m| hex(&sha256(&m.bytes))[..16].to_owned())
            .collect();
        assert_eq!(digests, FROZEN_DIGESTS.to_vec(), "generator output changed");
    }

    const FROZEN_DIGESTS: [&str; 3] = ["72f40d676dabdafe", "b78c00231dc415b2", "5275b59a1f5b8a54"];

    #[test]
    fn wire_format_crlf_line_length_unique_ids() {
        let c = Corpus::new(CorpusProfile::small(3, 300));
        let mut ids = HashSet::new();
        for m in c.iter() {
            let b = &m.bytes;
            for (i, w) in b.windows(2).enumerate() {
                assert!(
                    !(w[1] == b'\n' && w[0] != b'\r'),
                    "bare LF at {i} in #{}",
                    m.meta.index
                );
                assert!(
                    !(w[0] == b'\r' && w[1] != b'\n'),
                    "bare CR at {i} in #{}",
                    m.meta.index
                );
            }
            assert!(!b.contains(&0), "NUL in #{}", m.meta.index);
            assert!(
                b.split(|&x| x == b'\n').all(|l| l.len() <= 998),
                "long line in #{}",
                m.meta.index
            );
            assert!(
                ids.insert(m.meta.message_id.clone()),
                "duplicate Message-ID"
            );
            let hdr = String::from_utf8_lossy(b);
            assert!(hdr.contains(&format!("Message-ID: {}\r\n", m.meta.message_id)));
        }
    }

    #[test]
    fn covers_folders_flags_structures_and_sizes() {
        let c = Corpus::new(CorpusProfile::small(5, 500));
        let mut folders = HashSet::new();
        let mut flags = HashSet::new();
        let mut years = HashSet::new();
        let mut offsets = HashSet::new();
        let mut kinds = HashSet::new();
        let mut sizes = Vec::new();
        for m in c.iter() {
            folders.insert(m.meta.folder.clone());
            flags.extend(m.meta.flags.iter().cloned());
            let y = 1970 + m.meta.internal_date.unix_seconds() / 31_556_952;
            years.insert(y);
            offsets.insert(m.meta.internal_date.offset_minutes());
            if m.meta.folder == "Drafts" {
                assert!(m.meta.flags.iter().any(|f| f == "\\Draft"));
            }
            if m.meta.folder == "Archive/2023" {
                assert!(
                    m.meta.internal_date.to_imap().contains("-2023 ")
                        || m.meta.internal_date.to_imap().contains("-2024 ")
                        || m.meta.internal_date.to_imap().contains("-2022 ")
                );
            }
            let text = String::from_utf8_lossy(&m.bytes);
            for k in [
                "multipart/alternative",
                "multipart/related",
                "multipart/mixed",
                "Content-ID: <",
                "=?UTF-8?B?",
                "=?UTF-8?Q?",
                "=?ISO-8859-1?Q?",
                "Content-Transfer-Encoding: 8bit",
                "Content-Transfer-Encoding: quoted-printable",
                "Content-Transfer-Encoding: base64",
                "charset=\"iso-8859-1\"",
                "filename*=UTF-8''",
            ] {
                if text.contains(k) {
                    kinds.insert(k);
                }
            }
            sizes.push(m.bytes.len());
        }
        let want: HashSet<String> = c
            .folders()
            .into_iter()
            .filter(|f| !["Archive", "Projects", "Überweisungen"].contains(&f.as_str()))
            .collect();
        assert_eq!(folders, want);
        for f in [
            "\\Seen",
            "\\Flagged",
            "\\Answered",
            "\\Draft",
            "$Label1",
            "Work",
        ] {
            assert!(flags.contains(f), "flag {f} never used");
        }
        assert!(years.len() >= 8, "{years:?}");
        assert!(offsets.len() >= 10, "{offsets:?}");
        assert_eq!(kinds.len(), 12, "{kinds:?}");
        sizes.sort_unstable();
        let median = sizes[sizes.len() / 2];
        assert!((2_000..=50_000).contains(&median), "median {median}");
        assert!(sizes[0] >= 1_500, "smallest {}", sizes[0]);
        assert!(*sizes.last().unwrap_or(&0) > 100_000);
        assert!(*sizes.last().unwrap_or(&0) < 420_000);
    }

    #[test]
    fn huge_messages_one_per_block_and_cap() {
        let p = CorpusProfile::realistic(9, 2000);
        // Which indices are huge is decided per block of 1,000.
        let c = Corpus::new(p.clone().with_max_message_bytes(Some(64 * 1024)));
        for i in 0..40 {
            assert!(c.message(i).bytes.len() < 70 * 1024, "cap ignored for #{i}");
        }
        let mut huge = 0;
        let c = Corpus::new(p.clone().with_attachment_per_mille(0));
        for block in 0..2u64 {
            let chosen = (derive(9, block, 3) % 1000) as usize + block as usize * 1000;
            let m = c.message(chosen);
            assert!(
                m.bytes.len() > 20 * 1024 * 1024,
                "#{chosen} is {}",
                m.bytes.len()
            );
            huge += 1;
            assert!(c.message(chosen ^ 1).bytes.len() < 60 * 1024);
        }
        assert_eq!(huge, 2);
        let no_huge = Corpus::new(p.with_huge_every(None).with_attachment_per_mille(0));
        let chosen = (derive(9, 0, 3) % 1000) as usize;
        assert!(no_huge.message(chosen).bytes.len() < 60 * 1024);
    }

    #[test]
    fn messages_parse_as_mime() {
        let c = Corpus::new(CorpusProfile::small(21, 120));
        let mut non_ascii_subjects = 0;
        let mut attachments = 0;
        for m in c.iter() {
            let parsed = mail_parser::MessageParser::default()
                .parse(&m.bytes)
                .unwrap_or_else(|| panic!("#{} does not parse", m.meta.index));
            let subject = parsed.subject().unwrap_or_default();
            assert!(!subject.contains("=?"), "undecoded subject {subject:?}");
            if !subject.is_ascii() {
                non_ascii_subjects += 1;
            }
            assert_eq!(
                parsed.message_id().map(|id| format!("<{id}>")),
                Some(m.meta.message_id.clone())
            );
            for a in parsed.attachments() {
                attachments += 1;
                assert!(!a.contents().is_empty());
            }
            assert!(parsed.body_text(0).is_some() || parsed.body_html(0).is_some());
        }
        assert!(non_ascii_subjects > 5);
        assert!(attachments > 5);
    }

    #[test]
    fn qp_and_encoded_words() {
        let mut out = Vec::new();
        quoted_printable("Grüße = 100 €  \r\nx".as_bytes(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Gr=C3=BC=C3=9Fe =3D 100 =E2=82=AC =20\r\nx"
        );
        assert_eq!(encode_word("Zoë", true), "=?UTF-8?B?Wm/Dqw==?=");
        assert_eq!(encode_word("a b", false), "=?UTF-8?Q?a_b?=");
        assert_eq!(
            encode_latin1_word("Müller").as_deref(),
            Some("=?ISO-8859-1?Q?M=FCller?=")
        );
        assert_eq!(percent_encode("Résumé_0.pdf"), "R%C3%A9sum%C3%A9_0.pdf");
    }
}
