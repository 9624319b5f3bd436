//! [`ImapMailboxWriter`]: folders, dedupe cache, grouped pipelined APPEND over a connection pool.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use o365_migrate_imap::{
    AppendMessage, AppendUid, FetchItems, FetchOptions, SearchKey, Session, StatusItem, StoreMode,
    UidSet,
};
use tokio::sync::{Mutex, Semaphore, oneshot};

use super::ImapTargetConfig;
use super::folders::{FolderTree, Reserved};
use crate::Error;
use crate::dedupe::{FolderIndex, write_once};
use crate::writer::{
    BoxFuture, FolderHandle, FolderSpec, MailboxWriter, TargetItem, WriteItem, WriteOutcome,
};
use o365_migrate_mime::Flags;

/// Header fields fetched for the dedupe cache and for verify: everything the fingerprint needs.
const INDEX_FIELDS: [&str; 5] = ["MESSAGE-ID", "DATE", "FROM", "SUBJECT", "RECEIVED"];

/// Maps an IMAP client error onto this crate's error.
pub(crate) fn map_err(e: o365_migrate_imap::Error, operation: &str, context: &str) -> Error {
    use o365_migrate_imap::Error as E;
    match e {
        E::LoginFailed { user, text } => Error::MailboxUnavailable {
            mailbox: user,
            reason: format!("login failed: {text}"),
            hint: Some("check the login and password (or the admin user); for Exchange Online check IMAP.AccessAsApp, the Exchange service principal and FullAccess on the mailbox".into()),
        },
        E::Tls { host, message } => Error::Config(format!("TLS with {host}: {message}")),
        E::AppendTooLarge { size, limit } => Error::TooLarge { size, limit },
        E::No {
            command,
            code,
            text,
        } => Error::Refused {
            operation: command,
            context: context.to_string(),
            code: code.unwrap_or_else(|| "NO".into()),
            message: text,
        },
        E::Bad { command, text } => Error::Refused {
            operation: command,
            context: context.to_string(),
            code: "BAD".into(),
            message: text,
        },
        E::Protocol { message, snippet } => Error::Protocol {
            context: format!("IMAP {operation} {context}"),
            message: format!("{message} (near {snippet:?})"),
        },
        other => Error::Transport(format!("IMAP {operation} {context}: {other}")),
    }
}

/// The APPEND flags of `item`; keywords that are not IMAP atoms cannot be sent and are named in
/// `notes` (never dropped silently).
fn append_flags(item: &WriteItem, notes: &mut Vec<String>) -> Vec<String> {
    let (atoms, rejected) = item.flags.to_imap();
    for k in rejected.iter().filter(|k| *k != "\\Recent") {
        notes.push(format!(
            "keyword {k:?} is not a valid IMAP keyword and was not kept"
        ));
    }
    atoms
}

struct Conn {
    session: Session,
    selected: Option<String>,
    /// UIDVALIDITY of the selected mailbox, when the SELECT that chose it was read here.
    selected_uv: Option<u32>,
}

/// What an APPEND group hands back per message.
type AppendReply = Result<(String, Option<AppendUid>), Error>;

struct Pending {
    message: AppendMessage,
    flagged: bool,
    reply: oneshot::Sender<AppendReply>,
}

impl Pending {
    /// Drops the body first, then answers: the caller releases the body's share of the
    /// in-flight byte budget when it gets the answer, so the body must be gone by then (the
    /// 25 MB-message RSS run saw two bodies alive at once otherwise).
    fn answer(self, r: AppendReply) {
        let Pending { message, reply, .. } = self;
        drop(message);
        let _ = reply.send(r);
    }
}

/// Writes into one mailbox on an IMAP server. Shared between tasks.
pub struct ImapMailboxWriter {
    config: Arc<ImapTargetConfig>,
    mailbox: String,
    auth: o365_migrate_imap::Auth,
    permits: Semaphore,
    idle: StdMutex<Vec<Conn>>,
    tree: Mutex<Option<FolderTree>>,
    indexes: StdMutex<HashMap<String, Arc<FolderIndex>>>,
    queues: StdMutex<HashMap<String, VecDeque<Pending>>>,
    append_limit: Option<u64>,
    /// The mailbox's throttle state: until when no APPEND may be sent on any connection
    /// (set from Exchange Online's "Suggested Backoff Time"), and what throttling did.
    pause: StdMutex<Pause>,
}

