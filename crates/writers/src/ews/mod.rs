//! EWS target for **on-premises Exchange Server** (2016, 2019, Subscription Edition).
//!
//! Not for Exchange Online: Microsoft switches EWS off there (phased from 2026-10-01, gone
//! 2027-04-01); hosts of Microsoft's clouds are refused unless
//! [`EwsTargetConfig::allow_exchange_online`] is set by name. Use the Graph writer there.
//!
//! * Folders: `FindFolder` (shallow, display names) below distinguished ids (`inbox`,
//!   `sentitems`, `deleteditems`, `junkemail`, `drafts`, `msgfolderroot`; the archive folder is
//!   `Archive` below `msgfolderroot`), `CreateFolder` for missing ones; `ErrorFolderExists` (made
//!   meanwhile) → found again. Names compare case-insensitively, as Exchange does.
//! * Items: `CreateItem MessageDisposition="SaveOnly"` with the raw message as `t:MimeContent`
//!   (base64) and extended properties: `0x0E07` PR_MESSAGE_FLAGS (1 read / 0 unread — without
//!   it the item would be a draft; a source draft gets 8, unsent), `0x0E06` received time
//!   (INTERNALDATE), `0x0039` sent time (`Date:` header), `0x1090` flag status 2 for `\Flagged`,
//!   `0x1081` last verb 102 and `0x1080` icon 261 for `\Answered`; keywords become categories;
//!   the fingerprint goes into a named string property so later runs find the item.
//! * Dedupe: before each create, `FindItem` restricted to the folder on PR_INTERNET_MESSAGE_ID
//!   (0x1035) or the fingerprint property. When the answer to a create is lost, the lookup runs
//!   again before any retry.
//! * Throttling: `ErrorServerBusy` (as a SOAP fault with HTTP 500, or as a response code) is
//!   retried after its `BackOffMilliseconds` (bounded retries and back-off); 503 likewise.
//! * Size: the default EWS request limit (`maxAllowedContentLength`) is 64 MB; base64 grows a
//!   message by 4/3, so messages above [`EwsTargetConfig::max_message_bytes`] (default 47 MiB
//!   raw) fail with [`Error::TooLarge`] before sending.

mod soap;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use tokio::sync::Mutex;

use self::soap::{FolderRef, Node};
use crate::identity::TokenProvider;
use crate::writer::{
    BoxFuture, Capabilities, FolderBase, FolderHandle, FolderSpec, MailboxWriter, Target,
    TargetItem, WellKnownFolder, WriteItem, WriteOutcome,
};
use crate::{Error, SecretString};

/// The default EWS request limit (IIS `maxAllowedContentLength` on the EWS virtual directory).
pub const EWS_REQUEST_LIMIT: u64 = 64 * 1024 * 1024;

/// How to authenticate. `Debug` never shows a secret.
#[derive(Clone)]
#[non_exhaustive]
pub enum EwsAuth {
    /// HTTP Basic (on-premises; needs TLS).
    Basic {
        /// `DOMAIN\user` or UPN of the service account.
        user: String,
        /// Its password.
        password: SecretString,
    },
    /// OAuth bearer tokens (Exchange hybrid modern authentication).
    Bearer(Arc<TokenProvider>),
    /// A fixed bearer token (short jobs, tests).
    StaticBearer(SecretString),
}

impl fmt::Debug for EwsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .finish_non_exhaustive(),
            Self::Bearer(_) => f.write_str("Bearer"),
            Self::StaticBearer(_) => f.write_str("StaticBearer([redacted])"),
        }
    }
}

