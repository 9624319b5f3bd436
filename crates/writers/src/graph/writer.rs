//! The Exchange Online writer: [`GraphTarget`] and [`GraphMailboxWriter`].

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::batch::{CreateBatcher, MAX_BATCHED_BODY, post_create};
use super::categories::MasterCategories;
use super::client::{Body, Call, GraphClient, MailboxProbe, RetryPolicy, q, seg};
use super::throttle::{Budgets, MailboxLimiter};
use crate::Error;
use crate::cloud::Endpoints;
use crate::dedupe::{FolderIndex, write_once};
use crate::identity::{Credential, TokenProvider};
use crate::writer::{
    BoxFuture, Capabilities, FolderBase, FolderHandle, FolderSpec, MailboxWriter, Target,
    TargetItem, WriteItem, WriteOutcome,
};
use o365_migrate_mime::{ContentSummary, InternalDate};

/// The named extended property where the writer stores each item's fingerprint, so later runs
/// find it again (also for messages without a Message-ID). While large attachments are still
/// being uploaded the value is `pending:<fingerprint>`; such leftovers of an interrupted run
/// are deleted and written again.
pub const FINGERPRINT_PROPERTY: &str =
    "String {4f1c7a52-5b0e-4d6a-9c3e-0365a11e9f07} Name o365migrate-fingerprint";

/// Upload-session chunk: 12 × 320 KiB, below Graph's 4 MB per PUT.
pub(super) const CHUNK: usize = 12 * 320 * 1024;
/// Attachments at least this large go through an upload session (Graph: "3 MB and more").
const UPLOAD_SESSION_FROM: usize = 3 * 1024 * 1024;

/// Everything a [`GraphTarget`] needs.
#[derive(Debug, Clone)]
pub struct GraphTargetConfig {
    /// Tenant id or verified domain.
    pub tenant: String,
    /// Application (client) id.
    pub client_id: String,
    /// Secret, certificate or device code.
    pub credential: Credential,
    /// Hosts (from [`crate::Cloud::endpoints`], or overridden).
    pub endpoints: Endpoints,
    /// Per-mailbox limits to stay under.
    pub budgets: Budgets,
    /// Retry rules.
    pub retry: RetryPolicy,
    /// Whether the job creates users (adds User.ReadWrite.All and LicenseAssignment.ReadWrite.All
    /// to the permission check).
    pub user_creation: bool,
    /// Application permissions the job needs besides mail, added to the permission check
    /// (contacts, calendars and tasks: `Contacts.ReadWrite`, `Calendars.ReadWrite`,
    /// `Tasks.ReadWrite.All`).
    pub extra_permissions: Vec<String>,
    /// Largest message accepted, in raw bytes (default 35 MB, Exchange Online's default
    /// MaxReceiveSize; raise to at most 150 MB when the mailboxes allow it).
    pub max_message_bytes: u64,
    /// Folder names Exchange Online reserves at the top of a mailbox, and the name each is
    /// written under instead (default: `Files` → `Files (migrated)`); compared ignoring case.
    /// The folder handle's notes name every rename, so the report does.
    pub reserved_folders: Vec<(String, String)>,
    /// Creates of small messages sent together in one `$batch` (1 to 20, default 20; 1 sends
    /// each alone). Batching pays the way to the service once per group: it is what keeps a
    /// mailbox at its request budget when Exchange Online answers slowly.
    pub max_batch: usize,
    /// A budget shared with other processes (a fleet of workers) that every request also
    /// takes from; `None`: only this process's own pacing.
    pub shared_budget: Option<Arc<dyn crate::graph::throttle::SharedBudget>>,
}

impl GraphTargetConfig {
    /// A configuration with Microsoft's limits and default retries.
    pub fn new(
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        credential: Credential,
        endpoints: Endpoints,
    ) -> Self {
        Self {
            tenant: tenant.into(),
            client_id: client_id.into(),
            credential,
            endpoints,
            budgets: Budgets::microsoft(),
            retry: RetryPolicy::default(),
            user_creation: false,
            extra_permissions: Vec::new(),
            max_message_bytes: 35 * 1024 * 1024,
            reserved_folders: vec![("Files".into(), "Files (migrated)".into())],
            max_batch: 20,
            shared_budget: None,
        }
    }
}

/// Exchange Online through Microsoft Graph.
#[derive(Debug)]
pub struct GraphTarget {
    client: Arc<GraphClient>,
    user_creation: bool,
    extra_permissions: Vec<String>,
    upload_sessions: bool,
    max_message_bytes: u64,
    reserved_folders: Arc<Vec<(String, String)>>,
    max_batch: usize,
}

