//! EML / Maildir export: every message as a file in a folder tree on disk — for dry runs,
//! backups, and items too large for the real target.
//!
//! # Layout (chosen: Maildir naming, no sidecar)
//!
//! ```text
//! <root>/<mailbox>/<folder>/<subfolder>/{cur,new,tmp}/<key>,S=<size>:2,<flags>
//! ```
//!
//! * Each folder is a Maildir (`cur/`, `new/`, `tmp/`), nested as plain directories, so
//!   Maildir readers (mutt, Dovecot with `LAYOUT=fs`, `mblaze`) open a folder directly; every
//!   file is the raw RFC 5322 message, byte for byte (rename it to `.eml` to open it in a mail
//!   client).
//! * `<key>` is `o365m-` + the first 32 hex digits of SHA-256 of the item's fingerprint: the
//!   same message always gets the same name, so a second export finds it and writes nothing
//!   ([`WriteOutcome::AlreadyPresent`]). Another message with the same fingerprint (same
//!   Message-ID) is treated as the same message, as on every target.
//! * Flags: the Maildir info suffix `:2,` + `D` (draft), `F` (flagged), `R` (answered),
//!   `S` (seen), `T` (deleted), sorted. Keywords: lower-case letters `a`–`z` indexing the
//!   folder's `dovecot-keywords` file (`<n> <keyword>` per line), as Dovecot does; a folder
//!   holds at most 26 distinct keywords, further ones are dropped with a note on the item.
//! * Received date (INTERNALDATE): the file's modification time, as Maildir readers expect.
//!   Only the instant is kept, not the original UTC offset.
//! * Atomic writes: the bytes go to `tmp/`, are fsynced, get their mtime, and are renamed into
//!   `cur/`; then `cur/` is fsynced. A crash leaves at most a file in `tmp/`, never a partial
//!   message in `cur/`.
//! * Names on disk are sanitised: `/`, `\`, control characters and `<>:"|?*` become `_`, `.` and
//!   `..` and Windows device names (`CON`, `NUL`, `COM1`, ...) get a `_` prefix, trailing dots and
//!   spaces are dropped, names are cut at 200 bytes; every path is checked to stay below the
//!   root. Changes are reported as folder notes.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};

use tokio::sync::Mutex;

use bytes::Bytes;

use crate::Error;
use crate::writer::{
    BoxFuture, Capabilities, FolderBase, FolderHandle, FolderSpec, MailboxWriter, Target,
    TargetItem, WellKnownFolder, WriteItem, WriteOutcome,
};

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The directory name a well-known folder gets.
fn well_known_dir(k: WellKnownFolder) -> &'static str {
    match k {
        WellKnownFolder::Inbox => "Inbox",
        WellKnownFolder::SentItems => "Sent Items",
        WellKnownFolder::DeletedItems => "Deleted Items",
        WellKnownFolder::JunkEmail => "Junk Email",
        WellKnownFolder::Drafts => "Drafts",
        WellKnownFolder::Archive => "Archive",
    }
}

const DEVICE_NAMES: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Maildir sub-directories; a folder named like one of them would be mistaken for it.
const MAILDIR_PARTS: [&str; 3] = ["cur", "new", "tmp"];