/// Everything an [`EwsTarget`] needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EwsTargetConfig {
    /// The EWS endpoint, `https://mail.contoso.com/EWS/Exchange.asmx`.
    pub url: String,
    /// Credentials of the service account.
    pub auth: EwsAuth,
    /// Act as each mailbox through `ExchangeImpersonation` (the service account needs the
    /// ApplicationImpersonation role); `false` writes into the service account's own mailbox.
    pub impersonate: bool,
    /// `RequestServerVersion` (default `Exchange2016`; also right for 2019 and SE).
    pub server_version: String,
    /// Largest raw message (default: what fits in [`EWS_REQUEST_LIMIT`] after base64).
    pub max_message_bytes: u64,
    /// Attempts per request when the server is busy (default 5).
    pub max_attempts: u32,
    /// Longest back-off honoured per busy reply (default 5 minutes).
    pub max_backoff: Duration,
    /// Back-off when the server is busy without saying how long (default 5 s).
    pub default_backoff: Duration,
    /// Allow hosts of Microsoft's clouds (Exchange Online), where EWS is being switched off.
    pub allow_exchange_online: bool,
    /// Request timeout (default 5 minutes: a 47 MB upload on a slow link).
    pub timeout: Duration,
}

impl EwsTargetConfig {
    /// A configuration for `url` with Microsoft's default limits.
    pub fn new(url: impl Into<String>, auth: EwsAuth) -> Self {
        Self {
            url: url.into(),
            auth,
            impersonate: true,
            server_version: "Exchange2016".into(),
            max_message_bytes: (EWS_REQUEST_LIMIT - 64 * 1024) / 4 * 3,
            max_attempts: 5,
            max_backoff: Duration::from_secs(300),
            default_backoff: Duration::from_secs(5),
            allow_exchange_online: false,
            timeout: Duration::from_secs(300),
        }
    }
}

/// Hosts of Microsoft's clouds (EWS there is being retired).
fn is_exchange_online(url: &str) -> bool {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', ':'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    [
        "office365.com",
        "outlook.com",
        "office365.us",
        "outlook.cn",
        "office.com",
    ]
    .iter()
    .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

struct Http {
    client: reqwest::Client,
    config: EwsTargetConfig,
}

/// A reply's `*ResponseMessage` or SOAP fault, reduced to what the writer needs.
#[derive(Debug)]
struct Reply {
    root: Node,
}

#[derive(Debug)]
struct Failure {
    code: String,
    text: String,
    backoff: Option<Duration>,
}