impl GraphTarget {
    /// Builds the target (no network traffic yet).
    pub fn new(config: GraphTargetConfig) -> Result<Self, Error> {
        let upload_sessions = config.endpoints.upload_sessions;
        let tokens = Arc::new(TokenProvider::new(
            config.tenant,
            config.client_id,
            config.credential,
            config.endpoints,
        )?);
        let mut client = GraphClient::new(tokens, config.budgets, config.retry)?;
        if let Some(b) = config.shared_budget {
            client = client.with_shared_budget(b);
        }
        let client = Arc::new(client);
        Ok(Self {
            client,
            user_creation: config.user_creation,
            extra_permissions: config.extra_permissions,
            upload_sessions,
            max_message_bytes: config.max_message_bytes,
            reserved_folders: Arc::new(config.reserved_folders),
            max_batch: config.max_batch,
        })
    }

    /// The Graph client (directory calls for provisioning: users, SKUs, licences).
    pub fn client(&self) -> &Arc<GraphClient> {
        &self.client
    }

    /// Checks that `mailbox` answers: it exists and has an Exchange Online mailbox.
    async fn ready(&self, mailbox: &str) -> Result<(), Error> {
        match self.client.probe_mailbox(mailbox).await? {
            MailboxProbe::Ready => {}
            MailboxProbe::NotEnabled => {
                return Err(Error::MailboxUnavailable {
                    mailbox: mailbox.into(),
                    reason: "MailboxNotEnabledForRESTAPI: the user has no Exchange Online mailbox yet".into(),
                    hint: Some("assign a licence that includes Exchange Online (o365-migrate provision) and wait for provisioning, which can take minutes".into()),
                });
            }
            MailboxProbe::NoSuchUser => {
                return Err(Error::MailboxUnavailable {
                    mailbox: mailbox.into(),
                    reason: "no such user in the tenant".into(),
                    hint: Some(
                        "check the mapping file, or create the user with o365-migrate provision"
                            .into(),
                    ),
                });
            }
        }
        Ok(())
    }

    /// Opens a typed writer for `mailbox` (UPN or id) after checking that it answers.
    pub async fn open(&self, mailbox: &str) -> Result<Arc<GraphMailboxWriter>, Error> {
        self.ready(mailbox).await?;
        let limiter = self.client.limiter(mailbox);
        let user_path = format!("/users/{}", seg(mailbox));
        Ok(Arc::new(GraphMailboxWriter {
            batcher: Arc::new(CreateBatcher::new(
                self.client.clone(),
                limiter.clone(),
                self.max_batch,
            )),
            throttle_baseline: limiter.stats(),
            categories: MasterCategories::new(self.client.clone(), limiter.clone(), &user_path),
            limiter,
            client: self.client.clone(),
            mailbox: mailbox.to_string(),
            user_path,
            folders: Mutex::new(FolderCache::default()),
            indexes: Mutex::new(HashMap::new()),
            upload_sessions: self.upload_sessions,
            reserved_folders: self.reserved_folders.clone(),
            unsure: Default::default(),
            max_message_bytes: self.max_message_bytes,
        }))
    }

    /// Opens the contacts and calendars writer for `mailbox` (UPN or id) after checking that
    /// it answers; it shares the mailbox's limiter with the mail writer.
    pub async fn open_pim_writer(
        &self,
        mailbox: &str,
    ) -> Result<Arc<super::pim::GraphPimWriter>, Error> {
        self.ready(mailbox).await?;
        Ok(Arc::new(super::pim::GraphPimWriter::new(
            self.client.clone(),
            mailbox,
        )))
    }

    fn caps(&self) -> Capabilities {
        let mut c = Capabilities::none("graph");
        c.max_message_bytes = Some(self.max_message_bytes);
        c.keeps_received_date = true;
        c.keeps_sent_date = true;
        c.keeps_seen = true;
        c.keeps_flagged = true;
        c.keeps_draft_state = true;
        c.keeps_keywords = true;
        c.dedupes = true;
        c.with_exchange_folder_names()
    }
}

impl Target for GraphTarget {
    fn capabilities(&self) -> Capabilities {
        self.caps()
    }