/// A folder or mailbox name made safe as one path component (never empty, never `.`/`..`,
/// no separators). Public so callers can predict directory names.
pub fn sanitize_component(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| match c {
            '/' | '\\' | '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    while s.ends_with('.') || s.ends_with(' ') {
        s.pop();
    }
    let s = s.trim_start().to_string();
    let mut s = if s.is_empty() { "_".to_string() } else { s };
    let stem = s.split('.').next().unwrap_or_default().to_ascii_uppercase();
    if DEVICE_NAMES.contains(&stem.as_str())
        || MAILDIR_PARTS.contains(&s.as_str())
        || s.starts_with('.')
    {
        s.insert(0, '_');
    }
    if s.len() > 200 {
        let mut cut = 200;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Maildir flag letters for `item`, plus keywords as letters of the folder's keyword table.
fn maildir_flags(item: &WriteItem, keyword_letters: &[char]) -> String {
    let f = &item.flags;
    let mut v: Vec<char> = [
        (f.draft, 'D'),
        (f.flagged, 'F'),
        (f.answered, 'R'),
        (f.seen, 'S'),
        (f.deleted, 'T'),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, c)| *c)
    .chain(keyword_letters.iter().copied())
    .collect();
    v.sort_unstable();
    v.dedup();
    v.into_iter().collect()
}

fn key_for(fingerprint: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(fingerprint.as_bytes());
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("o365m-{}", &hex[..32])
}

/// The unique part of a Maildir file name (before `,S=` / `:2,`).
fn unique_part(file_name: &str) -> &str {
    let end = file_name.find([',', ':']).unwrap_or(file_name.len());
    &file_name[..end]
}

fn fsync_dir(dir: &Path) -> Result<(), Error> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

/// Exports into a directory tree on disk.
#[derive(Debug, Clone)]
pub struct EmlTarget {
    root: PathBuf,
}

impl EmlTarget {
    /// Exports below `root` (created when missing).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Opens the writer for `mailbox` (directory `<root>/<sanitised mailbox>`).
    pub async fn open(&self, mailbox: &str) -> Result<Arc<EmlMailboxWriter>, Error> {
        let dir = self.root.join(sanitize_component(mailbox));
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io_err(&dir, e))?;
        Ok(Arc::new(EmlMailboxWriter {
            mailbox: mailbox.to_string(),
            dir,
            folders: Mutex::new(HashMap::new()),
        }))
    }
}

impl Target for EmlTarget {
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::keeps_state("eml");
        c.keeps_raw_bytes = true;
        c
    }

    fn check(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            tokio::fs::create_dir_all(&self.root)
                .await
                .map_err(|e| io_err(&self.root, e))?;
            let probe = self.root.join(".o365m-write-check");
            tokio::fs::write(&probe, b"ok")
                .await
                .map_err(|e| io_err(&probe, e))?;
            tokio::fs::remove_file(&probe)
                .await
                .map_err(|e| io_err(&probe, e))
        })
    }

    fn open_mailbox<'a>(
        &'a self,
        mailbox: &'a str,
    ) -> BoxFuture<'a, Result<Arc<dyn MailboxWriter>, Error>> {
        Box::pin(async move {
            let w: Arc<dyn MailboxWriter> = self.open(mailbox).await?;
            Ok(w)
        })
    }
}

/// One folder's state: the keys present and the keyword table.
#[derive(Debug, Default)]
struct FolderState {
    keys: HashMap<String, String>,
    keywords: Vec<String>,
}

/// Writes one mailbox's folders on disk.
#[derive(Debug)]
pub struct EmlMailboxWriter {
    mailbox: String,
    dir: PathBuf,
    folders: Mutex<HashMap<PathBuf, Arc<StdMutex<Option<FolderState>>>>>,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl EmlMailboxWriter {
    /// The mailbox's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn folder_dir(&self, handle: &FolderHandle) -> Result<PathBuf, Error> {
        // target_id is relative to the mailbox directory and was built from sanitised
        // components; check again, the handle may come from elsewhere.
        let rel = Path::new(&handle.target_id);
        let safe = rel
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !safe || handle.target_id.is_empty() {
            return Err(Error::Folder {
                mailbox: self.mailbox.clone(),
                path: handle.display_path.clone(),
                reason: format!(
                    "{:?} is not a relative path below the mailbox",
                    handle.target_id
                ),
            });
        }
        Ok(self.dir.join(rel))
    }