fn backoff_of(node: &Node) -> Option<Duration> {
    node.descendants("Value")
        .into_iter()
        .find(|v| v.attr("Name") == Some("BackOffMilliseconds"))
        .and_then(|v| v.text.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
}

impl Reply {
    /// The first response message, or the failure it (or a SOAP fault) reports.
    fn message(&self) -> Result<&Node, Failure> {
        if let Some(fault) = self.root.first("Fault") {
            let code = fault
                .first("ResponseCode")
                .map(|c| c.text.trim().to_string())
                .or_else(|| {
                    fault
                        .child_text("faultcode")
                        .map(|c| c.rsplit(':').next().unwrap_or(c).to_string())
                })
                .unwrap_or_else(|| "SoapFault".into());
            return Err(Failure {
                code,
                text: fault
                    .child_text("faultstring")
                    .unwrap_or_default()
                    .to_string(),
                backoff: backoff_of(fault),
            });
        }
        let msg = self
            .root
            .first("ResponseMessages")
            .and_then(|r| r.children.first())
            .ok_or_else(|| Failure {
                code: "NoResponseMessage".into(),
                text: "the reply holds no response message".into(),
                backoff: None,
            })?;
        if msg.attr("ResponseClass") == Some("Success") {
            return Ok(msg);
        }
        Err(Failure {
            code: msg
                .child_text("ResponseCode")
                .unwrap_or("Error")
                .to_string(),
            text: msg
                .child_text("MessageText")
                .unwrap_or_default()
                .to_string(),
            backoff: backoff_of(msg),
        })
    }
}

impl Http {
    async fn auth(&self, req: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, Error> {
        Ok(match &self.config.auth {
            EwsAuth::Basic { user, password } => req.basic_auth(user, Some(password.expose())),
            EwsAuth::Bearer(tokens) => req.bearer_auth(tokens.token().await?.secret.expose()),
            EwsAuth::StaticBearer(t) => req.bearer_auth(t.expose()),
        })
    }

    /// Sends one operation; retries busy replies after their back-off (bounded). Returns the
    /// parsed reply whose response message is a success, or the typed failure.
    async fn call(
        &self,
        operation: &str,
        mailbox: &str,
        body: &str,
    ) -> Result<Result<Reply, Failure>, Error> {
        let impersonate = self.config.impersonate.then_some(mailbox);
        let envelope = soap::envelope(&self.config.server_version, impersonate, body);
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let req = self
                .client
                .post(&self.config.url)
                .header("Content-Type", "text/xml; charset=utf-8")
                .header(
                    "SOAPAction",
                    format!("\"{}/{operation}\"", soap::NS_MESSAGES),
                )
                .body(envelope.clone());
            let resp = self.auth(req).await?.send().await.map_err(|e| {
                Error::Transport(format!(
                    "EWS {operation}: {}",
                    crate::http::describe_reqwest(&e)
                ))
            })?;
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("Retry-After")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let bytes = resp.bytes().await.map_err(|e| {
                Error::Transport(format!(
                    "EWS {operation}: {}",
                    crate::http::describe_reqwest(&e)
                ))
            })?;
            if status == 401 || status == 403 {
                return Err(Error::MailboxUnavailable {
                    mailbox: mailbox.into(),
                    reason: format!("EWS {operation}: HTTP {status} (access denied)"),
                    hint: Some("check the service account's credentials and its ApplicationImpersonation role (or FullAccess on the mailbox)".into()),
                });
            }
            let parsed = soap::parse(&bytes).ok().map(|root| Reply { root });
            let outcome = match parsed {
                Some(r) => match r.message() {
                    Ok(_) => return Ok(Ok(r)),
                    Err(f) => f,
                },
                None if status == 503 || status == 429 => Failure {
                    code: "ErrorServerBusy".into(),
                    text: format!("HTTP {status}"),
                    backoff: retry_after,
                },
                None => {
                    return Err(Error::Protocol {
                        context: format!("EWS {operation}"),
                        message: format!(
                            "HTTP {status} with a body that is not SOAP XML ({} bytes)",
                            bytes.len()
                        ),
                    });
                }
            };
            if outcome.code != "ErrorServerBusy" {
                return Ok(Err(outcome));
            }
            if attempt >= self.config.max_attempts {
                return Err(Error::RetriesExhausted {
                    attempts: attempt,
                    elapsed: started.elapsed(),
                    last: format!("EWS {operation}: ErrorServerBusy: {}", outcome.text),
                });
            }
            let wait = outcome
                .backoff
                .unwrap_or(self.config.default_backoff)
                .min(self.config.max_backoff);
            tokio::time::sleep(wait).await;
        }
    }
}

/// On-premises Exchange Server through EWS.
pub struct EwsTarget {
    http: Arc<Http>,
}

impl fmt::Debug for EwsTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EwsTarget")
            .field("url", &self.http.config.url)
            .field("auth", &self.http.config.auth)
            .finish_non_exhaustive()
    }
}

impl EwsTarget {
    /// Builds the target; refuses Exchange Online hosts unless allowed by name.
    pub fn new(config: EwsTargetConfig) -> Result<Self, Error> {
        if is_exchange_online(&config.url) && !config.allow_exchange_online {
            return Err(Error::Config(format!(
                "{} is Exchange Online, where Microsoft is switching EWS off (from 2026-10-01, gone 2027-04-01); hint: use the Graph target for Exchange Online (or the IMAP target with XOAUTH2); the EWS target is for Exchange Server 2016/2019/SE",
                config.url
            )));
        }
        let client = crate::http::http_client(config.timeout)?;
        Ok(Self {
            http: Arc::new(Http { client, config }),
        })
    }

    /// Opens a typed writer for `mailbox` (primary SMTP address), checking that its inbox answers.
    pub async fn open(&self, mailbox: &str) -> Result<Arc<EwsMailboxWriter>, Error> {
        let w = EwsMailboxWriter {
            http: self.http.clone(),
            mailbox: mailbox.to_string(),
            children: Mutex::new(HashMap::new()),
        };
        match w
            .http
            .call(
                "GetFolder",
                mailbox,
                &soap::get_folder_count(&FolderRef::Distinguished("inbox")),
            )
            .await?
        {
            Ok(_) => Ok(Arc::new(w)),
            Err(f) => Err(Error::MailboxUnavailable {
                mailbox: mailbox.into(),
                reason: format!("{}: {}", f.code, f.text),
                hint: Some(
                    "check the address and that the service account may impersonate it".into(),
                ),
            }),
        }
    }
}