/// The per-mailbox throttle state of [`ImapMailboxWriter`].
#[derive(Debug, Default)]
struct Pause {
    until: Option<Instant>,
    stats: crate::writer::ThrottleStats,
}

impl std::fmt::Debug for ImapMailboxWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapMailboxWriter")
            .field("mailbox", &self.mailbox)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl ImapMailboxWriter {
    pub(crate) async fn open(
        config: Arc<ImapTargetConfig>,
        mailbox: &str,
    ) -> Result<Arc<Self>, Error> {
        let auth = config.login.auth_for(mailbox)?;
        let session = Session::open(&config.client, &auth)
            .await
            .map_err(|e| map_err(e, "login", mailbox))?;
        let append_limit = session.append_limit();
        let n = config.connections_per_mailbox.max(1);
        Ok(Arc::new(Self {
            mailbox: mailbox.to_string(),
            auth,
            permits: Semaphore::new(n),
            idle: StdMutex::new(vec![Conn {
                session,
                selected: None,
                selected_uv: None,
            }]),
            tree: Mutex::new(None),
            indexes: StdMutex::new(HashMap::new()),
            queues: StdMutex::new(HashMap::new()),
            append_limit,
            pause: StdMutex::new(Pause::default()),
            config,
        }))
    }

    /// The server's APPENDLIMIT, if it advertised one.
    pub fn append_limit(&self) -> Option<u64> {
        self.append_limit
    }

    fn limit(&self) -> Option<u64> {
        match (self.append_limit, self.config.max_message_bytes) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, Error> {
        self.permits
            .acquire()
            .await
            .map_err(|_| Error::Transport("connection pool closed".into()))
    }

    async fn connect(&self) -> Result<Conn, Error> {
        let session = Session::open(&self.config.client, &self.auth)
            .await
            .map_err(|e| map_err(e, "login", &self.mailbox))?;
        Ok(Conn {
            session,
            selected: None,
            selected_uv: None,
        })
    }

    /// A pooled connection (the caller holds a permit).
    async fn checkout(&self) -> Result<Conn, Error> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(c) => Ok(c),
            None => self.connect().await,
        }
    }

    fn checkin(&self, conn: Conn) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
    }

    async fn select(&self, conn: &mut Conn, folder: &str) -> Result<(), Error> {
        if conn.selected.as_deref() != Some(folder) {
            conn.selected = None;
            let sel = conn
                .session
                .select(folder)
                .await
                .map_err(|e| map_err(e, "SELECT", folder))?;
            conn.selected = Some(folder.to_string());
            conn.selected_uv = sel.uid_validity;
        }
        Ok(())
    }

    /// Runs `f` on a pooled connection; a connection that failed is dropped, not returned to
    /// the pool.
    async fn with_conn<T>(
        &self,
        f: impl AsyncFnOnce(&mut Conn) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let _permit = self.permit().await?;
        let mut conn = self.checkout().await?;
        let r = f(&mut conn).await;
        if r.is_ok() {
            self.checkin(conn);
        }
        r
    }

    async fn tree<'a>(
        &self,
        guard: &'a mut Option<FolderTree>,
    ) -> Result<&'a mut FolderTree, Error> {
        if guard.is_none() {
            let _permit = self.permit().await?;
            let mut conn = self.checkout().await?;
            let s = &mut conn.session;
            let ctx = &self.mailbox;
            let list = s
                .list_mailboxes(false)
                .await
                .map_err(|e| map_err(e, "LIST", ctx))?;
            let delimiter = s.delimiter().await.map_err(|e| map_err(e, "LIST", ctx))?;
            let prefix = s
                .namespace()
                .await
                .map_err(|e| map_err(e, "NAMESPACE", ctx))?
                .and_then(|n| n.personal.into_iter().next())
                .map(|p| p.prefix);
            self.checkin(conn);
            let c = &self.config;
            *guard = Some(FolderTree::new(
                &list,
                delimiter,
                prefix,
                c.profile == super::ImapProfile::ExchangeOnline,
                c.reserved_folders
                    .iter()
                    .map(|(name, rename_to)| Reserved {
                        name: name.clone(),
                        rename_to: rename_to.clone(),
                    })
                    .collect(),
            ));
        }
        guard.as_mut().ok_or_else(|| Error::Protocol {
            context: "LIST".into(),
            message: "folder list missing".into(),
        })
    }

    async fn ensure_one(
        &self,
        tree: &mut FolderTree,
        spec: &FolderSpec,
    ) -> Result<FolderHandle, Error> {
        let folder_err = |reason: String| Error::Folder {
            mailbox: self.mailbox.clone(),
            path: spec.display_path(),
            reason,
        };
        let r = tree.resolve(spec).map_err(folder_err)?;
        let missing: Vec<String> = r
            .levels
            .iter()
            .filter(|l| !tree.existing.contains(*l))
            .cloned()
            .collect();
        let mut created = false;
        if !missing.is_empty() {
            let _permit = self.permit().await?;
            let mut conn = self.checkout().await?;
            for level in &missing {
                conn.session
                    .create(level, false)
                    .await
                    .map_err(|e| folder_err(format!("CREATE {level:?}: {e}")))?;
                tree.existing.insert(level.clone());
                created = true;
            }
            self.checkin(conn);
        }
        Ok(FolderHandle {
            source: spec.source.clone(),
            target_id: r.name,
            display_path: r.display,
            created,
            notes: r.notes,
        })
    }

    fn index_of(&self, folder: &str) -> Arc<FolderIndex> {
        self.indexes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(folder.to_string())
            .or_default()
            .clone()
    }

    /// Forgets the folder's dedupe cache (after an APPEND with an unknown outcome).
    fn invalidate(&self, folder: &str) {
        self.indexes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(folder);
    }

    /// Header fetch of every message in `folder`: (uid, flags, size, header block).
    async fn fetch_headers(
        &self,
        conn: &mut Conn,
        folder: &str,
        internal_date: bool,
    ) -> Result<(u32, Vec<o365_migrate_imap::FetchedMessage>), Error> {
        let sel = conn
            .session
            .select(folder)
            .await
            .map_err(|e| map_err(e, "SELECT", folder))?;
        conn.selected = Some(folder.to_string());
        conn.selected_uv = sel.uid_validity;
        let uid_validity = sel.uid_validity.unwrap_or(0);
        if sel.exists == 0 {
            return Ok((uid_validity, Vec::new()));
        }
        let uids = conn
            .session
            .uid_search(&[SearchKey::All])
            .await
            .map_err(|e| map_err(e, "UID SEARCH", folder))?;
        let items = FetchItems {
            flags: true,
            internal_date,
            size: true,
            header_fields: INDEX_FIELDS.iter().map(|s| s.to_string()).collect(),
            body: false,
            modseq: false,
            gmail: false,
        };
        let mut out = Vec::with_capacity(uids.len());
        let mut stream = conn.session.fetch(
            &uids,
            FetchOptions {
                items,
                batch_size: 1000,
                pipeline: 2,
            },
        );
        while let Some(m) = stream.next().await {
            out.push(m.map_err(|e| map_err(e, "UID FETCH", folder))?);
        }
        Ok((uid_validity, out))
    }

    async fn index(&self, folder: &str) -> Result<Arc<FolderIndex>, Error> {
        let idx = self.index_of(folder);
        idx.loaded
            .get_or_try_init(|| async {
                let (uv, msgs) = self
                    .with_conn(async |conn| self.fetch_headers(conn, folder, false).await)
                    .await?;
                for m in msgs {
                    let header = m.header.as_deref().unwrap_or_default();
                    let id = o365_migrate_mime::fingerprint(header);
                    let mut keys = vec![id.dedupe_key()];
                    keys.extend(id.message_id.as_ref().map(|m| format!("mid:{m}")));
                    keys.dedup();
                    // Listed by its headers: a header key alone cannot tell two contents of
                    // one Message-ID apart, so the listing is also indexed by header key and
                    // size, and a content-keyed write confirms such a match by the bytes
                    // (`same_bytes`) before it counts the item as present.
                    let size = m.size.map(u64::from).unwrap_or(0);
                    let id = format!("{uv}:{}", m.uid);
                    for k in &keys {
                        idx.insert_listed(listed_key(k, size), id.clone());
                    }
                    idx.insert_existing(id, keys);
                }
                Ok::<(), Error>(())
            })
            .await?;
        Ok(idx)
    }

    /// Queues one message for `folder` and drives the queue until its reply arrives: whoever
    /// gets a connection appends the next group of queued messages (its own or others').
    async fn append_one(&self, folder: &str, message: AppendMessage, flagged: bool) -> AppendReply {
        let (tx, mut rx) = oneshot::channel();
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(folder.to_string())
            .or_default()
            .push_back(Pending {
                message,
                flagged,
                reply: tx,
            });
        loop {
            tokio::select! {
                biased;
                r = &mut rx => {
                    return r.unwrap_or_else(|_| {
                        self.invalidate(folder);
                        Err(Error::Transport("the APPEND group was abandoned; the item will be checked again on retry".into()))
                    });
                }
                permit = self.permits.acquire() => {
                    let Ok(_permit) = permit else {
                        return Err(Error::Transport("connection pool closed".into()));
                    };
                    let group: Vec<Pending> = {
                        let mut q = self.queues.lock().unwrap_or_else(|e| e.into_inner());
                        match q.get_mut(folder) {
                            Some(q) => {
                                let n = q.len().min(self.config.batch.max(1));
                                q.drain(..n).collect()
                            }
                            None => Vec::new(),
                        }
                    };
                    if group.is_empty() {
                        drop(_permit);
                        return rx.await.unwrap_or_else(|_| {
                            self.invalidate(folder);
                            Err(Error::Transport("the APPEND group was abandoned; the item will be checked again on retry".into()))
                        });
                    }
                    self.run_group(folder, group).await;
                }
            }
        }
    }

    /// Waits while the mailbox is paused by a throttling answer (on any of its connections).
    async fn wait_unpaused(&self) {
        loop {
            let until = self.pause.lock().unwrap_or_else(|e| e.into_inner()).until;
            match until {
                Some(u) if u > Instant::now() => tokio::time::sleep_until(u.into()).await,
                _ => return,
            }
        }
    }

    /// Pauses every APPEND of the mailbox for `wait` from now (an answer that asked to slow
    /// down); APPENDs already sent are answered as they come.
    fn pause_for(&self, wait: Duration, answers: u64) {
        let mut p = self.pause.lock().unwrap_or_else(|e| e.into_inner());
        let until = Instant::now() + wait;
        p.stats.throttled_answers += answers;
        if p.until.is_none_or(|u| u < until) {
            p.until = Some(until);
            p.stats.pauses += 1;
        }
    }

    /// Appends one group on one connection; every message's sender gets exactly one reply.
    async fn run_group(&self, folder: &str, mut group: Vec<Pending>) {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.wait_unpaused().await;
            let mut conn = match self.checkout().await {
                Ok(c) => c,
                Err(e) => {
                    let text = e.to_string();
                    for p in group {
                        p.answer(Err(Error::Transport(text.clone())));
                    }
                    return;
                }
            };
            if let Err(e) = self.select(&mut conn, folder).await {
                let text = e.to_string();
                for p in group {
                    p.answer(Err(Error::Folder {
                        mailbox: self.mailbox.clone(),
                        path: folder.into(),
                        reason: text.clone(),
                    }));
                }
                return;
            }
            let messages: Vec<AppendMessage> = group.iter().map(|p| p.message.clone()).collect();
            let results = conn
                .session
                .append(folder, messages, self.config.append_window)
                .await;
            let results = match results {
                Ok(r) => r,
                Err(e) => {
                    // The connection failed with APPENDs in flight: outcomes unknown. Drop the
                    // dedupe cache so the retry looks at the server first.
                    self.invalidate(folder);
                    let err = map_err(e, "APPEND", folder);
                    let text = err.to_string();
                    for p in group {
                        p.answer(Err(Error::Transport(format!(
                            "{text} (the message may or may not have been stored; a retry checks first)"
                        ))));
                    }
                    return;
                }
            };
            let mut throttled: Vec<Pending> = Vec::new();
            let mut backoff: Option<Duration> = None;
            let mut last_throttle = String::new();
            let mut done: Vec<(Pending, Option<AppendUid>)> = Vec::new();
            for (p, r) in group.into_iter().zip(results) {
                match r {
                    Ok(uid) => done.push((p, uid)),
                    Err(o365_migrate_imap::Error::Throttled { backoff: b, text }) => {
                        backoff = backoff.max(b);
                        last_throttle = text;
                        throttled.push(p);
                    }
                    Err(e) => {
                        p.answer(Err(map_err(e, "APPEND", folder)));
                    }
                }
            }
            if self.config.restore_flagged {
                self.restore_flagged(&mut conn, folder, &done).await;
            }
            for (p, uid) in done {
                let id = match uid {
                    Some(u) => format!("{}:{}", u.uid_validity, u.uid),
                    None => format!("{folder}:appended"),
                };
                p.answer(Ok((id, uid)));
            }
            if throttled.is_empty() {
                self.checkin(conn);
                return;
            }
            // Throttled: nothing of these was stored (the server answered NO). Sleep what the
            // server asked, reconnect (Exchange disconnects after throttling) and go on.
            drop(conn);
            if attempt > self.config.throttle_retries {
                for p in throttled {
                    p.answer(Err(Error::RetriesExhausted {
                        attempts: attempt,
                        elapsed: started.elapsed(),
                        last: format!("APPEND {folder}: {last_throttle}"),
                    }));
                }
                return;
            }
            let wait = backoff
                .unwrap_or(self.config.default_backoff)
                .min(self.config.max_backoff);
            // The whole mailbox waits, not only this connection: Exchange Online throttles
            // the mailbox, and every other APPEND sent now would be refused as well.
            self.pause_for(wait, throttled.len() as u64);
            group = throttled;
        }
    }

    /// Exchange Online drops `\Flagged` given at APPEND: read the flags of the new UIDs and
    /// STORE `\Flagged` where it is missing. Best effort: a failure here leaves the message
    /// stored (it is reported by verify as not flagged).
    async fn restore_flagged(
        &self,
        conn: &mut Conn,
        folder: &str,
        done: &[(Pending, Option<AppendUid>)],
    ) {
        let uids: Vec<u32> = done
            .iter()
            .filter(|(p, _)| p.flagged)
            .filter_map(|(_, u)| u.map(|u| u.uid))
            .collect();
        if uids.is_empty() {
            return;
        }
        let items = FetchItems {
            flags: true,
            internal_date: false,
            size: false,
            header_fields: Vec::new(),
            body: false,
            modseq: false,
            gmail: false,
        };
        let mut missing = Vec::new();
        {
            let mut stream = conn.session.fetch(
                &uids,
                FetchOptions {
                    items,
                    batch_size: 500,
                    pipeline: 1,
                },
            );
            while let Some(Ok(m)) = stream.next().await {
                if !m.flags.iter().any(|f| f.eq_ignore_ascii_case("\\Flagged")) {
                    missing.push(m.uid);
                }
            }
        }
        if !missing.is_empty() {
            let _ = conn
                .session
                .uid_store(
                    &UidSet::from_uids(&missing),
                    StoreMode::Add,
                    &["\\Flagged".to_string()],
                )
                .await;
        }
        let _ = folder;
    }

    /// Whether the message `id` (`<uidvalidity>:<uid>`) in `folder` holds exactly `data`.
    async fn same_bytes(&self, folder: &str, id: &str, data: &[u8]) -> Result<bool, Error> {
        Ok(self.read_body(folder, id).await?.as_deref() == Some(data))
    }

    /// The stored bytes of message `id` (`<uidvalidity>:<uid>`) in `folder`, `None` when it is
    /// gone (or the id is not one of ours).
    async fn read_body(&self, folder: &str, id: &str) -> Result<Option<Bytes>, Error> {
        let Some(uid) = id.rsplit(':').next().and_then(|u| u.parse::<u32>().ok()) else {
            return Ok(None);
        };
        self.with_conn(async |conn| {
            self.select(conn, folder).await?;
            let items = FetchItems::body_only();
            let mut stream = conn.session.fetch(
                &[uid],
                FetchOptions {
                    items,
                    batch_size: 1,
                    pipeline: 1,
                },
            );
            let mut body = None;
            while let Some(m) = stream.next().await {
                let m = m.map_err(|e| map_err(e, "UID FETCH", folder))?;
                if m.uid == uid {
                    body = m.body.clone();
                }
            }
            Ok(body)
        })
        .await
    }

    async fn write_item(
        &self,
        folder: &FolderHandle,
        item: &WriteItem,
    ) -> Result<WriteOutcome, Error> {
        let name = folder.target_id.as_str();
        // Only header-derived parts of the identity are used here (the dedupe key and the
        // Message-ID), so hash the header block, not the whole message again.
        let identity = o365_migrate_mime::fingerprint(o365_migrate_mime::header_block(&item.raw));
        let mut notes = Vec::new();
        let data: Bytes = match self.config.max_line_length {
            Some(max) => {
                let mut opts = o365_migrate_mime::RepairOptions::none();
                opts.max_line_length = Some(max);
                let fixed = o365_migrate_mime::repair(&item.raw, &opts, None);
                notes.extend(fixed.problems.iter().map(|p| p.to_string()));
                match fixed.value {
                    std::borrow::Cow::Borrowed(_) => item.raw.clone(),
                    std::borrow::Cow::Owned(v) => Bytes::from(v),
                }
            }
            None => item.raw.clone(),
        };
        if let Some(limit) = self.limit()
            && data.len() as u64 > limit
        {
            return Err(Error::TooLarge {
                size: data.len() as u64,
                limit,
            });
        }
        let index = self.index(name).await?;
        let mut header_keys = vec![identity.dedupe_key()];
        if let Some(m) = item
            .internet_message_id
            .clone()
            .or_else(|| identity.message_id.clone())
        {
            header_keys.push(format!("mid:{m}"));
        }
        header_keys.dedup();
        let keys = if crate::dedupe::is_mid(&item.fingerprint) {
            // No content key: header keys are all there is to go by.
            let mut k = vec![item.fingerprint.clone()];
            k.extend(header_keys);
            k.dedup();
            k
        } else {
            // A content key: an item listed from the target by its headers (after a restart,
            // a reconnect or an APPEND with an unknown outcome) is this message only when it
            // has the same size and the same bytes; a Message-ID match alone never skips it.
            if index.get(&item.fingerprint).is_none() {
                let mut candidates: Vec<String> = header_keys
                    .iter()
                    .flat_map(|k| index.listed(&listed_key(k, data.len() as u64)))
                    .collect();
                candidates.dedup();
                for id in candidates {
                    if self.same_bytes(name, &id, &data).await? {
                        index.insert_existing(id, [item.fingerprint.clone()]);
                        break;
                    }
                }
            }
            vec![item.fingerprint.clone()]
        };
        let message = AppendMessage {
            flags: append_flags(item, &mut notes),
            internal_date: item.internal_date,
            data,
        };
        write_once(&index, &keys, notes, || async {
            self.append_one(name, message, item.flags.flagged)
                .await
                .map(|(id, _)| id)
        })
        .await
    }

    async fn list_items(&self, folder: &str) -> Result<Vec<TargetItem>, Error> {
        let (uv, msgs) = self
            .with_conn(async |conn| self.fetch_headers(conn, folder, true).await)
            .await?;
        Ok(msgs
            .into_iter()
            .map(|m| {
                let header = m.header.as_deref().unwrap_or_default();
                let id = o365_migrate_mime::fingerprint(header);
                let norm = o365_migrate_mime::normalize(header).value;
                let has = |f: &str| m.flags.iter().any(|x| x.eq_ignore_ascii_case(f));
                TargetItem {
                    id: format!("{uv}:{}", m.uid),
                    internet_message_id: id.message_id.clone(),
                    fingerprint: Some(id.dedupe_key()),
                    subject: norm.subject,
                    from: norm.from.first().and_then(|f| f.address.clone()),
                    received: m.internal_date,
                    is_draft: has("\\Draft"),
                    is_read: has("\\Seen"),
                    flagged: has("\\Flagged"),
                    answered: has("\\Answered"),
                    keywords: m
                        .flags
                        .iter()
                        .filter(|f| !f.starts_with('\\'))
                        .cloned()
                        .collect(),
                    size: m.size.map(u64::from),
                }
            })
            .collect())
    }
}