    /// The folder directory of `spec`, created when `create`; `None` when it does not exist
    /// and `create` is false.
    fn ensure_one(&self, spec: &FolderSpec, create: bool) -> Result<Option<FolderHandle>, Error> {
        let mut notes = Vec::new();
        let mut parts: Vec<String> = Vec::new();
        if let FolderBase::WellKnown(k) = &spec.base {
            parts.push(well_known_dir(*k).to_string());
        }
        for seg in &spec.path {
            let clean = sanitize_component(seg);
            if clean != *seg {
                notes.push(format!(
                    "{seg:?} written as {clean:?} (not allowed in file names)"
                ));
            }
            parts.push(clean);
        }
        if parts.is_empty() {
            return Err(Error::Folder {
                mailbox: self.mailbox.clone(),
                path: spec.display_path(),
                reason: "the plan names no folder".into(),
            });
        }
        let rel: PathBuf = parts.iter().collect();
        let dir = self.dir.join(&rel);
        let created = !dir.join("cur").is_dir();
        if created && !create {
            return Ok(None);
        }
        for sub in MAILDIR_PARTS {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| io_err(&p, e))?;
        }
        Ok(Some(FolderHandle {
            source: spec.source.clone(),
            target_id: rel.to_string_lossy().into_owned(),
            display_path: parts.join("/"),
            created,
            notes,
        }))
    }

    fn load_state(dir: &Path) -> Result<FolderState, Error> {
        let mut st = FolderState::default();
        let kw = dir.join("dovecot-keywords");
        match std::fs::read_to_string(&kw) {
            Ok(text) => {
                for line in text.lines() {
                    if let Some((_, word)) = line.split_once(' ') {
                        st.keywords.push(word.to_string());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&kw, e)),
        }
        for sub in ["cur", "new"] {
            let d = dir.join(sub);
            let rd = match std::fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&d, e)),
            };
            for entry in rd {
                let entry = entry.map_err(|e| io_err(&d, e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                st.keys
                    .insert(unique_part(&name).to_string(), format!("{sub}/{name}"));
            }
        }
        Ok(st)
    }

    /// Letters for the item's keywords, extending the folder's table (rewritten atomically).
    fn keyword_letters(
        dir: &Path,
        st: &mut FolderState,
        keywords: &[String],
        notes: &mut Vec<String>,
    ) -> Result<Vec<char>, Error> {
        let mut letters = Vec::new();
        let mut changed = false;
        for k in keywords {
            let idx = match st.keywords.iter().position(|w| w == k) {
                Some(i) => i,
                None if st.keywords.len() < 26 && !k.contains(['\n', '\r', ' ']) => {
                    st.keywords.push(k.clone());
                    changed = true;
                    st.keywords.len() - 1
                }
                None => {
                    notes.push(format!("keyword {k:?} not kept (26 per folder at most)"));
                    continue;
                }
            };
            letters.push(char::from(b'a' + idx as u8));
        }
        if changed {
            let text: String = st
                .keywords
                .iter()
                .enumerate()
                .map(|(i, w)| format!("{i} {w}\n"))
                .collect();
            write_atomic(
                &dir.join("dovecot-keywords"),
                &dir.join("tmp"),
                text.as_bytes(),
                None,
            )?;
        }
        Ok(letters)
    }

    fn write_blocking(
        dir: &Path,
        state: &StdMutex<Option<FolderState>>,
        item: &WriteItem,
    ) -> Result<WriteOutcome, Error> {
        let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = Some(Self::load_state(dir)?);
        }
        let Some(st) = guard.as_mut() else {
            return Err(Error::Protocol {
                context: "eml".into(),
                message: "folder state missing".into(),
            });
        };
        let key = key_for(&item.fingerprint);
        if let Some(existing) = st.keys.get(&key) {
            return Ok(WriteOutcome::AlreadyPresent {
                target_id: existing.clone(),
            });
        }
        let mut notes = Vec::new();
        let letters = Self::keyword_letters(dir, st, &item.flags.keywords, &mut notes)?;
        let name = format!(
            "{key},S={}:2,{}",
            item.raw.len(),
            maildir_flags(item, &letters)
        );
        let mtime = item.internal_date.map(|t| {
            let secs = t.unix_seconds();
            if secs >= 0 {
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.unsigned_abs())
            } else {
                std::time::UNIX_EPOCH - std::time::Duration::from_secs(secs.unsigned_abs())
            }
        });
        let dest = dir.join("cur").join(&name);
        write_atomic(&dest, &dir.join("tmp"), &item.raw, mtime)?;
        let id = format!("cur/{name}");
        st.keys.insert(key, id.clone());
        Ok(WriteOutcome::Written {
            target_id: id,
            notes,
        })
    }

    async fn state_for(&self, dir: &Path) -> Arc<StdMutex<Option<FolderState>>> {
        self.folders
            .lock()
            .await
            .entry(dir.to_path_buf())
            .or_default()
            .clone()
    }

    fn read_items(dir: &Path) -> Result<Vec<TargetItem>, Error> {
        let keywords = Self::load_state(dir)?.keywords;
        let mut out = Vec::new();
        for sub in ["cur", "new"] {
            let d = dir.join(sub);
            let rd = match std::fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&d, e)),
            };
            for entry in rd {
                let entry = entry.map_err(|e| io_err(&d, e))?;
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                let raw = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
                let meta = entry.metadata().map_err(|e| io_err(&path, e))?;
                let flags = name.split_once(":2,").map(|(_, f)| f).unwrap_or_default();
                let header_end = raw
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .map(|p| p + 4)
                    .unwrap_or(raw.len());
                let id = o365_migrate_mime::fingerprint(&raw);
                let norm = o365_migrate_mime::normalize(&raw[..header_end]).value;
                let received = meta.modified().ok().and_then(|t| {
                    let secs = match t.duration_since(std::time::UNIX_EPOCH) {
                        Ok(d) => d.as_secs() as i64,
                        Err(e) => -(e.duration().as_secs() as i64),
                    };
                    o365_migrate_mime::InternalDate::from_unix_utc(secs)
                });
                out.push(TargetItem {
                    id: format!("{sub}/{name}"),
                    internet_message_id: id.message_id.clone(),
                    // The bytes are read anyway: the content-aware item key, so verify compares
                    // content, not only the Message-ID.
                    fingerprint: Some(o365_migrate_mime::item_key(&raw, &id)),
                    subject: norm.subject,
                    from: norm.from.first().and_then(|f| f.address.clone()),
                    received,
                    is_draft: flags.contains('D'),
                    is_read: flags.contains('S'),
                    flagged: flags.contains('F'),
                    answered: flags.contains('R'),
                    keywords: flags
                        .chars()
                        .filter(|c| c.is_ascii_lowercase())
                        .filter_map(|c| keywords.get(usize::from(c as u8 - b'a')).cloned())
                        .collect(),
                    size: Some(meta.len()),
                });
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

/// Writes `data` to `dest` atomically: a temp file in `tmp_dir`, fsync, mtime, rename, fsync
/// of the destination directory.
fn write_atomic(
    dest: &Path,
    tmp_dir: &Path,
    data: &[u8],
    mtime: Option<std::time::SystemTime>,
) -> Result<(), Error> {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = tmp_dir.join(format!("{nanos}.P{}Q{n}.o365m", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        f.write_all(data).map_err(|e| io_err(&tmp, e))?;
        f.sync_all().map_err(|e| io_err(&tmp, e))?;
        if let Some(t) = mtime {
            f.set_modified(t).map_err(|e| io_err(&tmp, e))?;
        }
        drop(f);
        std::fs::rename(&tmp, dest).map_err(|e| io_err(dest, e))?;
        if let Some(parent) = dest.parent() {
            fsync_dir(parent)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

impl MailboxWriter for EmlMailboxWriter {
    fn mailbox(&self) -> &str {
        &self.mailbox
    }

    fn ensure_folders<'a>(
        &'a self,
        plan: &'a [FolderSpec],
    ) -> BoxFuture<'a, Result<Vec<FolderHandle>, Error>> {
        Box::pin(async move {
            plan.iter()
                .map(|spec| {
                    self.ensure_one(spec, true)?.ok_or_else(|| Error::Folder {
                        mailbox: self.mailbox.clone(),
                        path: spec.display_path(),
                        reason: "not created".into(),
                    })
                })
                .collect()
        })
    }

    fn find_folders<'a>(
        &'a self,
        plan: &'a [FolderSpec],
    ) -> BoxFuture<'a, Result<Vec<Option<FolderHandle>>, Error>> {
        Box::pin(async move {
            plan.iter()
                .map(|spec| self.ensure_one(spec, false))
                .collect()
        })
    }

    fn write<'a>(
        &'a self,
        folder: &'a FolderHandle,
        item: &'a WriteItem,
    ) -> BoxFuture<'a, Result<WriteOutcome, Error>> {
        Box::pin(async move {
            let dir = self.folder_dir(folder)?;
            let state = self.state_for(&dir).await;
            let item = item.clone();
            tokio::task::spawn_blocking(move || Self::write_blocking(&dir, &state, &item))
                .await
                .map_err(|e| Error::Transport(format!("export task failed: {e}")))?
        })
    }

    fn count<'a>(&'a self, folder: &'a FolderHandle) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(async move {
            let dir = self.folder_dir(folder)?;
            tokio::task::spawn_blocking(move || Self::load_state(&dir).map(|s| s.keys.len() as u64))
                .await
                .map_err(|e| Error::Transport(format!("export task failed: {e}")))?
        })
    }

    fn list<'a>(
        &'a self,
        folder: &'a FolderHandle,
    ) -> BoxFuture<'a, Result<Vec<TargetItem>, Error>> {
        Box::pin(async move {
            let dir = self.folder_dir(folder)?;
            tokio::task::spawn_blocking(move || Self::read_items(&dir))
                .await
                .map_err(|e| Error::Transport(format!("export task failed: {e}")))?
        })
    }

    fn read_raw<'a>(
        &'a self,
        folder: &'a FolderHandle,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Bytes>, Error>> {
        Box::pin(async move {
            let dir = self.folder_dir(folder)?;
            let rel = Path::new(id);
            // `id` is `cur/<name>` or `new/<name>` as `list` gave it.
            let safe = rel.components().count() == 2
                && rel
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !safe {
                return Ok(None);
            }
            let path = dir.join(rel);
            match std::fs::read(&path) {
                Ok(b) => Ok(Some(Bytes::from(b))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_err(&path, e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_path_components() {
        for (input, expected) in [
            ("..", "_"),
            (".", "_"),
            ("../../etc", "_.._.._etc"),
            ("a/b\\c", "a_b_c"),
            ("Kunden & Partner", "Kunden & Partner"),
            ("Überweisungen", "Überweisungen"),
            ("CON", "_CON"),
            ("nul.txt", "_nul.txt"),
            ("cur", "_cur"),
            ("what?*<>|\":", "what_______"),
            ("trailing. ", "trailing"),
            ("", "_"),
            ("tab\there", "tab_here"),
            (".hidden", "_.hidden"),
        ] {
            assert_eq!(sanitize_component(input), expected, "{input:?}");
        }
        let long = "ü".repeat(300);
        let s = sanitize_component(&long);
        assert!(s.len() <= 200 && s.chars().all(|c| c == 'ü'));
    }

    #[test]
    fn unique_part_and_flags() {
        assert_eq!(unique_part("o365m-ab,S=12:2,FS"), "o365m-ab");
        assert_eq!(unique_part("1234.M1P2.host:2,"), "1234.M1P2.host");
        let item = WriteItem {
            raw: bytes::Bytes::from_static(b"x"),
            flags: o365_migrate_mime::Flags {
                seen: true,
                flagged: true,
                answered: true,
                ..Default::default()
            },
            internal_date: None,
            fingerprint: "mid:<a@b>".into(),
            internet_message_id: None,
        };
        assert_eq!(maildir_flags(&item, &['b', 'a']), "FRSab");
        assert_eq!(key_for("mid:<a@b>"), key_for("mid:<a@b>"));
        assert_ne!(key_for("mid:<a@b>"), key_for("mid:<a@c>"));
    }
}