impl Target for EwsTarget {
    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities::keeps_state("ews");
        c.max_message_bytes = Some(self.http.config.max_message_bytes);
        c.with_exchange_folder_names()
    }

    fn check(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            // Without a mailbox only the endpoint and credentials can be checked: an
            // unauthenticated or wrong URL fails here.
            let r = self
                .http
                .call(
                    "GetFolder",
                    "",
                    &soap::get_folder_count(&FolderRef::Distinguished("msgfolderroot")),
                )
                .await;
            match r {
                Ok(_) => Ok(()),
                Err(Error::MailboxUnavailable { reason, hint, .. }) => Err(Error::Auth {
                    message: reason,
                    hint,
                }),
                Err(e) => Err(e),
            }
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

/// Writes into one Exchange Server mailbox.
pub struct EwsMailboxWriter {
    http: Arc<Http>,
    mailbox: String,
    /// parent (encoded) → lower-case display name → folder id.
    children: Mutex<HashMap<String, HashMap<String, String>>>,
}

impl fmt::Debug for EwsMailboxWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EwsMailboxWriter")
            .field("mailbox", &self.mailbox)
            .finish_non_exhaustive()
    }
}

fn iso(unix: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
}

fn distinguished(k: WellKnownFolder) -> Option<&'static str> {
    match k {
        WellKnownFolder::Inbox => Some("inbox"),
        WellKnownFolder::SentItems => Some("sentitems"),
        WellKnownFolder::DeletedItems => Some("deleteditems"),
        WellKnownFolder::JunkEmail => Some("junkemail"),
        WellKnownFolder::Drafts => Some("drafts"),
        // `archive` is not a distinguished id on every Exchange Server build: use a folder
        // named Archive below the top of the mailbox.
        WellKnownFolder::Archive => None,
    }
}

impl EwsMailboxWriter {
    fn refused(&self, operation: &str, context: &str, f: Failure) -> Error {
        match f.code.as_str() {
            "ErrorMessageSizeExceeded" | "ErrorRequestTooLarge" => Error::TooLarge {
                size: 0,
                limit: self.http.config.max_message_bytes,
            },
            _ => Error::Refused {
                operation: operation.into(),
                context: context.into(),
                code: f.code,
                message: f.text,
            },
        }
    }

    async fn children(
        &self,
        parent: &FolderRef,
        reload: bool,
    ) -> Result<HashMap<String, String>, Error> {
        let key = parent.encode();
        if !reload && let Some(c) = self.children.lock().await.get(&key) {
            return Ok(c.clone());
        }
        let mut map = HashMap::new();
        let mut offset = 0;
        loop {
            let reply = self
                .http
                .call(
                    "FindFolder",
                    &self.mailbox,
                    &soap::find_folder(parent, offset),
                )
                .await?
                .map_err(|f| self.refused("FindFolder", &key, f))?;
            let msg = reply
                .message()
                .map_err(|f| self.refused("FindFolder", &key, f))?;
            let folders = msg.descendants("Folder");
            for f in &folders {
                if let (Some(id), Some(name)) = (
                    f.child("FolderId").and_then(|i| i.attr("Id")),
                    f.child_text("DisplayName"),
                ) {
                    map.insert(name.to_lowercase(), id.to_string());
                }
            }
            let last = msg
                .child("RootFolder")
                .and_then(|r| r.attr("IncludesLastItemInRange"))
                .is_none_or(|v| v == "true");
            if last || folders.is_empty() {
                break;
            }
            offset += folders.len();
        }
        self.children.lock().await.insert(key, map.clone());
        Ok(map)
    }