impl ImapMailboxWriter {
    /// Selects `folder` and finds the UID of item `id` (`<uidvalidity>:<uid>`) in it: `None`
    /// when the message is gone, the id is not one this writer gave, or the folder's
    /// UIDVALIDITY changed since (its UIDs then name other messages).
    async fn locate(&self, conn: &mut Conn, folder: &str, id: &str) -> Result<Option<u32>, Error> {
        let Some((uv, uid)) = id
            .split_once(':')
            .and_then(|(v, u)| Some((v.parse::<u32>().ok()?, u.parse::<u32>().ok()?)))
        else {
            return Ok(None);
        };
        // A SELECT of a large Maildir folder rescans it after every change: keep the one
        // already made.
        self.select(conn, folder).await?;
        if conn.selected_uv.is_none() {
            conn.selected = None;
            self.select(conn, folder).await?;
        }
        if conn.selected_uv != Some(uv) {
            return Ok(None);
        }
        let found = conn
            .session
            .uid_search(&[SearchKey::Uid(UidSet::from_uids(&[uid]))])
            .await
            .map_err(|e| map_err(e, "UID SEARCH", folder))?;
        Ok(found.contains(&uid).then_some(uid))
    }

    /// `sync`: `UID STORE FLAGS.SILENT` with the source's flags, replacing the item's.
    async fn store_flags(&self, folder: &str, id: &str, flags: &Flags) -> Result<bool, Error> {
        let (atoms, _rejected) = flags.to_imap();
        self.with_conn(async |conn| {
            let Some(uid) = self.locate(conn, folder, id).await? else {
                return Ok(false);
            };
            conn.session
                .uid_store(&UidSet::from_uids(&[uid]), StoreMode::Replace, &atoms)
                .await
                .map_err(|e| map_err(e, "UID STORE", folder))?;
            Ok(true)
        })
        .await
    }