    fn check(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            // Categories set on messages are made in the mailbox's master category list
            // ("Create Outlook category": MailboxSettings.ReadWrite, application permission).
            let extra: Vec<&str> = std::iter::once("MailboxSettings.ReadWrite")
                .chain(self.extra_permissions.iter().map(String::as_str))
                .collect();
            self.client
                .check_permissions_with(self.user_creation, &extra)
                .await
                .map(|_| ())
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

    fn open_pim<'a>(
        &'a self,
        mailbox: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<dyn crate::pim::PimWriter>>, Error>> {
        Box::pin(async move {
            let w: Arc<dyn crate::pim::PimWriter> = self.open_pim_writer(mailbox).await?;
            Ok(Some(w))
        })
    }
}

#[derive(Default)]
struct FolderCache {
    well_known: HashMap<String, String>,
    /// parent id → (lower-case display name → id)
    children: HashMap<String, HashMap<String, String>>,
}

/// Writes into one Exchange Online mailbox.
pub struct GraphMailboxWriter {
    client: Arc<GraphClient>,
    limiter: Arc<MailboxLimiter>,
    /// The mailbox's throttling counts when this writer was opened: [`MailboxWriter::throttling`]
    /// reports what happened since.
    throttle_baseline: crate::writer::ThrottleStats,
    mailbox: String,
    user_path: String,
    folders: Mutex<FolderCache>,
    indexes: Mutex<HashMap<String, Arc<FolderIndex>>>,
    upload_sessions: bool,
    max_message_bytes: u64,
    reserved_folders: Arc<Vec<(String, String)>>,
    /// Item keys whose last write may have left something in the target (an answer lost, a
    /// partial copy that could not be removed): looked up before they are written again.
    unsure: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Groups small creates into `$batch`es.
    batcher: Arc<CreateBatcher>,
    /// The mailbox's master category list: the categories set on messages are made there.
    categories: MasterCategories,
}

impl std::fmt::Debug for GraphMailboxWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphMailboxWriter")
            .field("mailbox", &self.mailbox)
            .finish_non_exhaustive()
    }
}

fn parse_iso(s: &str) -> Option<InternalDate> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|t| InternalDate::from_unix_utc(t.unix_timestamp()))
}