    async fn child(&self, parent: &FolderRef, name: &str) -> Result<(String, bool), Error> {
        let lower = name.to_lowercase();
        if let Some(id) = self.children(parent, false).await?.get(&lower) {
            return Ok((id.clone(), false));
        }
        let ctx = format!("{} / {name}", parent.encode());
        let reply = self
            .http
            .call(
                "CreateFolder",
                &self.mailbox,
                &soap::create_folder(parent, name),
            )
            .await?;
        let id = match reply {
            Ok(r) => r
                .root
                .first("FolderId")
                .and_then(|f| f.attr("Id"))
                .map(String::from)
                .ok_or_else(|| Error::Protocol {
                    context: "EWS CreateFolder".into(),
                    message: "no FolderId in the reply".into(),
                })?,
            Err(f) if f.code == "ErrorFolderExists" => {
                // Created meanwhile (or differs only in case): look again.
                self.children(parent, true)
                    .await?
                    .get(&lower)
                    .cloned()
                    .ok_or_else(|| Error::Folder {
                        mailbox: self.mailbox.clone(),
                        path: ctx.clone(),
                        reason: "ErrorFolderExists, but FindFolder does not list it".into(),
                    })?
            }
            Err(f) => {
                return Err(Error::Folder {
                    mailbox: self.mailbox.clone(),
                    path: ctx,
                    reason: format!("{}: {}", f.code, f.text),
                });
            }
        };
        self.children
            .lock()
            .await
            .entry(parent.encode())
            .or_default()
            .insert(lower, id.clone());
        Ok((id, true))
    }

    async fn ensure_one(&self, spec: &FolderSpec) -> Result<FolderHandle, Error> {
        let mut created = false;
        let mut current = match &spec.base {
            FolderBase::Root => FolderRef::Distinguished("msgfolderroot"),
            FolderBase::WellKnown(k) => match distinguished(*k) {
                Some(d) => FolderRef::Distinguished(d),
                None => {
                    let (id, c) = self
                        .child(&FolderRef::Distinguished("msgfolderroot"), "Archive")
                        .await?;
                    created |= c;
                    FolderRef::Id(id)
                }
            },
        };
        for seg in &spec.path {
            let name = seg.trim();
            if name.is_empty() {
                return Err(Error::Folder {
                    mailbox: self.mailbox.clone(),
                    path: spec.display_path(),
                    reason: "empty folder name".into(),
                });
            }
            let (id, c) = self.child(&current, name).await?;
            created |= c;
            current = FolderRef::Id(id);
        }
        if matches!(current, FolderRef::Distinguished("msgfolderroot")) {
            return Err(Error::Folder {
                mailbox: self.mailbox.clone(),
                path: spec.display_path(),
                reason: "the plan names no folder".into(),
            });
        }
        Ok(FolderHandle {
            source: spec.source.clone(),
            target_id: current.encode(),
            display_path: spec.display_path(),
            created,
            notes: Vec::new(),
        })
    }

    async fn find_existing(
        &self,
        folder: &FolderRef,
        mid: Option<&str>,
        fingerprint: &str,
    ) -> Result<Option<String>, Error> {
        let reply = self
            .http
            .call(
                "FindItem",
                &self.mailbox,
                &soap::find_existing(folder, mid, fingerprint),
            )
            .await?
            .map_err(|f| self.refused("FindItem", &folder.encode(), f))?;
        Ok(reply
            .root
            .first("ItemId")
            .and_then(|i| i.attr("Id"))
            .map(String::from))
    }

    fn create_body(&self, folder: &FolderRef, item: &WriteItem) -> String {
        let f = &item.flags;
        let message_flags = if f.draft { 8 } else { 0 } | u8::from(f.seen);
        let mut props = vec![soap::ext_prop(
            &soap::tag_uri("0x0E07", "Integer"),
            &message_flags.to_string(),
        )];
        if let Some(received) = item.internal_date.and_then(|d| iso(d.unix_seconds())) {
            props.push(soap::ext_prop(
                &soap::tag_uri("0x0E06", "SystemTime"),
                &received,
            ));
        }
        if let Some(sent) = sent_date(&item.raw) {
            props.push(soap::ext_prop(
                &soap::tag_uri("0x0039", "SystemTime"),
                &sent,
            ));
        }
        if f.flagged {
            props.push(soap::ext_prop(&soap::tag_uri("0x1090", "Integer"), "2"));
        }
        if f.answered {
            props.push(soap::ext_prop(&soap::tag_uri("0x1081", "Integer"), "102"));
            props.push(soap::ext_prop(&soap::tag_uri("0x1080", "Integer"), "261"));
        }
        props.push(soap::ext_prop(&soap::fingerprint_uri(), &item.fingerprint));
        let categories = if f.keywords.is_empty() {
            String::new()
        } else {
            let list: String = f
                .keywords
                .iter()
                .map(|k| format!("<t:String>{}</t:String>", soap::esc(k)))
                .collect();
            format!("<t:Categories>{list}</t:Categories>")
        };
        let mime = base64::engine::general_purpose::STANDARD.encode(&item.raw);
        format!(
            r#"<m:CreateItem MessageDisposition="SaveOnly"><m:SavedItemFolderId>{}</m:SavedItemFolderId><m:Items><t:Message><t:MimeContent CharacterSet="UTF-8">{mime}</t:MimeContent>{categories}{}</t:Message></m:Items></m:CreateItem>"#,
            folder.xml(),
            props.concat()
        )
    }