    /// `sync`: `UID MOVE` (or COPY + EXPUNGE of that UID) to `to`; the new id from COPYUID.
    async fn move_message(
        &self,
        from: &str,
        id: &str,
        to: &str,
        item_key: &str,
    ) -> Result<Option<String>, Error> {
        let moved = self
            .with_conn(async |conn| {
                let Some(uid) = self.locate(conn, from, id).await? else {
                    return Ok(None);
                };
                let moved = conn
                    .session
                    .uid_move(&UidSet::from_uids(&[uid]), to)
                    .await
                    .map_err(|e| map_err(e, "UID MOVE", from))?;
                Ok(Some(moved.and_then(|m| {
                    m.pairs
                        .iter()
                        .find(|(s, _)| *s == uid)
                        .map(|(_, d)| format!("{}:{d}", m.uid_validity))
                })))
            })
            .await?;
        let new_id = match moved {
            None => return Ok(None),
            Some(Some(id)) => id,
            // No COPYUID (a server without UIDPLUS): find the moved message by its headers.
            Some(None) => {
                self.invalidate(to);
                let idx = self.index(to).await?;
                let weak = o365_migrate_mime::weak_key(item_key);
                // The newest listed message with those headers: the one just moved in.
                match idx.listed_by_prefix(&format!("{weak}#size=")).last() {
                    Some(found) => found.clone(),
                    None => {
                        return Err(Error::Protocol {
                            context: format!("UID MOVE to {to}"),
                            message: "the server named no new UID and the moved message was \
                                      not found in the destination by its headers"
                                .into(),
                        });
                    }
                }
            }
        };
        let keys = [item_key.to_owned()];
        self.index_of(from).forget(&keys);
        self.index_of(to).insert_existing(new_id.clone(), keys);
        Ok(Some(new_id))
    }