impl GraphMailboxWriter {
    fn call<'a>(&'a self, url: String) -> Call<'a> {
        Call::get(url, Some(&self.limiter))
    }

    async fn get_json(&self, path: String) -> Result<Value, Error> {
        let reply = self
            .client
            .call(self.call(path.clone()))
            .await?
            .ok("GET", &path)?;
        reply.json(&path)
    }

    async fn folder_id(&self, cache: &mut FolderCache, name: &str) -> Result<String, Error> {
        if let Some(id) = cache.well_known.get(name) {
            return Ok(id.clone());
        }
        let v = self
            .get_json(format!(
                "{}/mailFolders/{name}?$select=id,displayName",
                self.user_path
            ))
            .await
            .map_err(|e| Error::Folder {
                mailbox: self.mailbox.clone(),
                path: format!("#{name}#"),
                reason: e.to_string(),
            })?;
        let id = v["id"].as_str().unwrap_or_default().to_string();
        cache.well_known.insert(name.to_string(), id.clone());
        Ok(id)
    }

    async fn children<'c>(
        &self,
        cache: &'c mut FolderCache,
        parent: &str,
        reload: bool,
    ) -> Result<&'c mut HashMap<String, String>, Error> {
        if reload || !cache.children.contains_key(parent) {
            let url = format!(
                "{}/mailFolders/{}/childFolders?$select=id,displayName&$top=1000",
                self.user_path,
                seg(parent)
            );
            let list = self.client.get_all(url, Some(&self.limiter)).await?;
            let map = list
                .iter()
                .filter_map(|f| {
                    Some((
                        f["displayName"].as_str()?.to_lowercase(),
                        f["id"].as_str()?.to_string(),
                    ))
                })
                .collect();
            cache.children.insert(parent.to_string(), map);
        }
        cache
            .children
            .get_mut(parent)
            .ok_or_else(|| Error::Protocol {
                context: "childFolders".into(),
                message: "cache miss".into(),
            })
    }

    /// The folder of `spec`, created (parents first) when `create`; `None` when it does not
    /// exist and `create` is false.
    async fn ensure_one(
        &self,
        cache: &mut FolderCache,
        spec: &FolderSpec,
        create: bool,
    ) -> Result<Option<FolderHandle>, Error> {
        let folder_err = |reason: String| Error::Folder {
            mailbox: self.mailbox.clone(),
            path: spec.display_path(),
            reason,
        };
        let mut current = match &spec.base {
            FolderBase::Root => self.folder_id(cache, "msgfolderroot").await?,
            FolderBase::WellKnown(k) => self.folder_id(cache, k.graph_name()).await?,
        };
        let mut created = false;
        let mut notes = Vec::new();
        let mut display = match &spec.base {
            FolderBase::Root => String::new(),
            FolderBase::WellKnown(k) => k.token().to_owned(),
        };
        for (i, segment) in spec.path.iter().enumerate() {
            let mut name = segment.trim();
            let mut shown = segment.as_str();
            if name.is_empty() {
                return Err(folder_err("empty folder name".into()));
            }
            if i == 0
                && spec.base == FolderBase::Root
                && let Some((reserved, rename_to)) = self
                    .reserved_folders
                    .iter()
                    .find(|(r, _)| r.eq_ignore_ascii_case(name))
            {
                notes.push(format!(
                    "{name:?} is reserved at the top of an Exchange Online mailbox ({reserved}): \
                     written as {rename_to:?}"
                ));
                name = rename_to.as_str();
                shown = name;
            }
            if !display.is_empty() {
                display.push('/');
            }
            display.push_str(shown);
            let key = name.to_lowercase();
            if let Some(id) = self.children(cache, &current, false).await?.get(&key) {
                current = id.clone();
                continue;
            }
            if !create {
                return Ok(None);
            }
            let url = format!(
                "{}/mailFolders/{}/childFolders",
                self.user_path,
                seg(&current)
            );
            let body = Bytes::from(json!({"displayName": name}).to_string());
            let mut call = Call::post_json(url.clone(), Some(&self.limiter), body);
            // Safe to resend after a lost answer: a folder that was created meanwhile answers
            // 409 and is looked up below.
            call.idempotent = true;
            let reply = self.client.call(call).await?;
            let id = match reply.status {
                201 | 200 => reply.json(&url)?["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                409 => {
                    // Created meanwhile (or differs only in case): look it up again.
                    match self.children(cache, &current, true).await?.get(&key) {
                        Some(id) => id.clone(),
                        None => {
                            return Err(folder_err(format!(
                                "409 {} but no folder of that name is listed",
                                reply.error_code()
                            )));
                        }
                    }
                }
                _ => return Err(folder_err(reply.into_error("POST", &url).to_string())),
            };
            created = true;
            self.children(cache, &current, false)
                .await?
                .insert(key, id.clone());
            current = id;
        }
        Ok(Some(FolderHandle {
            source: spec.source.clone(),
            target_id: current,
            display_path: display,
            created,
            notes,
        }))
    }

    fn list_url(&self, folder: &str, select: &str) -> String {
        format!(
            "{}/mailFolders/{}/messages?$select={select}&$expand={}&$top=1000",
            self.user_path,
            seg(folder),
            q(&format!(
                "singleValueExtendedProperties($filter=id eq '{FINGERPRINT_PROPERTY}')"
            ))
        )
    }

    fn fingerprint_of(item: &Value) -> Option<String> {
        item["singleValueExtendedProperties"]
            .as_array()?
            .iter()
            .find(|p| {
                p["id"]
                    .as_str()
                    .is_some_and(|i| i.eq_ignore_ascii_case(FINGERPRINT_PROPERTY))
            })
            .and_then(|p| p["value"].as_str().map(String::from))
    }

    async fn index(&self, folder: &str) -> Result<Arc<FolderIndex>, Error> {
        let idx = self
            .indexes
            .lock()
            .await
            .entry(folder.to_string())
            .or_default()
            .clone();
        idx.loaded
            .get_or_try_init(|| async {
                let items = self
                    .client
                    .get_all(
                        self.list_url(folder, "id,internetMessageId"),
                        Some(&self.limiter),
                    )
                    .await?;
                let mut stale = Vec::new();
                for it in &items {
                    let id = it["id"].as_str().unwrap_or_default().to_string();
                    let fp = Self::fingerprint_of(it);
                    if fp.as_deref().is_some_and(|f| f.starts_with("pending:")) {
                        stale.push(id);
                        continue;
                    }
                    let mid = it["internetMessageId"].as_str().map(|m| format!("mid:{m}"));
                    idx.insert_existing(id, fp.map(|f| format!("fp:{f}")).into_iter().chain(mid));
                }
                // Leftovers of an interrupted write (attachments incomplete): remove them, they
                // will be written again. One that cannot be removed stops the folder's writes
                // (they are retried) rather than let a full copy be written beside it.
                for id in stale {
                    self.delete_message(&id).await?;
                }
                Ok::<(), Error>(())
            })
            .await?;
        Ok(idx)
    }

    /// `sync`: PATCHes `isRead`, `flag` and `categories` only — the properties Graph lets a
    /// non-draft item change. `false` when the item is gone.
    async fn patch_flags(&self, id: &str, flags: &o365_migrate_mime::Flags) -> Result<bool, Error> {
        let url = format!("{}/messages/{}", self.user_path, seg(id));
        // A category that cannot be made in the master list is set anyway (without colour):
        // `sync` has no per-item notes, and the change itself must not be lost.
        let (categories, _notes) = self
            .categories
            .resolve(&o365_migrate_mime::graph::categories(flags))
            .await;
        let body = json!({
            "isRead": flags.seen,
            "flag": {"flagStatus": if flags.flagged { "flagged" } else { "notFlagged" }},
            "categories": categories,
        });
        let mut call = Call::post_json(
            url.clone(),
            Some(&self.limiter),
            Bytes::from(body.to_string()),
        );
        call.method = reqwest::Method::PATCH;
        // Setting the same values twice is harmless: safe to send again after a lost answer.
        call.idempotent = true;
        let reply = self.client.call(call).await?;
        if reply.status == 404 {
            return Ok(false);
        }
        reply.ok("PATCH", &url)?;
        Ok(true)
    }

    /// `sync`: `POST /messages/{id}/move`. The moved item has a new id. An answer lost on the
    /// way leaves the outcome unknown: the destination is searched for the item key first, and
    /// the move is sent again only when the item is not there. `None` when the item is gone.
    async fn move_message(
        &self,
        from: &str,
        id: &str,
        to: &str,
        item_key: &str,
    ) -> Result<Option<String>, Error> {
        let url = format!("{}/messages/{}/move", self.user_path, seg(id));
        let body = Bytes::from(json!({ "destinationId": to }).to_string());
        let mut attempts = 0;
        let new_id = loop {
            attempts += 1;
            match self
                .client
                .call(Call::post_json(
                    url.clone(),
                    Some(&self.limiter),
                    body.clone(),
                ))
                .await
            {
                Ok(reply) if reply.status == 404 => {
                    // Gone from the source folder: moved by an earlier attempt whose answer was
                    // lost, or deleted in the target.
                    match self.find_by_fingerprint(to, item_key).await? {
                        Some(found) => break found,
                        None => return Ok(None),
                    }
                }
                Ok(reply) => {
                    let v = reply.ok("POST", &url)?.json(&url)?;
                    match v["id"].as_str() {
                        Some(s) if !s.is_empty() => break s.to_owned(),
                        _ => {
                            return Err(Error::Protocol {
                                context: format!("POST {url}"),
                                message: "the move answer carries no id".into(),
                            });
                        }
                    }
                }
                Err(Error::Transport(_)) if attempts < 3 => {
                    if let Some(found) = self.find_by_fingerprint(to, item_key).await? {
                        break found;
                    }
                }
                Err(e) => return Err(e),
            }
        };
        let keys = [format!("fp:{item_key}")];
        let indexes = self.indexes.lock().await;
        if let Some(idx) = indexes.get(from) {
            idx.forget(&keys);
        }
        if let Some(idx) = indexes.get(to) {
            idx.insert_existing(new_id.clone(), keys);
        }
        Ok(Some(new_id))
    }

    /// Deletes a message (a leftover of an interrupted write); gone already counts as done.
    async fn delete_message(&self, id: &str) -> Result<(), Error> {
        let url = format!("{}/messages/{}", self.user_path, seg(id));
        let mut call = self.call(url.clone());
        call.method = reqwest::Method::DELETE;
        let reply = self.client.call(call).await?;
        if reply.status == 404 {
            return Ok(());
        }
        reply.ok("DELETE", &url).map(|_| ())
    }

    fn is_unsure(&self, fingerprint: &str) -> bool {
        self.unsure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(fingerprint)
    }

    /// Marks (`true`) or clears an item whose write may have left something in the target.
    fn set_unsure(&self, fingerprint: &str, unsure: bool) {
        let mut set = self.unsure.lock().unwrap_or_else(|e| e.into_inner());
        if unsure {
            set.insert(fingerprint.to_owned());
        } else {
            set.remove(fingerprint);
        }
    }

    async fn find_by_fingerprint(
        &self,
        folder: &str,
        value: &str,
    ) -> Result<Option<String>, Error> {
        let filter = format!(
            "singleValueExtendedProperties/any(ep:ep/id eq '{FINGERPRINT_PROPERTY}' and ep/value eq '{}')",
            value.replace('\'', "''")
        );
        let url = format!(
            "{}/mailFolders/{}/messages?$select=id&$filter={}&$top=1",
            self.user_path,
            seg(folder),
            q(&filter)
        );
        let v = self.get_json(url).await?;
        Ok(v["value"]
            .as_array()
            .and_then(|a| a.first())
            .and_then(|m| m["id"].as_str())
            .map(String::from))
    }

    /// Creates the message (`body`: its JSON, carrying `marker`) and its large attachments;
    /// returns the new id.
    async fn create(
        &self,
        folder: &str,
        bytes: Bytes,
        large: &[o365_migrate_mime::LargeAttachment],
        fingerprint: &str,
        marker: &str,
    ) -> Result<String, Error> {
        if self.is_unsure(fingerprint) {
            // An earlier attempt may have created it, or left a partial copy: look first.
            if let Some(id) = self.find_by_fingerprint(folder, fingerprint).await? {
                self.set_unsure(fingerprint, false);
                return Ok(id);
            }
            let pending = format!("pending:{fingerprint}");
            if let Some(id) = self.find_by_fingerprint(folder, &pending).await? {
                self.delete_message(&id).await?;
            }
            self.set_unsure(fingerprint, false);
        }
        let url = format!("{}/mailFolders/{}/messages", self.user_path, seg(folder));
        // Small creates travel in batches; a message with large attachments goes alone (its
        // attachments follow at once), and so does everything when batching is off: the
        // batcher sends one request at a time, direct calls use all four slots.
        let batched =
            self.batcher.max_batch() > 1 && large.is_empty() && bytes.len() <= MAX_BATCHED_BODY;
        let mut attempts = 0;
        let id = loop {
            attempts += 1;
            let sent = if batched {
                self.batcher.create(url.clone(), bytes.clone()).await
            } else {
                post_create(&self.client, &self.limiter, &url, bytes.clone()).await
            };
            match sent {
                Ok(id) => break id,
                Err(Error::Transport(why)) if attempts < 3 => {
                    // The answer was lost: the message may exist. Look before writing again.
                    self.set_unsure(fingerprint, true);
                    if let Some(id) = self.find_by_fingerprint(folder, marker).await? {
                        if large.is_empty() {
                            self.set_unsure(fingerprint, false);
                            return Ok(id);
                        }
                        // A partial copy: it must go before a new one is written.
                        self.delete_message(&id).await?;
                    }
                    self.set_unsure(fingerprint, false);
                    let _ = why;
                }
                Err(e) => {
                    if matches!(e, Error::Transport(_) | Error::RetriesExhausted { .. }) {
                        // Whether it was created is unknown: the next attempt looks first.
                        self.set_unsure(fingerprint, true);
                    }
                    return Err(e);
                }
            }
        };
        if large.is_empty() {
            return Ok(id);
        }
        match self.attach_large(&id, large, fingerprint).await {
            Ok(()) => Ok(id),
            Err(e) => {
                if self.delete_message(&id).await.is_err() {
                    // The partial copy stays (marked pending): the next attempt removes it
                    // before it writes, or stops with the reason.
                    self.set_unsure(fingerprint, true);
                }
                Err(e)
            }
        }
    }

    async fn attach_large(
        &self,
        id: &str,
        large: &[o365_migrate_mime::LargeAttachment],
        fingerprint: &str,
    ) -> Result<(), Error> {
        for att in large {
            if att.size() >= UPLOAD_SESSION_FROM && self.upload_sessions {
                self.upload(id, att).await?;
            } else if att.size() >= UPLOAD_SESSION_FROM {
                return Err(Error::TooLarge {
                    size: att.size() as u64,
                    limit: UPLOAD_SESSION_FROM as u64,
                });
            } else {
                let url = format!("{}/messages/{}/attachments", self.user_path, seg(id));
                let body =
                    Bytes::from(serde_json::to_vec(&att.to_file_attachment()).unwrap_or_default());
                self.client
                    .call(Call::post_json(url.clone(), Some(&self.limiter), body))
                    .await?
                    .ok("POST", &url)?;
            }
        }
        // Mark the item complete.
        let url = format!("{}/messages/{}", self.user_path, seg(id));
        let body = Bytes::from(json!({"singleValueExtendedProperties": [{"id": FINGERPRINT_PROPERTY, "value": fingerprint}]}).to_string());
        let mut call = Call::post_json(url.clone(), Some(&self.limiter), body);
        call.method = reqwest::Method::PATCH;
        call.idempotent = true;
        self.client.call(call).await?.ok("PATCH", &url)?;
        Ok(())
    }

    async fn upload(
        &self,
        id: &str,
        att: &o365_migrate_mime::LargeAttachment,
    ) -> Result<(), Error> {
        let url = format!(
            "{}/messages/{}/attachments/createUploadSession",
            self.user_path,
            seg(id)
        );
        let mut item = json!({"attachmentType": "file", "name": att.name, "size": att.size(), "isInline": att.is_inline, "contentType": att.content_type});
        if let Some(cid) = &att.content_id {
            item["contentId"] = json!(cid);
        }
        let body = Bytes::from(json!({"AttachmentItem": item}).to_string());
        let reply = self
            .client
            .call(Call::post_json(url.clone(), Some(&self.limiter), body))
            .await?
            .ok("POST", &url)?;
        let upload_url = reply.json(&url)?["uploadUrl"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| Error::Protocol {
                context: "createUploadSession".into(),
                message: "no uploadUrl".into(),
            })?;
        let total = att.data.len();
        let mut start = 0;
        while start < total {
            let end = (start + CHUNK).min(total);
            let call = Call {
                method: reqwest::Method::PUT,
                url: upload_url.clone(),
                mailbox: Some(&self.limiter),
                body: Body::Raw(att.data.slice(start..end), "application/octet-stream"),
                auth: false,
                content_range: Some(format!("bytes {start}-{}/{total}", end - 1)),
                idempotent: false,
                weight: 1,
            };
            let reply = self.client.call(call).await?;
            let last = end == total;
            match reply.status {
                201 if last => {}
                200 | 202 if !last => {}
                _ => return Err(reply.into_error("PUT", "upload session")),
            }
            start = end;
        }
        Ok(())
    }

    async fn write_item(
        &self,
        folder: &FolderHandle,
        item: &WriteItem,
    ) -> Result<WriteOutcome, Error> {
        if item.raw.len() as u64 > self.max_message_bytes {
            return Err(Error::TooLarge {
                size: item.raw.len() as u64,
                limit: self.max_message_bytes,
            });
        }
        let raw = item.raw.clone();
        let flags = item.flags.clone();
        let date = item.internal_date;
        // Conversion decodes every attachment: keep it off the async workers.
        let converted = tokio::task::spawn_blocking(move || {
            o365_migrate_mime::to_graph(&raw, &flags, date.as_ref())
        })
        .await
        .map_err(|e| Error::Conversion(format!("conversion task failed: {e}")))?;
        let mut notes: Vec<String> = converted
            .problems
            .iter()
            .filter(|p| p.severity >= o365_migrate_mime::Severity::Approximated)
            .map(|p| p.to_string())
            .collect();
        let mut graph = converted.value;
        // Each category in the master list (with a colour), spelt as the list spells it.
        let (categories, category_notes) = self.categories.resolve(graph.categories()).await;
        graph.set_categories(categories);
        notes.extend(category_notes);
        let mid = item
            .internet_message_id
            .clone()
            .or_else(|| graph.internet_message_id().map(String::from));
        let index = self.index(&folder.target_id).await?;
        let mut keys = vec![format!("fp:{}", item.fingerprint)];
        if let Some(m) = &mid {
            keys.push(format!("mid:{m}"));
        }
        // The fingerprint goes with the item; while large attachments are still to come it is
        // marked pending.
        let marker = if graph.large_attachments().is_empty() {
            item.fingerprint.clone()
        } else {
            format!("pending:{}", item.fingerprint)
        };
        graph.push_extended_property(FINGERPRINT_PROPERTY, marker.as_str());
        // Serialized once, straight from the message; the rest of it is dropped before the
        // create waits for its turn.
        let bytes =
            Bytes::from(serde_json::to_vec(&graph).map_err(|e| Error::Conversion(e.to_string()))?);
        let large = graph.into_large_attachments();
        write_once(&index, &keys, notes, || async {
            self.create(&folder.target_id, bytes, &large, &item.fingerprint, &marker)
                .await
        })
        .await
    }
}