    async fn write_item(
        &self,
        folder: &FolderHandle,
        item: &WriteItem,
    ) -> Result<WriteOutcome, Error> {
        let limit = self.http.config.max_message_bytes;
        if item.raw.len() as u64 > limit {
            return Err(Error::TooLarge {
                size: item.raw.len() as u64,
                limit,
            });
        }
        let fref = FolderRef::decode(&folder.target_id);
        let mid = item
            .internet_message_id
            .clone()
            .or_else(|| o365_migrate_mime::fingerprint(&item.raw).message_id);
        if let Some(id) = self
            .find_existing(&fref, mid.as_deref(), &item.fingerprint)
            .await?
        {
            return Ok(WriteOutcome::AlreadyPresent { target_id: id });
        }
        let body = self.create_body(&fref, item);
        let ctx = folder.display_path.clone();
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.http.call("CreateItem", &self.mailbox, &body).await {
                Ok(Ok(reply)) => {
                    let id = reply
                        .root
                        .first("ItemId")
                        .and_then(|i| i.attr("Id"))
                        .unwrap_or_default()
                        .to_string();
                    return Ok(WriteOutcome::Written {
                        target_id: id,
                        notes: Vec::new(),
                    });
                }
                Ok(Err(f)) => return Err(self.refused("CreateItem", &ctx, f)),
                Err(Error::Transport(why)) if attempts < 3 => {
                    // The answer was lost: the item may exist. Look before writing again.
                    if let Some(id) = self
                        .find_existing(&fref, mid.as_deref(), &item.fingerprint)
                        .await?
                    {
                        return Ok(WriteOutcome::Written {
                            target_id: id,
                            notes: vec![format!("created although the answer was lost ({why})")],
                        });
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn list_items(&self, folder: &FolderHandle) -> Result<Vec<TargetItem>, Error> {
        let fref = FolderRef::decode(&folder.target_id);
        let mut out = Vec::new();
        loop {
            let reply = self
                .http
                .call(
                    "FindItem",
                    &self.mailbox,
                    &soap::list_items(&fref, out.len()),
                )
                .await?
                .map_err(|f| self.refused("FindItem", &folder.display_path, f))?;
            let msg = reply
                .message()
                .map_err(|f| self.refused("FindItem", &folder.display_path, f))?;
            let items = msg.descendants("Message");
            let n = items.len();
            for m in items {
                out.push(target_item(m));
            }
            let last = msg
                .child("RootFolder")
                .and_then(|r| r.attr("IncludesLastItemInRange"))
                .is_none_or(|v| v == "true");
            if last || n == 0 {
                break;
            }
        }
        Ok(out)
    }
}

/// The `Date:` header as RFC 3339 UTC, if the message has a valid one.
fn sent_date(raw: &[u8]) -> Option<String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(raw.len().min(256 * 1024));
    let date = o365_migrate_mime::normalize(&raw[..end]).value.date?;
    let t =
        time::OffsetDateTime::parse(&date, &time::format_description::well_known::Rfc3339).ok()?;
    iso(t.unix_timestamp())
}

fn target_item(m: &Node) -> TargetItem {
    let ext = |tag: &str| {
        m.children
            .iter()
            .filter(|c| c.name == "ExtendedProperty")
            .find(|p| {
                p.child("ExtendedFieldURI").is_some_and(|u| {
                    u.attr("PropertyTag")
                        .is_some_and(|t| t.eq_ignore_ascii_case(tag))
                        || u.attr("PropertyName") == Some(tag)
                })
            })
            .and_then(|p| p.child_text("Value"))
            .map(String::from)
    };
    let received = m
        .child_text("DateTimeReceived")
        .and_then(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        })
        .and_then(|t| o365_migrate_mime::InternalDate::from_unix_utc(t.unix_timestamp()));
    TargetItem {
        id: m
            .child("ItemId")
            .and_then(|i| i.attr("Id"))
            .unwrap_or_default()
            .into(),
        internet_message_id: m.child_text("InternetMessageId").map(String::from),
        fingerprint: ext(soap::FINGERPRINT_NAME),
        subject: m.child_text("Subject").map(String::from),
        from: m
            .child("From")
            .and_then(|f| f.first("EmailAddress"))
            .map(|e| e.text.trim().to_string()),
        received,
        is_draft: m.child_text("IsDraft") == Some("true"),
        is_read: m.child_text("IsRead") == Some("true"),
        flagged: ext("0x1090").as_deref() == Some("2"),
        answered: ext("0x1081")
            .as_deref()
            .is_some_and(|v| v == "102" || v == "103"),
        keywords: m
            .child("Categories")
            .map(|c| {
                c.children
                    .iter()
                    .map(|s| s.text.trim().to_string())
                    .collect()
            })
            .unwrap_or_default(),
        size: m.child_text("Size").and_then(|s| s.parse().ok()),
    }
}

impl MailboxWriter for EwsMailboxWriter {
    fn mailbox(&self) -> &str {
        &self.mailbox
    }

    fn ensure_folders<'a>(
        &'a self,
        plan: &'a [FolderSpec],
    ) -> BoxFuture<'a, Result<Vec<FolderHandle>, Error>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(plan.len());
            for spec in plan {
                out.push(self.ensure_one(spec).await?);
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
            let fref = FolderRef::decode(&folder.target_id);
            let reply = self
                .http
                .call("GetFolder", &self.mailbox, &soap::get_folder_count(&fref))
                .await?
                .map_err(|f| self.refused("GetFolder", &folder.display_path, f))?;
            reply
                .root
                .first("TotalCount")
                .and_then(|c| c.text.trim().parse().ok())
                .ok_or_else(|| Error::Protocol {
                    context: "EWS GetFolder".into(),
                    message: "no TotalCount".into(),
                })
        })
    }

    fn list<'a>(
        &'a self,
        folder: &'a FolderHandle,
    ) -> BoxFuture<'a, Result<Vec<TargetItem>, Error>> {
        Box::pin(self.list_items(folder))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_online_hosts_are_recognised() {
        assert!(is_exchange_online(
            "https://outlook.office365.com/EWS/Exchange.asmx"
        ));
        assert!(is_exchange_online(
            "https://OUTLOOK.office365.us/EWS/Exchange.asmx"
        ));
        assert!(is_exchange_online(
            "https://partner.outlook.cn/EWS/Exchange.asmx"
        ));
        assert!(!is_exchange_online(
            "https://mail.contoso.com/EWS/Exchange.asmx"
        ));
        assert!(!is_exchange_online("https://notoffice365.com.example/EWS"));
    }

    #[test]
    fn busy_fault_and_error_messages_are_read() {
        let fault = br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:ErrorServerBusy</faultcode><faultstring xml:lang="en-US">The server cannot service this request right now. Try again later.</faultstring><detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">ErrorServerBusy</e:ResponseCode><t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><t:Value Name="BackOffMilliseconds">297749</t:Value></t:MessageXml></detail></s:Fault></s:Body></s:Envelope>"#;
        let r = Reply {
            root: soap::parse(fault).unwrap(),
        };
        let f = r.message().unwrap_err();
        assert_eq!(f.code, "ErrorServerBusy");
        assert_eq!(f.backoff, Some(Duration::from_millis(297_749)));
        assert_eq!(
            sent_date(b"Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n\r\nx").as_deref(),
            Some("2003-07-01T08:52:37Z")
        );
    }
}