    /// `sync --propagate-deletes`: `\Deleted` and UID EXPUNGE of exactly this message.
    async fn delete_message(&self, folder: &str, id: &str) -> Result<bool, Error> {
        let gone = self
            .with_conn(async |conn| {
                let Some(uid) = self.locate(conn, folder, id).await? else {
                    return Ok(false);
                };
                conn.session
                    .uid_delete(&UidSet::from_uids(&[uid]))
                    .await
                    .map_err(|e| map_err(e, "UID EXPUNGE", folder))?;
                Ok(true)
            })
            .await?;
        self.index_of(folder).forget_id(id);
        Ok(gone)
    }
}

impl MailboxWriter for ImapMailboxWriter {
    fn mailbox(&self) -> &str {
        &self.mailbox
    }

    fn set_flags<'a>(
        &'a self,
        folder: &'a FolderHandle,
        id: &'a str,
        flags: &'a Flags,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(self.store_flags(&folder.target_id, id, flags))
    }

    fn move_item<'a>(
        &'a self,
        folder: &'a FolderHandle,
        id: &'a str,
        to: &'a FolderHandle,
        item_key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, Error>> {
        Box::pin(self.move_message(&folder.target_id, id, &to.target_id, item_key))
    }

    fn delete_item<'a>(
        &'a self,
        folder: &'a FolderHandle,
        id: &'a str,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(self.delete_message(&folder.target_id, id))
    }

    fn throttling(&self) -> crate::writer::ThrottleStats {
        self.pause.lock().unwrap_or_else(|e| e.into_inner()).stats
    }

    fn ensure_folders<'a>(
        &'a self,
        plan: &'a [FolderSpec],
    ) -> BoxFuture<'a, Result<Vec<FolderHandle>, Error>> {
        Box::pin(async move {
            let mut guard = self.tree.lock().await;
            let tree = self.tree(&mut guard).await?;
            let mut out = Vec::with_capacity(plan.len());
            for spec in plan {
                out.push(self.ensure_one(tree, spec).await?);
            }
            Ok(out)
        })
    }

    fn find_folders<'a>(
        &'a self,
        plan: &'a [FolderSpec],
    ) -> BoxFuture<'a, Result<Vec<Option<FolderHandle>>, Error>> {
        Box::pin(async move {
            let mut guard = self.tree.lock().await;
            let tree = self.tree(&mut guard).await?;
            plan.iter()
                .map(|spec| {
                    let r = tree.resolve(spec).map_err(|reason| Error::Folder {
                        mailbox: self.mailbox.clone(),
                        path: spec.display_path(),
                        reason,
                    })?;
                    Ok(tree.existing.contains(&r.name).then(|| FolderHandle {
                        source: spec.source.clone(),
                        target_id: r.name,
                        display_path: r.display,
                        created: false,
                        notes: r.notes,
                    }))
                })
                .collect()
        })
    }

    fn write<'a>(
        &'a self,
        folder: &'a FolderHandle,
        item: &'a WriteItem,
    ) -> BoxFuture<'a, Result<WriteOutcome, Error>> {
        Box::pin(self.write_item(folder, item))
    }

    fn count<'a>(&'a self, folder: &'a FolderHandle) -> BoxFuture<'a, Result<u64, Error>> {
        Box::pin(async move {
            let name = folder.target_id.as_str();
            let _permit = self.permit().await?;
            let mut conn = self.checkout().await?;
            let st = conn
                .session
                .status(name, &[StatusItem::Messages])
                .await
                .map_err(|e| map_err(e, "STATUS", name))?;
            self.checkin(conn);
            st.messages.map(u64::from).ok_or_else(|| Error::Protocol {
                context: format!("STATUS {name}"),
                message: "no MESSAGES count".into(),
            })
        })
    }

    fn list<'a>(
        &'a self,
        folder: &'a FolderHandle,
    ) -> BoxFuture<'a, Result<Vec<TargetItem>, Error>> {
        Box::pin(self.list_items(&folder.target_id))
    }

    fn read_raw<'a>(
        &'a self,
        folder: &'a FolderHandle,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Bytes>, Error>> {
        Box::pin(self.read_body(&folder.target_id, id))
    }
}