impl MailboxWriter for GraphMailboxWriter {
    fn mailbox(&self) -> &str {
        &self.mailbox
    }

    fn writes_in_flight(&self) -> Option<usize> {
        // One batch in flight and the next one gathering; at least two per request slot.
        Some((2 * self.batcher.max_batch()).max(8))
    }

    fn set_flags<'a>(
        &'a self,
        _folder: &'a FolderHandle,
        id: &'a str,
        flags: &'a o365_migrate_mime::Flags,
    ) -> BoxFuture<'a, Result<bool, Error>> {
        Box::pin(self.patch_flags(id, flags))
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
        Box::pin(async move {
            let url = format!("{}/messages/{}", self.user_path, seg(id));
            let mut call = self.call(url.clone());
            call.method = reqwest::Method::DELETE;
            let reply = self.client.call(call).await?;
            if reply.status == 404 {
                return Ok(false);
            }
            reply.ok("DELETE", &url)?;
            if let Some(idx) = self.indexes.lock().await.get(&folder.target_id) {
                idx.forget_id(id);
            }
            Ok(true)
        })
    }

    fn throttling(&self) -> crate::writer::ThrottleStats {
        let now = self.limiter.stats();
        crate::writer::ThrottleStats {
            throttled_answers: now
                .throttled_answers
                .saturating_sub(self.throttle_baseline.throttled_answers),
            pauses: now.pauses.saturating_sub(self.throttle_baseline.pauses),
        }
    }

    fn ensure_folders<'a>(
        &'a self,
        plan: &'a [FolderSpec],
    ) -> BoxFuture<'a, Result<Vec<FolderHandle>, Error>> {
        Box::pin(async move {
            let mut cache = self.folders.lock().await;
            let mut out = Vec::with_capacity(plan.len());
            for spec in plan {
                match self.ensure_one(&mut cache, spec, true).await? {
                    Some(h) => out.push(h),
                    None => {
                        return Err(Error::Folder {
                            mailbox: self.mailbox.clone(),
                            path: spec.display_path(),
                            reason: "not created".into(),
                        });
                    }
                }
            }
            Ok(out)
        })
    }

    fn find_folders<'a>(
        &'a self,
        plan: &'a [FolderSpec],
    ) -> BoxFuture<'a, Result<Vec<Option<FolderHandle>>, Error>> {
        Box::pin(async move {
            let mut cache = self.folders.lock().await;
            let mut out = Vec::with_capacity(plan.len());
            for spec in plan {
                out.push(self.ensure_one(&mut cache, spec, false).await?);
            }
            Ok(out)
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
            let v = self
                .get_json(format!(
                    "{}/mailFolders/{}?$select=totalItemCount",
                    self.user_path,
                    seg(&folder.target_id)
                ))
                .await?;
            v["totalItemCount"].as_u64().ok_or_else(|| Error::Protocol {
                context: "mailFolder".into(),
                message: "no totalItemCount".into(),
            })
        })
    }

    fn read_content<'a>(
        &'a self,
        _folder: &'a FolderHandle,
        id: &'a str,
        deep: bool,
    ) -> BoxFuture<'a, Result<Option<ContentSummary>, Error>> {
        Box::pin(async move {
            let url = format!(
                "{}/messages/{}?$select=subject,from,toRecipients,ccRecipients,sentDateTime,categories&$expand={}",
                self.user_path,
                seg(id),
                q("attachments($select=name,size)")
            );
            let reply = self.client.call(self.call(url.clone())).await?;
            if reply.status == 404 {
                return Ok(None);
            }
            let mut summary = ContentSummary::of_graph_json(&reply.ok("GET", &url)?.json(&url)?);
            if deep {
                // The item's MIME as Exchange renders it: the body text and each attachment's
                // bytes, read through the same conversion as the source message.
                let url = format!("{}/messages/{}/$value", self.user_path, seg(id));
                let reply = self.client.call(self.call(url.clone())).await?;
                if reply.status == 404 {
                    return Ok(None);
                }
                let mime = ContentSummary::of_mime(&reply.ok("GET", &url)?.body);
                summary.attachments = mime.attachments;
                summary.text_sha256 = mime.text_sha256;
            }
            Ok(Some(summary))
        })
    }

    fn list<'a>(
        &'a self,
        folder: &'a FolderHandle,
    ) -> BoxFuture<'a, Result<Vec<TargetItem>, Error>> {
        Box::pin(async move {
            let url = self.list_url(
                &folder.target_id,
                "id,internetMessageId,subject,from,receivedDateTime,isDraft,isRead,flag",
            );
            let items = self.client.get_all(url, Some(&self.limiter)).await?;
            Ok(items
                .iter()
                .map(|m| TargetItem {
                    id: m["id"].as_str().unwrap_or_default().into(),
                    internet_message_id: m["internetMessageId"].as_str().map(String::from),
                    fingerprint: Self::fingerprint_of(m),
                    subject: m["subject"].as_str().map(String::from),
                    from: m["from"]["emailAddress"]["address"]
                        .as_str()
                        .map(String::from),
                    received: m["receivedDateTime"].as_str().and_then(parse_iso),
                    is_draft: m["isDraft"].as_bool().unwrap_or(false),
                    is_read: m["isRead"].as_bool().unwrap_or(false),
                    flagged: m["flag"]["flagStatus"].as_str() == Some("flagged"),
                    answered: false,
                    keywords: Vec::new(),
                    size: None,
                })
                .collect())
        })
    }
}