/// The index key of a message listed from the target by its headers: header key and size.
fn listed_key(header_key: &str, size: u64) -> String {
    format!("{header_key}#size={size}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_keywords() {
        let item = WriteItem {
            raw: Bytes::from_static(b"x"),
            flags: Flags {
                seen: true,
                flagged: true,
                keywords: vec!["$Forwarded".into(), "bad word".into(), "\\Recent".into()],
                ..Default::default()
            },
            internal_date: None,
            fingerprint: "fp".into(),
            internet_message_id: None,
        };
        let mut notes = Vec::new();
        assert_eq!(
            append_flags(&item, &mut notes),
            ["\\Seen", "\\Flagged", "$Forwarded"]
        );
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("bad word"));
    }

    #[test]
    fn errors_keep_the_server_text() {
        let e = map_err(
            o365_migrate_imap::Error::No {
                command: "APPEND".into(),
                code: Some("OVERQUOTA".into()),
                text: "Quota exceeded".into(),
            },
            "APPEND",
            "INBOX",
        );
        assert_eq!(e.scope(), crate::ErrorScope::Item);
        assert_eq!(e.to_string(), "APPEND INBOX: OVERQUOTA: Quota exceeded");
        let e = map_err(
            o365_migrate_imap::Error::AppendTooLarge { size: 9, limit: 5 },
            "APPEND",
            "INBOX",
        );
        assert!(matches!(e, Error::TooLarge { size: 9, limit: 5 }));
    }
}
