//! The migration pipeline: `run`, `rescan`, `verify`, `plan`, and the connection tests.
//!
//! [`Engine`] ties the pieces together: the job file, the source IMAP server (through
//! `o365-migrate-imap`), the target writer (through `o365-migrate-target`), the state store and
//! a [`Reporter`]. Every message ends migrated, skipped with a reason, or failed with a reason.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use o365_migrate_credentials as creds;
use o365_migrate_imap as imap;
use o365_migrate_target as target;
use serde::Serialize;
use target::{FolderSpec, MailboxWriter};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::config::{Job, LoginMode, Security, TargetKind};
use crate::error::{Error, Result};
use crate::folders::{FolderMapper, FolderTarget, MappedFolder, SourceFolder};
use crate::report::{Event, Reporter};
use crate::state::{
    BatchWriter, EventRecord, FolderId, ItemMeta, ItemOutcome, ItemStatus, MailboxId, PlannedItem,
    RunId, RunKind, RunOutcome, StateStore,
};

/// Header fields fetched for metadata (enough for the dedupe identity and reports).
const HEADER_FIELDS: [&str; 5] = ["Message-ID", "Date", "From", "Subject", "Received"];
/// Messages per body fetch command; [`BODY_FETCHES_IN_FLIGHT`] of them are pipelined within a
/// chunk of four.
const BODY_BATCH: usize = 50;
/// Body FETCH commands in flight on the source connection.
const BODY_FETCHES_IN_FLIGHT: usize = 2;
/// Writes in flight per mailbox (the writer applies its own, usually lower, limit; the bytes
/// they hold are capped by `[limits] in_flight_bytes`). Measured by `cargo xtask bench
/// side-by-side`: 8 left the source connection idle while the target caught up.
const WRITES_PER_MAILBOX: usize = 64;

/// One source mailbox and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailboxPair {
    /// Source login (as in the credentials file).
    pub source: String,
    /// Target mailbox address / UPN.
    pub target: String,
}

/// A shared stop flag: set it (e.g. on Ctrl-C) and the pipeline starts no new item; items in
/// flight finish and are recorded.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    /// Clears the flag so the engine can run again (e.g. when a time window reopens).
    pub fn clear(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    /// A flag that is not set.
    pub fn new() -> StopFlag {
        StopFlag::default()
    }
    /// Asks the pipeline to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The engine for one job.
pub struct Engine {
    pub(crate) job: Job,
    pub(crate) credentials: creds::Credentials,
    login_mode: creds::LoginMode,
    store: Arc<dyn StateStore>,
    target: Arc<dyn target::Target>,
    pub(crate) graph: Option<Arc<target::graph::GraphClient>>,
    pub(crate) mapping: crate::matching::MappingFile,
    reporter: Arc<dyn Reporter>,
    budget: imap::ByteBudget,
    stop: StopFlag,
    source_client: imap::ClientConfig,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("job", &self.job.file)
            .field("mailboxes", &self.credentials.len())
            .finish_non_exhaustive()
    }
}

/// Counts of one run over all mailboxes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunTotals {
    /// Mailboxes processed.
    pub mailboxes: u64,
    /// Mailboxes that stopped with an error.
    pub mailbox_errors: Vec<String>,
    /// Items migrated in this run.
    pub migrated: u64,
    /// Items skipped in this run.
    pub skipped: u64,
    /// Items failed in this run.
    pub failed: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Whether the run was stopped early (Ctrl-C).
    pub stopped: bool,
}

#[derive(Default)]
struct Tally {
    migrated: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
}

/// Builds the target writer named by the job's `[target]`. `credentials` supplies the per-user
/// passwords of an IMAP target in `per-user` login mode (the same password as the source,
/// logging in as the target address).
pub fn build_target(
    job: &Job,
    credentials: &creds::Credentials,
) -> Result<Arc<dyn target::Target>> {
    Ok(build_target_parts(job, credentials)?.0)
}

/// A target and, for Graph, its client.
type TargetParts = (
    Arc<dyn target::Target>,
    Option<Arc<target::graph::GraphClient>>,
);

/// [`build_target`] plus, for the Graph target, its client (directory and provisioning calls).
fn build_target_parts(job: &Job, credentials: &creds::Credentials) -> Result<TargetParts> {
    match job.target.kind {
        TargetKind::Graph => {
            let g = job.target.graph.as_ref().ok_or_else(|| Error::Pipeline {
                context: "target".into(),
                message: "[target.graph] is missing".into(),
                hint: Some("add a [target.graph] section (see `o365-migrate init`)".into()),
            })?;
            let credential = graph_credential(job, g)?;
            let mut endpoints = match g.authority_url.as_deref() {
                Some(a) => target::Endpoints::emulator(a),
                None => g.cloud.endpoints(),
            };
            if let Some(url) = &g.graph_url {
                endpoints.graph = url.trim_end_matches('/').to_owned();
            }
            let mut cfg = target::graph::GraphTargetConfig::new(
                g.tenant.clone(),
                g.client_id.clone(),
                credential,
                endpoints,
            );
            cfg.user_creation = job.matching.allow_create;
            let t = target::graph::GraphTarget::new(cfg).map_err(|e| target_err("target", &e))?;
            let client = t.client().clone();
            Ok((Arc::new(t), Some(client)))
        }
        TargetKind::Imap => {
            let t = job.target.imap.as_ref().ok_or_else(|| Error::Pipeline {
                context: "target".into(),
                message: "[target.imap] is missing".into(),
                hint: Some("add a [target.imap] section (see `o365-migrate init`)".into()),
            })?;
            let client = imap_client_config(
                &t.host,
                t.port(),
                t.security,
                t.accept_invalid_certs,
                t.ca_file.as_ref().map(|p| job.resolve_path(p)).as_deref(),
            )?;
            let login = match t.login {
                LoginMode::Admin => {
                    let a = t.admin.as_ref().ok_or_else(|| Error::Pipeline {
                        context: "target.imap".into(),
                        message: "login = \"admin\" needs [target.imap.admin]".into(),
                        hint: Some("add [target.imap.admin] with user and secret".into()),
                    })?;
                    target::imap::ImapLogin::MasterSeparator {
                        master: a.user.clone(),
                        password: target::SecretString::new(a.secret.resolve()?.expose()),
                        separator: '*',
                    }
                }
                LoginMode::PerUser => {
                    let file = job.source.credentials.display().to_string();
                    let mut passwords = HashMap::new();
                    for r in credentials.records() {
                        let l = creds::LoginMode::PerUser.login_for(r, &file).map_err(|e| {
                            Error::Pipeline {
                                context: format!("target login for {}", r.login),
                                message: e.to_string(),
                                hint: None,
                            }
                        })?;
                        let addr = r.target.clone().unwrap_or_else(|| r.login.clone());
                        passwords.insert(addr, target::SecretString::new(l.secret.expose()));
                    }
                    target::imap::ImapLogin::PerUser {
                        passwords,
                        mechanism: target::imap::PasswordMechanism::Login,
                    }
                }
            };
            let mut cfg = target::imap::ImapTargetConfig::new(client, login);
            cfg.connections_per_mailbox = (t.connections_per_host.max(1) as usize).min(4);
            Ok((Arc::new(target::imap::ImapTarget::new(cfg)), None))
        }
        TargetKind::Ews => {
            let e = job.target.ews.as_ref().ok_or_else(|| Error::Pipeline {
                context: "target".into(),
                message: "[target.ews] is missing".into(),
                hint: Some("add a [target.ews] section (see `o365-migrate init`)".into()),
            })?;
            if e.accept_invalid_certs || e.ca_file.is_some() {
                return Err(Error::Pipeline {
                    context: "target.ews".into(),
                    message:
                        "accept_invalid_certs and ca_file are not supported by the EWS writer yet"
                            .into(),
                    hint: Some(
                        "install the Exchange CA in the system trust store and remove these keys"
                            .into(),
                    ),
                });
            }
            let secret = target::SecretString::new(e.secret.resolve()?.expose());
            let auth = match e.auth {
                crate::config::EwsAuth::Basic => target::ews::EwsAuth::Basic {
                    user: e.user.clone().ok_or_else(|| Error::Pipeline {
                        context: "target.ews".into(),
                        message: "auth = \"basic\" needs user".into(),
                        hint: Some("set user = \"svc-migrate@example.com\"".into()),
                    })?,
                    password: secret,
                },
                crate::config::EwsAuth::Bearer => target::ews::EwsAuth::StaticBearer(secret),
            };
            let cfg = target::ews::EwsTargetConfig::new(e.url.clone(), auth);
            let t = target::ews::EwsTarget::new(cfg).map_err(|e| target_err("target.ews", &e))?;
            Ok((Arc::new(t), None))
        }
        TargetKind::Eml => {
            let e = job.target.eml.as_ref().ok_or_else(|| Error::Pipeline {
                context: "target".into(),
                message: "[target.eml] is missing".into(),
                hint: Some("add [target.eml] directory = \"export\"".into()),
            })?;
            Ok((
                Arc::new(target::eml::EmlTarget::new(job.resolve_path(&e.directory))),
                None,
            ))
        }
    }
}

/// The Graph credential: a client secret, or a certificate (PEM with its key, or PKCS#12).
fn graph_credential(
    job: &Job,
    g: &crate::config::GraphTarget,
) -> Result<target::identity::Credential> {
    let bad = |message: String, hint: &str| Error::Pipeline {
        context: "target.graph".into(),
        message,
        hint: Some(hint.to_owned()),
    };
    match (&g.client_secret, &g.certificate) {
        (Some(r), None) => Ok(target::identity::Credential::ClientSecret(
            target::SecretString::new(r.resolve()?.expose()),
        )),
        (None, Some(path)) => {
            let path = job.resolve_path(path);
            let what = path.display().to_string();
            let bytes = std::fs::read(&path).map_err(|e| {
                bad(
                    format!("cannot read certificate {what}: {e}"),
                    "check [target.graph] certificate (a .pem with the key, or a .pfx)",
                )
            })?;
            let is_pfx = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("pfx") || e.eq_ignore_ascii_case("p12"));
            let cert = if is_pfx {
                let password = match &g.certificate_secret {
                    Some(r) => target::SecretString::new(r.resolve()?.expose()),
                    None => target::SecretString::new(""),
                };
                target::identity::CertificateCredential::from_pfx(&bytes, &password, &what)
            } else {
                target::identity::CertificateCredential::from_pem(&bytes, &what)
            }
            .map_err(|e| target_err("target.graph certificate", &e))?;
            Ok(target::identity::Credential::Certificate(Arc::new(cert)))
        }
        (Some(_), Some(_)) => Err(bad(
            "both client_secret and certificate are set".into(),
            "keep exactly one of them",
        )),
        (None, None) => Err(bad(
            "neither client_secret nor certificate is set".into(),
            "set client_secret = \"env:NAME\" or certificate = \"app.pem\"",
        )),
    }
}

/// An IMAP client configuration from job settings.
fn imap_client_config(
    host: &str,
    port: u16,
    security: Security,
    accept_invalid_certs: bool,
    ca_file: Option<&std::path::Path>,
) -> Result<imap::ClientConfig> {
    let security = match security {
        Security::Tls => imap::Security::Tls,
        Security::Starttls => imap::Security::StartTls,
        Security::None => imap::Security::Plaintext,
    };
    let mut c = imap::ClientConfig::new(host.to_owned(), port, security);
    c.tls.danger_accept_invalid_certificates = accept_invalid_certs;
    if let Some(p) = ca_file {
        c.tls.extra_ca_pem = Some(std::fs::read(p).map_err(|e| Error::Pipeline {
            context: format!("ca_file {}", p.display()),
            message: e.to_string(),
            hint: Some("check the path".into()),
        })?);
    }
    Ok(c)
}

fn target_err(context: &str, e: &target::Error) -> Error {
    Error::Pipeline {
        context: context.to_owned(),
        message: e.to_string(),
        hint: None,
    }
}

fn source_err(context: &str, e: &imap::Error) -> Error {
    if e.is_retryable() {
        return Error::SourceConnection {
            context: context.to_owned(),
            message: e.to_string(),
        };
    }
    Error::Pipeline {
        context: context.to_owned(),
        message: e.to_string(),
        hint: None,
    }
}

/// Attempts per mailbox and run when the source connection fails (dropped, reset, stalled):
/// each attempt reconnects and resumes from the state store.
const SOURCE_ATTEMPTS: u32 = 3;

/// The target folder spec for a mapped source folder.
pub fn folder_spec(source: &str, t: &FolderTarget) -> FolderSpec {
    match t.parent {
        Some(k) => FolderSpec::under(source, k, t.path.clone()),
        None => FolderSpec::at_root(source, t.path.clone()),
    }
}

/// Reads the credentials file named by the job and the login mode.
pub fn load_credentials(job: &Job) -> Result<(creds::Credentials, creds::LoginMode)> {
    let path = job.resolve_path(&job.source.credentials);
    let mut opts = creds::ReadOptions::default();
    if job.source.login == LoginMode::Admin {
        opts = opts.admin_mode();
    }
    let credentials = creds::load_file(&path, &opts).map_err(|e| Error::Pipeline {
        context: format!("credentials file {}", path.display()),
        message: e.to_string(),
        hint: Some("run `o365-migrate credentials check FILE` for details".into()),
    })?;
    let mode = match job.source.login {
        LoginMode::PerUser => creds::LoginMode::PerUser,
        LoginMode::Admin => {
            let a = job.source.admin.as_ref().ok_or_else(|| Error::Pipeline {
                context: "source".into(),
                message: "login = \"admin\" needs [source.admin]".into(),
                hint: Some("add [source.admin] with user and secret".into()),
            })?;
            let secret = a.secret.resolve()?;
            let admin = creds::AdminLogin::new(
                a.user.clone(),
                creds::Secret::new(secret.expose()),
                creds::AdminStyle::MasterUserSeparator('*'),
            )
            .map_err(|e| Error::Pipeline {
                context: "source.admin".into(),
                message: e.to_string(),
                hint: None,
            })?;
            creds::LoginMode::Admin(admin)
        }
    };
    Ok((credentials, mode))
}

/// Item outcome for a message fetched from the source.
struct Work {
    folder: FolderId,
    folder_path: String,
    uidvalidity: u32,
    uid: u32,
    meta: ItemMeta,
}

impl Engine {
    /// Creates the engine: reads the credentials, builds the target, opens nothing yet.
    pub fn new(
        job: Job,
        store: Arc<dyn StateStore>,
        reporter: Arc<dyn Reporter>,
        stop: StopFlag,
    ) -> Result<Engine> {
        let (credentials, login_mode) = load_credentials(&job)?;
        let (target, graph) = build_target_parts(&job, &credentials)?;
        let mapping = crate::matching::load_mapping(&job)?;
        let budget = imap::ByteBudget::new(
            usize::try_from(job.limits.in_flight_bytes.0).unwrap_or(usize::MAX),
        );
        let mut source_client = imap_client_config(
            &job.source.host,
            job.source.port(),
            job.source.security,
            job.source.accept_invalid_certs,
            job.source
                .ca_file
                .as_ref()
                .map(|p| job.resolve_path(p))
                .as_deref(),
        )?;
        source_client.timeouts.read = Duration::from_secs(job.source.read_timeout_seconds.max(1));
        Ok(Engine {
            job,
            credentials,
            login_mode,
            store,
            target,
            graph,
            mapping,
            reporter,
            budget,
            stop,
            source_client,
        })
    }

    /// The job.
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// The state store.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// The mailbox pairs a run migrates (see [`crate::matching`] for the decision chain;
    /// [`Engine::pairing`] also gives the sources left out, with the reason).
    pub fn pairs(&self) -> Vec<MailboxPair> {
        self.pairing().0
    }

    fn client_config(&self) -> imap::ClientConfig {
        let mut c = self.source_client.clone();
        c.budget = Some(self.budget.clone());
        c
    }

    fn auth_for(&self, login: &str) -> Result<imap::Auth> {
        let rec = self
            .credentials
            .find_login(login)
            .ok_or_else(|| Error::Pipeline {
                context: format!("mailbox {login}"),
                message: "not in the credentials file".into(),
                hint: None,
            })?;
        let file = self.job.source.credentials.display().to_string();
        let l = self
            .login_mode
            .login_for(rec, &file)
            .map_err(|e| Error::Pipeline {
                context: format!("mailbox {login}"),
                message: e.to_string(),
                hint: None,
            })?;
        let password = imap::Secret::new(l.secret.expose());
        Ok(match l.authzid {
            None => imap::Auth::Login {
                user: l.authcid,
                password,
            },
            Some(z) => imap::Auth::Plain {
                authorize_as: Some(z),
                user: l.authcid,
                password,
            },
        })
    }

    async fn open_source(&self, login: &str) -> Result<imap::Session> {
        let auth = self.auth_for(login)?;
        let cfg = self.client_config();
        let mut last = None;
        for attempt in 0..3u32 {
            match imap::Session::open(&cfg, &auth).await {
                Ok(s) => return Ok(s),
                Err(e) if e.is_retryable() && attempt < 2 => {
                    let wait = e
                        .retry_after()
                        .unwrap_or(Duration::from_millis(500 << attempt));
                    last = Some(e);
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(source_err(&format!("source login {login}"), &e)),
            }
        }
        Err(match last {
            Some(e) => source_err(&format!("source login {login}"), &e),
            None => Error::Pipeline {
                context: format!("source login {login}"),
                message: "gave up".into(),
                hint: None,
            },
        })
    }

    /// Lists and maps a mailbox's folders.
    async fn mapped_folders(&self, session: &mut imap::Session) -> Result<Vec<MappedFolder>> {
        let list = session
            .list_mailboxes(false)
            .await
            .map_err(|e| source_err("LIST", &e))?;
        let folders: Vec<SourceFolder> = list
            .iter()
            .filter(|m| m.selectable)
            .map(|m| SourceFolder {
                path: m.name.clone(),
                delimiter: m.delimiter,
                attributes: m.attributes.clone(),
            })
            .collect();
        let mapper = FolderMapper::new(&self.job.folders, &self.job.filters)?;
        Ok(mapper.map(&folders))
    }

    /// `source test`: logs in to every mailbox (several at once), one result per mailbox.
    pub async fn source_test(&self) -> Vec<(String, std::result::Result<usize, String>)> {
        let sem = Arc::new(Semaphore::new(
            self.job.source.connections_per_host.max(1) as usize
        ));
        let mut out = Vec::new();
        let futs = self.pairs().into_iter().map(|p| {
            let sem = sem.clone();
            async move {
                let _permit = sem.acquire().await;
                let r = match self.open_source(&p.source).await {
                    Ok(mut s) => {
                        let r = s
                            .list_mailboxes(false)
                            .await
                            .map(|l| l.len())
                            .map_err(|e| e.to_string());
                        let _ = s.logout().await;
                        r
                    }
                    Err(e) => Err(e.to_string()),
                };
                (p.source, r)
            }
        });
        for r in join_all(futs).await {
            out.push(r);
        }
        out
    }

    /// `target test`: the target's own check, then each target mailbox opened.
    pub async fn target_test(
        &self,
    ) -> (
        std::result::Result<(), String>,
        Vec<(String, std::result::Result<(), String>)>,
    ) {
        let check = self.target.check().await.map_err(|e| e.to_string());
        let mut per = Vec::new();
        for p in self.pairs() {
            let r = self
                .target
                .open_mailbox(&p.target)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string());
            per.push((p.target, r));
        }
        (check, per)
    }

    /// Runs `run` or `rescan` over the selected mailboxes (all when `only` is empty).
    pub async fn run(&self, kind: RunKind, only: &[String]) -> Result<(RunId, RunTotals)> {
        let run = self.store.begin_run(kind).await?;
        let writer = Arc::new(BatchWriter::spawn(
            self.store.clone(),
            run,
            512,
            Duration::from_millis(500),
        ));
        let (pairs, unpaired) = self.pairing();
        let pairs: Vec<MailboxPair> = pairs
            .into_iter()
            .filter(|p| {
                only.is_empty()
                    || only.iter().any(|o| {
                        o.eq_ignore_ascii_case(&p.source) || o.eq_ignore_ascii_case(&p.target)
                    })
            })
            .collect();
        for u in unpaired
            .iter()
            .filter(|u| only.is_empty() || only.iter().any(|o| o.eq_ignore_ascii_case(&u.source)))
        {
            self.reporter.report(&Event::MailboxSkipped {
                mailbox: u.source.clone(),
                reason: u.reason.clone(),
            });
            writer
                .event(EventRecord {
                    mailbox: None,
                    kind: "mailbox_skipped".into(),
                    detail: format!("{}: {}", u.source, u.reason),
                })
                .await?;
        }
        let sem = Arc::new(Semaphore::new(
            self.job.limits.mailboxes_at_once.max(1) as usize
        ));
        let mut totals = RunTotals::default();
        let futs = pairs.iter().map(|p| {
            let sem = sem.clone();
            let writer = writer.clone();
            async move {
                let _permit = sem.acquire().await;
                if self.stop.is_stopped() {
                    return (p.source.clone(), None, Tally::default());
                }
                let tally = Tally::default();
                let r = self.run_mailbox(kind, p, &writer, &tally).await;
                (p.source.clone(), Some(r), tally)
            }
        });
        let results = join_all(futs).await;
        let mut record_err: Option<Error> = None;
        if let Err(e) = writer.flush().await {
            record_err = Some(e);
        }
        for (source, r, tally) in results {
            if let Some(r) = r {
                totals.mailboxes += 1;
                if let Err(e) = r {
                    totals.mailbox_errors.push(format!("{source}: {e}"));
                }
            }
            totals.migrated += tally.migrated.load(Ordering::Relaxed);
            totals.skipped += tally.skipped.load(Ordering::Relaxed);
            totals.failed += tally.failed.load(Ordering::Relaxed);
            totals.bytes += tally.bytes.load(Ordering::Relaxed);
        }
        totals.stopped = self.stop.is_stopped();
        match Arc::try_unwrap(writer) {
            Ok(w) => {
                if let Err(e) = w.close().await {
                    record_err.get_or_insert(e);
                }
            }
            Err(w) => {
                if let Err(e) = w.flush().await {
                    record_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = record_err {
            let _ = self.store.finish_run(run, RunOutcome::Failed).await;
            return Err(e);
        }
        let outcome = if totals.stopped {
            RunOutcome::Interrupted
        } else if totals.mailbox_errors.is_empty() && totals.failed == 0 {
            RunOutcome::Completed
        } else {
            RunOutcome::Failed
        };
        self.store.finish_run(run, outcome).await?;
        Ok((run, totals))
    }

    async fn run_mailbox(
        &self,
        kind: RunKind,
        pair: &MailboxPair,
        writer: &Arc<BatchWriter>,
        tally: &Tally,
    ) -> Result<()> {
        self.reporter.report(&Event::MailboxStarted {
            mailbox: pair.source.clone(),
            target: pair.target.clone(),
        });
        let mailbox = self
            .store
            .upsert_mailbox(&pair.source, &pair.target)
            .await?;
        let mut attempt = 1;
        let result = loop {
            let r = self
                .run_mailbox_inner(kind, pair, mailbox, writer, tally)
                .await;
            match r {
                Err(Error::SourceConnection { context, message })
                    if attempt < SOURCE_ATTEMPTS && !self.stop.is_stopped() =>
                {
                    // Reconnect after a back-off; done items are skipped by the state store.
                    let wait = Duration::from_millis(500u64 << attempt);
                    self.reporter.report(&Event::Throttled {
                        mailbox: Some(pair.source.clone()),
                        wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        reason: format!("{context}: {message}; reconnecting"),
                    });
                    writer
                        .event(EventRecord {
                            mailbox: Some(mailbox),
                            kind: "source_reconnect".into(),
                            detail: format!("attempt {attempt}: {context}: {message}"),
                        })
                        .await?;
                    writer.flush().await?;
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                r => break r,
            }
        };
        if let Err(e) = &result {
            writer
                .event(EventRecord {
                    mailbox: Some(mailbox),
                    kind: "mailbox_error".into(),
                    detail: e.to_string(),
                })
                .await?;
        }
        writer.flush().await?;
        self.reporter.report(&Event::MailboxFinished {
            mailbox: pair.source.clone(),
            migrated: tally.migrated.load(Ordering::Relaxed),
            skipped: tally.skipped.load(Ordering::Relaxed),
            failed: tally.failed.load(Ordering::Relaxed),
            bytes: tally.bytes.load(Ordering::Relaxed),
        });
        result
    }

    async fn run_mailbox_inner(
        &self,
        kind: RunKind,
        pair: &MailboxPair,
        mailbox: MailboxId,
        writer: &Arc<BatchWriter>,
        tally: &Tally,
    ) -> Result<()> {
        let mut session = self.open_source(&pair.source).await?;
        let mapped = self.mapped_folders(&mut session).await?;
        let mut specs = Vec::new();
        for m in &mapped {
            match m.target() {
                Some(t) => specs.push((m.source.path.clone(), folder_spec(&m.source.path, t))),
                None => {
                    let reason = m
                        .skip_reason()
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "skipped".into());
                    self.reporter.report(&Event::FolderSkipped {
                        mailbox: pair.source.clone(),
                        folder: m.source.path.clone(),
                        reason: reason.clone(),
                    });
                    writer
                        .event(EventRecord {
                            mailbox: Some(mailbox),
                            kind: "folder_skipped".into(),
                            detail: format!("{}: {reason}", m.source.path),
                        })
                        .await?;
                }
            }
        }
        let mw = self
            .target
            .open_mailbox(&pair.target)
            .await
            .map_err(|e| target_err(&format!("target mailbox {}", pair.target), &e))?;
        let only_specs: Vec<FolderSpec> = specs.iter().map(|(_, s)| s.clone()).collect();
        let handles = mw
            .ensure_folders(&only_specs)
            .await
            .map_err(|e| target_err(&format!("target folders of {}", pair.target), &e))?;
        let by_source: HashMap<String, target::FolderHandle> =
            handles.into_iter().map(|h| (h.source.clone(), h)).collect();
        let max_target = self.target.capabilities().max_message_bytes;
        self.report_remaining(pair, mailbox, &mut session, &specs)
            .await;
        // Folders are copied several at once when the job allows more source connections
        // than mailboxes at once (a target like Dovecot stores one folder at a time per
        // connection; `cargo xtask bench side-by-side`). Each worker has its own source
        // session; the first reuses the one already open, the others open theirs.
        let workers = self.folders_at_once().min(specs.len().max(1));
        let queue = std::sync::Mutex::new(specs.iter().collect::<std::collections::VecDeque<_>>());
        let failed = AtomicBool::new(false);
        let work = |open: Option<imap::Session>| {
            let queue = &queue;
            let failed = &failed;
            let by_source = &by_source;
            let mw = &mw;
            async move {
                let mut session = match open {
                    Some(s) => s,
                    None => {
                        if queue.lock().map(|q| q.is_empty()).unwrap_or(true) {
                            return Ok(());
                        }
                        match self.open_source(&pair.source).await {
                            Ok(s) => s,
                            Err(e) => {
                                failed.store(true, Ordering::SeqCst);
                                return Err(e);
                            }
                        }
                    }
                };
                loop {
                    if self.stop.is_stopped() || failed.load(Ordering::SeqCst) {
                        break;
                    }
                    let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                    let Some((path, spec)) = next else { break };
                    let Some(handle) = by_source.get(path) else {
                        failed.store(true, Ordering::SeqCst);
                        return Err(Error::Pipeline {
                            context: format!("mailbox {} folder {path}", pair.source),
                            message: "the target did not return a folder for it".into(),
                            hint: None,
                        });
                    };
                    if let Err(e) = self
                        .run_folder(
                            kind,
                            pair,
                            mailbox,
                            &mut session,
                            path,
                            &spec.display_path(),
                            handle,
                            mw,
                            writer,
                            tally,
                            max_target,
                        )
                        .await
                    {
                        failed.store(true, Ordering::SeqCst);
                        return Err(e);
                    }
                }
                let _ = session.logout().await;
                Ok(())
            }
        };
        let sessions = std::iter::once(Some(session)).chain((1..workers).map(|_| None));
        let results = join_all(sessions.map(work)).await;
        results.into_iter().collect::<Result<Vec<()>>>()?;
        Ok(())
    }

    /// Folders of one mailbox copied at once: the source connections the job allows per
    /// mailbox (`connections_per_host / mailboxes_at_once`), 1 to 4.
    fn folders_at_once(&self) -> usize {
        let per_mailbox =
            self.job.source.connections_per_host.max(1) / self.job.limits.mailboxes_at_once.max(1);
        (per_mailbox as usize).clamp(1, 4)
    }

    /// Reports how many messages this mailbox still has to go (STATUS MESSAGES of the
    /// migrated folders minus the outcomes already recorded), for progress bars and ETAs.
    /// Best effort: a folder STATUS cannot answer is left out.
    async fn report_remaining(
        &self,
        pair: &MailboxPair,
        mailbox: MailboxId,
        session: &mut imap::Session,
        specs: &[(String, FolderSpec)],
    ) {
        let mut messages = 0u64;
        for (path, _) in specs {
            if let Ok(s) = session.status(path, &[imap::StatusItem::Messages]).await {
                messages += u64::from(s.messages.unwrap_or(0));
            }
        }
        let done = match self.store.counts(Some(mailbox)).await {
            Ok(c) => c.migrated + c.skipped,
            Err(_) => 0,
        };
        self.reporter.report(&Event::MailboxPlanned {
            mailbox: pair.source.clone(),
            remaining: messages.saturating_sub(done),
        });
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_folder(
        &self,
        kind: RunKind,
        pair: &MailboxPair,
        mailbox: MailboxId,
        session: &mut imap::Session,
        path: &str,
        target_path: &str,
        handle: &target::FolderHandle,
        mw: &Arc<dyn MailboxWriter>,
        writer: &Arc<BatchWriter>,
        tally: &Tally,
        max_target: Option<u64>,
    ) -> Result<()> {
        let ctx = format!("mailbox {} folder {path}", pair.source);
        let sel = session
            .examine(path)
            .await
            .map_err(|e| source_err(&ctx, &e))?;
        let uidvalidity = sel.uid_validity.ok_or_else(|| Error::Pipeline {
            context: ctx.clone(),
            message: "the server sent no UIDVALIDITY".into(),
            hint: None,
        })?;
        let fstate = self
            .store
            .upsert_folder(mailbox, path, target_path, uidvalidity)
            .await?;
        let uidvalidity_changed = fstate.previous_uidvalidity.is_some();
        let done = self.store.done_uids(fstate.id).await?;
        let all = if sel.exists == 0 {
            Vec::new()
        } else {
            session
                .uid_search(&[imap::SearchKey::All])
                .await
                .map_err(|e| source_err(&ctx, &e))?
        };
        let done_set: HashSet<u32> = done.done.iter().copied().collect();
        let failed_set: HashSet<u32> = done.failed.iter().copied().collect();
        let candidates: Vec<u32> = all
            .into_iter()
            .filter(|u| !done_set.contains(u))
            .filter(|u| match kind {
                RunKind::Rescan => {
                    *u > done.watermark || failed_set.contains(u) || done.planned.contains(u)
                }
                _ => true,
            })
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        // Metadata.
        let mut metas: BTreeMap<u32, (ItemMeta, Vec<String>)> = BTreeMap::new();
        {
            let opts = metadata_fetch();
            let mut stream = session.fetch(&candidates, opts);
            while let Some(m) = stream.next().await {
                let m = m.map_err(|e| source_err(&ctx, &e))?;
                metas.insert(m.uid, (meta_of(&m), m.flags.clone()));
            }
        }
        let total = metas.len() as u64;
        let planned: Vec<PlannedItem> = metas
            .iter()
            .map(|(uid, (meta, _))| PlannedItem {
                uid: *uid,
                meta: meta.clone(),
            })
            .collect();
        self.store
            .mark_planned(fstate.id, uidvalidity, &planned)
            .await?;
        // Filters.
        let mut to_copy = Vec::new();
        for (uid, (meta, _)) in &metas {
            let reason = self.filter_reason(meta, max_target);
            match reason {
                Some(reason) => {
                    self.reporter.report(&Event::ItemSkipped {
                        mailbox: pair.source.clone(),
                        folder: path.to_owned(),
                        uid: *uid,
                        reason: reason.clone(),
                    });
                    tally.skipped.fetch_add(1, Ordering::Relaxed);
                    writer
                        .record(ItemOutcome {
                            folder: fstate.id,
                            uidvalidity,
                            uid: *uid,
                            status: ItemStatus::Skipped,
                            target_id: None,
                            reason: Some(reason),
                            meta: meta.clone(),
                        })
                        .await?;
                }
                None => to_copy.push(*uid),
            }
        }
        // Bodies in batches, written concurrently.
        let sem = Arc::new(Semaphore::new(WRITES_PER_MAILBOX));
        let done_count = Arc::new(AtomicU64::new(total - to_copy.len() as u64));
        let mut tasks: JoinSet<Result<WriteResult>> = JoinSet::new();
        let mut fatal: Option<Error> = None;
        for chunk in to_copy.chunks(BODY_BATCH * 4) {
            if self.stop.is_stopped() || fatal.is_some() {
                break;
            }
            let opts = imap::FetchOptions {
                items: imap::FetchItems {
                    flags: true,
                    internal_date: true,
                    size: true,
                    header_fields: Vec::new(),
                    body: true,
                    modseq: false,
                    gmail: false,
                },
                batch_size: BODY_BATCH,
                pipeline: BODY_FETCHES_IN_FLIGHT,
            };
            let mut seen_in_chunk = HashSet::new();
            {
                let mut stream = session.fetch(chunk, opts);
                while let Some(m) = stream.next().await {
                    let m = match m {
                        Ok(m) => m,
                        Err(e) => {
                            fatal = Some(source_err(&ctx, &e));
                            break;
                        }
                    };
                    seen_in_chunk.insert(m.uid);
                    let permit = match sem.clone().acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => break,
                    };
                    let base_meta = metas
                        .get(&m.uid)
                        .map(|(mm, _)| mm.clone())
                        .unwrap_or_default();
                    let work = Work {
                        folder: fstate.id,
                        folder_path: path.to_owned(),
                        uidvalidity,
                        uid: m.uid,
                        meta: base_meta,
                    };
                    let ctx = WriteCtx {
                        store: self.store.clone(),
                        reporter: self.reporter.clone(),
                        writer: writer.clone(),
                        mw: mw.clone(),
                        handle: handle.clone(),
                        mailbox,
                        source: pair.source.clone(),
                        max_attempts: self.job.limits.max_attempts.max(1),
                        dedupe_by_state: uidvalidity_changed,
                        done: done_count.clone(),
                        total,
                    };
                    tasks.spawn(async move {
                        let r = write_one(ctx, work, m).await;
                        drop(permit);
                        r
                    });
                    // Reap finished tasks to keep the set small.
                    while let Some(r) = tasks.try_join_next() {
                        self.reap(r, tally, &mut fatal);
                    }
                }
            }
            // UIDs that vanished between SEARCH and FETCH (expunged at the source).
            for uid in chunk {
                if !seen_in_chunk.contains(uid) && fatal.is_none() && !self.stop.is_stopped() {
                    let meta = metas.get(uid).map(|(mm, _)| mm.clone()).unwrap_or_default();
                    tally.skipped.fetch_add(1, Ordering::Relaxed);
                    writer
                        .record(ItemOutcome {
                            folder: fstate.id,
                            uidvalidity,
                            uid: *uid,
                            status: ItemStatus::Skipped,
                            target_id: None,
                            reason: Some("expunged at the source during the run".into()),
                            meta,
                        })
                        .await?;
                }
            }
        }
        while let Some(r) = tasks.join_next().await {
            self.reap(r, tally, &mut fatal);
        }
        writer.flush().await?;
        self.reporter.report(&Event::FolderProgress {
            mailbox: pair.source.clone(),
            folder: path.to_owned(),
            done: done_count.load(Ordering::Relaxed),
            total,
            bytes: tally.bytes.load(Ordering::Relaxed),
        });
        match fatal {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn reap(
        &self,
        r: std::result::Result<Result<WriteResult>, tokio::task::JoinError>,
        tally: &Tally,
        fatal: &mut Option<Error>,
    ) {
        match r {
            Ok(Ok(WriteResult::Migrated(bytes))) => {
                tally.migrated.fetch_add(1, Ordering::Relaxed);
                tally.bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            Ok(Ok(WriteResult::Failed { stop_mailbox })) => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
                if let Some(e) = stop_mailbox {
                    fatal.get_or_insert(e);
                }
            }
            Ok(Err(e)) => {
                fatal.get_or_insert(e);
            }
            Err(e) => {
                fatal.get_or_insert(Error::Pipeline {
                    context: "write task".into(),
                    message: e.to_string(),
                    hint: None,
                });
            }
        }
    }

    fn filter_reason(&self, meta: &ItemMeta, max_target: Option<u64>) -> Option<String> {
        let f = &self.job.filters;
        if let Some(size) = meta.size {
            if !f.size_allows(size) {
                return Some(format!(
                    "size {size} bytes is above max_message_size ({} bytes)",
                    f.max_message_size.map(|m| m.0).unwrap_or(0)
                ));
            }
            if let Some(limit) = max_target
                && size > limit
            {
                return Some(format!(
                    "size {size} bytes is above the target's limit of {limit} bytes"
                ));
            }
        }
        if let Some(d) = meta.internal_date
            && !f.date_allows(d)
        {
            let since = f
                .since
                .map(|s| format!("{:04}-{:02}-{:02}", s.year, s.month, s.day));
            let before = f
                .before
                .map(|s| format!("{:04}-{:02}-{:02}", s.year, s.month, s.day));
            return Some(format!(
                "INTERNALDATE outside the date filter (since {}, before {})",
                since.as_deref().unwrap_or("-"),
                before.as_deref().unwrap_or("-")
            ));
        }
        None
    }
}

struct WriteCtx {
    store: Arc<dyn StateStore>,
    reporter: Arc<dyn Reporter>,
    writer: Arc<BatchWriter>,
    mw: Arc<dyn MailboxWriter>,
    handle: target::FolderHandle,
    mailbox: MailboxId,
    source: String,
    max_attempts: u32,
    dedupe_by_state: bool,
    done: Arc<AtomicU64>,
    total: u64,
}

enum WriteResult {
    Migrated(u64),
    Failed { stop_mailbox: Option<Error> },
}

async fn write_one(ctx: WriteCtx, work: Work, mut m: imap::FetchedMessage) -> Result<WriteResult> {
    // The body's share of the in-flight byte budget is released only after every copy of the
    // body is gone (they all live inside `write_one_inner`), so the budget bounds memory.
    let reservation = std::mem::take(&mut m.reservation);
    let r = write_one_inner(ctx, work, m).await;
    drop(reservation);
    r
}

async fn write_one_inner(
    ctx: WriteCtx,
    mut work: Work,
    m: imap::FetchedMessage,
) -> Result<WriteResult> {
    let Some(raw) = m.body.clone() else {
        return fail(
            &ctx,
            work,
            "the server sent no body for this UID".into(),
            None,
        )
        .await;
    };
    // Only the header-derived identity is used (dedupe key, Message-ID): hash the header block,
    // not the whole body (`cargo xtask bench side-by-side` profile: 14 % of the CPU).
    let id = o365_migrate_mime::fingerprint(o365_migrate_mime::header_block(&raw));
    // Message-ID (or header key) plus a cheap content tag: two different messages that share
    // a Message-ID stay two messages.
    let key = o365_migrate_mime::item_key(&raw, &id);
    work.meta.fingerprint = Some(key.clone());
    work.meta.message_id = id.message_id.clone();
    work.meta.size = Some(raw.len() as u64);
    if ctx.dedupe_by_state {
        // UIDVALIDITY changed: UIDs mean nothing; the fingerprint decides.
        let found = ctx.store.find_by_fingerprint(ctx.mailbox, &key).await?;
        if let Some(prev) = found.into_iter().find(|r| r.folder == work.folder) {
            let outcome = ItemOutcome {
                folder: work.folder,
                uidvalidity: work.uidvalidity,
                uid: work.uid,
                status: ItemStatus::Migrated,
                target_id: prev.target_id.clone(),
                reason: Some("already migrated before the UIDVALIDITY change".into()),
                meta: work.meta.clone(),
            };
            ctx.writer.record(outcome).await?;
            ctx.done.fetch_add(1, Ordering::Relaxed);
            return Ok(WriteResult::Migrated(0));
        }
    }
    // What was FETCHed becomes the one set of message types here, once.
    let item = target::WriteItem {
        raw: raw.clone(),
        flags: o365_migrate_mime::Flags::from_imap(m.flags.iter().map(String::as_str)),
        internal_date: m.internal_date,
        fingerprint: key,
        internet_message_id: id.message_id.clone(),
    };
    drop(m);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match ctx.mw.write(&ctx.handle, &item).await {
            Ok(outcome) => {
                let size = raw.len() as u64;
                let note = match &outcome {
                    target::WriteOutcome::AlreadyPresent { .. } => {
                        Some("already present in the target".to_owned())
                    }
                    target::WriteOutcome::Written { notes, .. } if !notes.is_empty() => {
                        Some(notes.join("; "))
                    }
                    _ => None,
                };
                ctx.writer
                    .record(ItemOutcome {
                        folder: work.folder,
                        uidvalidity: work.uidvalidity,
                        uid: work.uid,
                        status: ItemStatus::Migrated,
                        target_id: Some(outcome.target_id().to_owned()),
                        reason: note,
                        meta: work.meta.clone(),
                    })
                    .await?;
                ctx.reporter.report(&Event::ItemMigrated {
                    mailbox: ctx.source.clone(),
                    folder: work.folder_path.clone(),
                    uid: work.uid,
                    size,
                });
                ctx.done.fetch_add(1, Ordering::Relaxed);
                let _ = ctx.total;
                return Ok(WriteResult::Migrated(size));
            }
            Err(e) if e.is_transient() && attempt < ctx.max_attempts => {
                let wait = Duration::from_millis(250u64 << attempt.min(6));
                ctx.reporter.report(&Event::Throttled {
                    mailbox: Some(ctx.source.clone()),
                    wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    reason: e.to_string(),
                });
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                let stop = match e.scope() {
                    target::ErrorScope::Mailbox | target::ErrorScope::Target => {
                        Some(target_err(&format!("target mailbox of {}", ctx.source), &e))
                    }
                    _ => None,
                };
                return fail(&ctx, work, e.to_string(), stop).await;
            }
        }
    }
}

async fn fail(
    ctx: &WriteCtx,
    work: Work,
    reason: String,
    stop_mailbox: Option<Error>,
) -> Result<WriteResult> {
    ctx.reporter.report(&Event::ItemFailed {
        mailbox: ctx.source.clone(),
        folder: work.folder_path.clone(),
        uid: work.uid,
        reason: reason.clone(),
    });
    ctx.writer
        .record(ItemOutcome {
            folder: work.folder,
            uidvalidity: work.uidvalidity,
            uid: work.uid,
            status: ItemStatus::Failed,
            target_id: None,
            reason: Some(reason),
            meta: work.meta,
        })
        .await?;
    ctx.done.fetch_add(1, Ordering::Relaxed);
    Ok(WriteResult::Failed { stop_mailbox })
}

/// UID FETCH of FLAGS, INTERNALDATE, RFC822.SIZE and the identity header fields.
fn metadata_fetch() -> imap::FetchOptions {
    imap::FetchOptions {
        items: imap::FetchItems {
            flags: true,
            internal_date: true,
            size: true,
            header_fields: HEADER_FIELDS.iter().map(|s| (*s).to_owned()).collect(),
            body: false,
            modseq: false,
            gmail: false,
        },
        ..Default::default()
    }
}

fn meta_of(m: &imap::FetchedMessage) -> ItemMeta {
    let header = m.header.as_deref().unwrap_or(b"");
    let id = o365_migrate_mime::fingerprint(header);
    ItemMeta {
        size: m.size.map(u64::from),
        internal_date: m.internal_date.map(|d| d.unix_seconds()),
        fingerprint: Some(id.dedupe_key()),
        message_id: id.message_id.clone(),
        subject: header_value(header, "subject"),
        sender: header_value(header, "from"),
    }
}

/// The unfolded value of the first header field `name` (lowercase), lossy UTF-8, trimmed.
fn header_value(header: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(header);
    let mut value: Option<String> = None;
    for line in text.split("\r\n").flat_map(|l| l.split('\n')) {
        if let Some(v) = value.as_mut() {
            if line.starts_with(' ') || line.starts_with('\t') {
                v.push(' ');
                v.push_str(line.trim());
                continue;
            }
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.trim().eq_ignore_ascii_case(name)
        {
            value = Some(v.trim().to_owned());
        }
    }
    value.map(|v| v.chars().take(300).collect())
}

async fn join_all<F: std::future::Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    // Runs all futures concurrently on the current task (no 'static bound needed).
    let futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    let mut pending: Vec<(usize, std::pin::Pin<Box<F>>)> = futs.into_iter().enumerate().collect();
    std::future::poll_fn(|cx| {
        let mut i = 0;
        while i < pending.len() {
            let (idx, fut) = &mut pending[i];
            if let std::task::Poll::Ready(o) = fut.as_mut().poll(cx) {
                outputs[*idx] = Some(o);
                pending.swap_remove(i);
            } else {
                i += 1;
            }
        }
        if pending.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// One message that differs between source and target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffItem {
    /// Dedupe key (`mid:<Message-ID>` or `hk1:…`; for extra items the target's own key).
    pub key: String,
    /// Source UID (missing items) or target id (extra items).
    pub id: String,
    /// Subject.
    pub subject: Option<String>,
    /// From.
    pub from: Option<String>,
    /// Date (INTERNALDATE / received), Unix seconds.
    pub date: Option<i64>,
}

/// Verification of one folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FolderVerify {
    /// Source folder path.
    pub source: String,
    /// Target folder path.
    pub target: String,
    /// Messages in the source folder.
    pub source_count: u64,
    /// Messages excluded by filters or recorded as skipped.
    pub skipped: u64,
    /// Messages expected in the target (source minus skipped).
    pub expected: u64,
    /// Messages the target reports.
    pub target_count: u64,
    /// Source messages not found in the target.
    pub missing: Vec<DiffItem>,
    /// Target messages with no source counterpart (or extra copies).
    pub extra: Vec<DiffItem>,
}

/// Verification of one mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailboxVerify {
    /// Source login.
    pub source: String,
    /// Target mailbox.
    pub target: String,
    /// Per folder.
    pub folders: Vec<FolderVerify>,
    /// Set when the mailbox could not be verified.
    pub error: Option<String>,
}

/// The result of `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// True only when every folder of every mailbox matches.
    pub ok: bool,
    /// Per mailbox.
    pub mailboxes: Vec<MailboxVerify>,
}

/// Plan of one folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FolderPlan {
    /// Source folder path.
    pub source: String,
    /// Target path (`None` when skipped).
    pub target: Option<String>,
    /// Why it is skipped.
    pub skip_reason: Option<String>,
    /// Messages.
    pub messages: u64,
    /// Bytes.
    pub bytes: u64,
    /// Messages skipped by the filters (size / date / target limit).
    pub filtered: u64,
    /// UIDs above `max_message_size` or the target's limit.
    pub oversize: Vec<u32>,
    /// UIDs without a usable Message-ID (deduplicated by header key instead).
    pub without_message_id: Vec<u32>,
}

/// Plan of one mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MailboxPlan {
    /// Source login.
    pub source: String,
    /// Target mailbox.
    pub target: String,
    /// Per folder.
    pub folders: Vec<FolderPlan>,
    /// Messages to copy (after filters).
    pub messages: u64,
    /// Bytes to copy (after filters).
    pub bytes: u64,
    /// Set when the mailbox could not be read.
    pub error: Option<String>,
}

/// The result of `plan`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanReport {
    /// Per mailbox.
    pub mailboxes: Vec<MailboxPlan>,
    /// Messages to copy over all mailboxes.
    pub messages: u64,
    /// Bytes to copy over all mailboxes.
    pub bytes: u64,
    /// Estimated duration in seconds, from the target's documented limits.
    pub estimate_seconds: Option<f64>,
    /// How the estimate was made.
    pub estimate_basis: String,
}

/// Exchange Online limits per app and mailbox (Microsoft Graph throttling docs): 10,000
/// requests per 10 minutes and 150 MB upload per 5 minutes.
const GRAPH_REQUESTS_PER_SECOND: f64 = 10_000.0 / 600.0;
const GRAPH_UPLOAD_BYTES_PER_SECOND: f64 = 150.0 * 1024.0 * 1024.0 / 300.0;

impl Engine {
    async fn source_folder_scan(
        &self,
        session: &mut imap::Session,
        path: &str,
    ) -> Result<(u32, BTreeMap<u32, ItemMeta>)> {
        let ctx = format!("folder {path}");
        let sel = session
            .examine(path)
            .await
            .map_err(|e| source_err(&ctx, &e))?;
        let uv = sel.uid_validity.unwrap_or(0);
        let mut out = BTreeMap::new();
        if sel.exists == 0 {
            return Ok((uv, out));
        }
        let uids = session
            .uid_search(&[imap::SearchKey::All])
            .await
            .map_err(|e| source_err(&ctx, &e))?;
        let opts = metadata_fetch();
        let mut stream = session.fetch(&uids, opts);
        while let Some(m) = stream.next().await {
            let m = m.map_err(|e| source_err(&ctx, &e))?;
            out.insert(m.uid, meta_of(&m));
        }
        Ok((uv, out))
    }

    /// `plan`: per mailbox folders, counts, sizes, the folder map, oversize items, items
    /// without Message-ID and a duration estimate.
    pub async fn plan(&self) -> PlanReport {
        let max_target = self.target.capabilities().max_message_bytes;
        let mut mailboxes = Vec::new();
        for p in self.pairs() {
            let mut mp = MailboxPlan {
                source: p.source.clone(),
                target: p.target.clone(),
                folders: Vec::new(),
                messages: 0,
                bytes: 0,
                error: None,
            };
            let r: Result<()> = async {
                let mut s = self.open_source(&p.source).await?;
                for m in self.mapped_folders(&mut s).await? {
                    let mut fp = FolderPlan {
                        source: m.source.path.clone(),
                        target: m
                            .target()
                            .map(|t| folder_spec(&m.source.path, t).display_path()),
                        skip_reason: m.skip_reason().map(|r| r.to_string()),
                        messages: 0,
                        bytes: 0,
                        filtered: 0,
                        oversize: Vec::new(),
                        without_message_id: Vec::new(),
                    };
                    if fp.target.is_some() {
                        let (_, metas) = self.source_folder_scan(&mut s, &m.source.path).await?;
                        for (uid, meta) in metas {
                            let size = meta.size.unwrap_or(0);
                            let too_big = !self.job.filters.size_allows(size)
                                || max_target.is_some_and(|l| size > l);
                            if too_big {
                                fp.oversize.push(uid);
                            }
                            if meta.message_id.is_none() {
                                fp.without_message_id.push(uid);
                            }
                            if self.filter_reason(&meta, max_target).is_some() {
                                fp.filtered += 1;
                            } else {
                                fp.messages += 1;
                                fp.bytes += size;
                            }
                        }
                        mp.messages += fp.messages;
                        mp.bytes += fp.bytes;
                    }
                    mp.folders.push(fp);
                }
                let _ = s.logout().await;
                Ok(())
            }
            .await;
            if let Err(e) = r {
                mp.error = Some(e.to_string());
            }
            mailboxes.push(mp);
        }
        let messages = mailboxes.iter().map(|m| m.messages).sum();
        let bytes = mailboxes.iter().map(|m| m.bytes).sum();
        let (estimate_seconds, estimate_basis) = if self.job.target.kind == TargetKind::Graph {
            // Each mailbox is limited on its own; mailboxes run `mailboxes_at_once` in parallel.
            let per: Vec<f64> = mailboxes
                .iter()
                .map(|m| {
                    (m.messages as f64 / GRAPH_REQUESTS_PER_SECOND)
                        .max(m.bytes as f64 / GRAPH_UPLOAD_BYTES_PER_SECOND)
                })
                .collect();
            let sum: f64 = per.iter().sum();
            let longest = per.iter().copied().fold(0.0, f64::max);
            let parallel = f64::from(self.job.limits.mailboxes_at_once.max(1));
            (
                Some((sum / parallel).max(longest)),
                "Exchange Online per-mailbox limits: 10,000 requests / 10 min and 150 MB upload / 5 min; at least one request per message; mailboxes in parallel per [limits] mailboxes_at_once".to_owned(),
            )
        } else {
            (None, "no documented limits for this target".to_owned())
        };
        PlanReport {
            mailboxes,
            messages,
            bytes,
            estimate_seconds,
            estimate_basis,
        }
    }

    /// `verify`: per folder, source count against target count and per message identity.
    pub async fn verify(&self) -> Result<VerifyReport> {
        let max_target = self.target.capabilities().max_message_bytes;
        let mut out = Vec::new();
        for p in self.pairs() {
            let mut mv = MailboxVerify {
                source: p.source.clone(),
                target: p.target.clone(),
                folders: Vec::new(),
                error: None,
            };
            if let Err(e) = self.verify_mailbox(&p, &mut mv, max_target).await {
                mv.error = Some(e.to_string());
            }
            out.push(mv);
        }
        let ok = out.iter().all(|m| {
            m.error.is_none()
                && m.folders.iter().all(|f| {
                    f.missing.is_empty() && f.extra.is_empty() && f.expected == f.target_count
                })
        });
        Ok(VerifyReport { ok, mailboxes: out })
    }

    async fn verify_mailbox(
        &self,
        p: &MailboxPair,
        mv: &mut MailboxVerify,
        max_target: Option<u64>,
    ) -> Result<()> {
        // Skipped items per (folder path, uidvalidity, uid) from the state store.
        let mut skipped: HashSet<(String, u32, u32)> = HashSet::new();
        // The item keys recorded when the items were written (content-aware), by source UID.
        let mut item_keys: HashMap<(String, u32, u32), String> = HashMap::new();
        if let Some(rec) = self
            .store
            .mailboxes()
            .await?
            .into_iter()
            .find(|m| m.source == p.source)
        {
            let mut after = 0;
            loop {
                let page = self.store.items(Some(rec.id), after, 1000).await?;
                let Some(last) = page.last() else { break };
                after = last.id;
                for it in &page {
                    if it.status == ItemStatus::Skipped {
                        skipped.insert((it.folder_path.clone(), it.uidvalidity, it.uid));
                    }
                    if let Some(fp) = &it.fingerprint {
                        item_keys
                            .insert((it.folder_path.clone(), it.uidvalidity, it.uid), fp.clone());
                    }
                }
            }
        }
        let mut s = self.open_source(&p.source).await?;
        let mapped = self.mapped_folders(&mut s).await?;
        let specs: Vec<FolderSpec> = mapped
            .iter()
            .filter_map(|m| m.target().map(|t| folder_spec(&m.source.path, t)))
            .collect();
        let mw = self
            .target
            .open_mailbox(&p.target)
            .await
            .map_err(|e| target_err(&format!("target mailbox {}", p.target), &e))?;
        // Looked up, never created: verify does not change the target.
        let handles = mw
            .find_folders(&specs)
            .await
            .map_err(|e| target_err(&format!("target folders of {}", p.target), &e))?;
        for (spec, h) in specs.iter().zip(handles) {
            let (uv, metas) = self.source_folder_scan(&mut s, &spec.source).await?;
            let mut fv = FolderVerify {
                source: spec.source.clone(),
                target: spec.display_path(),
                source_count: metas.len() as u64,
                skipped: 0,
                expected: 0,
                target_count: 0,
                missing: Vec::new(),
                extra: Vec::new(),
            };
            let mut expected = Expected::default();
            for (uid, meta) in metas {
                if skipped.contains(&(spec.source.clone(), uv, uid))
                    || self.filter_reason(&meta, max_target).is_some()
                {
                    fv.skipped += 1;
                    continue;
                }
                fv.expected += 1;
                // The header key from this scan; the content-aware item key recorded at write
                // time when there is one (it tells apart two contents of one Message-ID).
                let weak = meta.fingerprint.clone().unwrap_or_default();
                let strong = item_keys.get(&(spec.source.clone(), uv, uid)).cloned();
                expected.push(
                    strong,
                    weak.clone(),
                    DiffItem {
                        key: weak,
                        id: format!("uid {uid}"),
                        subject: meta.subject,
                        from: meta.sender,
                        date: meta.internal_date,
                    },
                );
            }
            let (count, items) = match &h {
                Some(h) => {
                    let ctx = format!("target folder {}", h.display_path);
                    let count = mw.count(h).await.map_err(|e| target_err(&ctx, &e))?;
                    (count, mw.list(h).await.map_err(|e| target_err(&ctx, &e))?)
                }
                // The folder does not exist in the target: everything expected is missing.
                None => (0, Vec::new()),
            };
            fv.target_count = count;
            // Exact (content-aware) matches first, then by Message-ID / header key for target
            // items whose content is unknown (IMAP and EML listings, other tools' items).
            let mut unmatched = Vec::new();
            for t in items {
                let key = t
                    .fingerprint
                    .clone()
                    .or_else(|| t.internet_message_id.as_ref().map(|m| format!("mid:{m}")))
                    .unwrap_or_default();
                if !expected.take_strong(&key) {
                    unmatched.push((key, t));
                }
            }
            for (key, t) in unmatched {
                let weak = o365_migrate_mime::weak_key(&key).to_owned();
                let mid = t.internet_message_id.as_ref().map(|m| format!("mid:{m}"));
                let matched = expected.take_weak(&weak)
                    || mid.is_some_and(|m| m != weak && expected.take_weak(&m));
                if !matched {
                    fv.extra.push(DiffItem {
                        key,
                        id: t.id.clone(),
                        subject: t.subject.clone(),
                        from: t.from.clone(),
                        date: t.received.map(|r| r.unix_seconds()),
                    });
                }
            }
            let mut missing: Vec<DiffItem> = expected.missing();
            missing.sort_by(|a, b| a.id.cmp(&b.id));
            fv.missing = missing;
            mv.folders.push(fv);
        }
        let _ = s.logout().await;
        Ok(())
    }
}

/// The source items verify expects in one target folder, findable by item key and by header key.
#[derive(Default)]
struct Expected {
    items: Vec<(DiffItem, bool)>,
    by_strong: HashMap<String, Vec<usize>>,
    by_weak: HashMap<String, Vec<usize>>,
}

impl Expected {
    fn push(&mut self, strong: Option<String>, weak: String, item: DiffItem) {
        let i = self.items.len();
        self.items.push((item, false));
        if let Some(s) = strong {
            self.by_strong.entry(s).or_default().push(i);
        }
        self.by_weak.entry(weak).or_default().push(i);
    }

    fn take(&mut self, list: Option<&Vec<usize>>) -> bool {
        let Some(list) = list else { return false };
        for &i in list {
            if let Some((_, taken)) = self.items.get_mut(i)
                && !*taken
            {
                *taken = true;
                return true;
            }
        }
        false
    }

    /// Marks one expected item with this exact item key as found.
    fn take_strong(&mut self, key: &str) -> bool {
        let list = self.by_strong.get(key).cloned();
        self.take(list.as_ref())
    }

    /// Marks one expected item with this Message-ID / header key as found.
    fn take_weak(&mut self, key: &str) -> bool {
        let list = self.by_weak.get(key).cloned();
        self.take(list.as_ref())
    }

    fn missing(self) -> Vec<DiffItem> {
        self.items
            .into_iter()
            .filter(|(_, taken)| !taken)
            .map(|(d, _)| d)
            .collect()
    }
}

/// The result of `credentials check`: the report as JSON and as text, and whether it has errors.
#[derive(Debug, Clone)]
pub struct CredentialsCheck {
    /// The report as JSON (passwords masked).
    pub json: String,
    /// The report for people (passwords masked).
    pub human: String,
    /// Whether the file has errors (it would be refused by `run`).
    pub has_errors: bool,
}

/// Reads and checks a credentials file (`o365-migrate credentials check`). Passwords are never
/// shown; `delimiter` overrides detection.
pub fn check_credentials_file(
    path: &std::path::Path,
    delimiter: Option<char>,
) -> Result<CredentialsCheck> {
    let mut opts = creds::ReadOptions::default();
    if let Some(d) = delimiter {
        opts = opts.delimiter(d);
    }
    let parsed = creds::read_file(path, &opts).map_err(|e| Error::Pipeline {
        context: format!("credentials file {}", path.display()),
        message: e.to_string(),
        hint: None,
    })?;
    let report = parsed.report();
    Ok(CredentialsCheck {
        json: report.to_json(),
        human: report.render_human(50),
        has_errors: report.has_errors(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folders::WellKnownFolder;

    #[test]
    fn header_values_are_unfolded_and_case_insensitive() {
        let h = b"Message-ID: <a@b>\r\nSUBJECT: Hello\r\n  world\r\nFrom: A <a@b>\r\n\r\n";
        assert_eq!(header_value(h, "subject").as_deref(), Some("Hello world"));
        assert_eq!(header_value(h, "from").as_deref(), Some("A <a@b>"));
        assert_eq!(header_value(h, "date"), None);
        assert_eq!(header_value(b"\xff\xfe: x\r\n", "subject"), None);
    }

    #[test]
    fn folder_specs_follow_the_mapping() {
        let t = FolderTarget {
            parent: Some(WellKnownFolder::Archive),
            path: vec!["2022".into()],
        };
        assert_eq!(
            folder_spec("Archive/2022", &t).display_path(),
            "#Archive#/2022"
        );
        let root = FolderTarget {
            parent: None,
            path: vec!["Projects".into(), "Alpha".into()],
        };
        assert_eq!(
            folder_spec("Projects/Alpha", &root).display_path(),
            "Projects/Alpha"
        );
    }

    #[tokio::test]
    async fn join_all_keeps_order() {
        let futs = (0..5u64).map(|i| async move {
            tokio::time::sleep(Duration::from_millis(10 * (5 - i))).await;
            i
        });
        assert_eq!(join_all(futs).await, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn stop_flag_is_shared() {
        let a = StopFlag::new();
        let b = a.clone();
        assert!(!b.is_stopped());
        a.stop();
        assert!(b.is_stopped());
    }
}

#[cfg(test)]
mod target_tests {
    use super::*;

    /// The template with its `[target]` block replaced by `target`.
    fn job_with_target(target: &str) -> Job {
        let t = crate::config::TEMPLATE;
        let start = t.find("[target]").unwrap_or(0);
        let end = t.find("[matching]").unwrap_or(t.len());
        let text = format!("{}{target}\n\n{}", &t[..start], &t[end..]);
        Job::parse(&text, "job.toml").expect("job parses")
    }

    #[test]
    fn builds_every_target_kind_from_the_job() {
        let creds = creds::parse_bytes(
            b"Login,Password\r\nalice@example.com,pw\r\n",
            "users.csv",
            &creds::ReadOptions::default(),
        )
        .and_then(|p| p.into_credentials())
        .expect("credentials");
        let eml = job_with_target("[target]\nkind = \"eml\"\n[target.eml]\ndirectory = \"out\"");
        assert_eq!(
            build_target(&eml, &creds).expect("eml").capabilities().name,
            "eml"
        );
        let imap = job_with_target(
            "[target]\nkind = \"imap\"\n[target.imap]\nhost = \"127.0.0.1\"\nport = 143\nsecurity = \"none\"",
        );
        assert!(build_target(&imap, &creds).is_ok());
        // A secret reference that does not resolve names the reference, not a value.
        let ews = job_with_target(
            "[target]\nkind = \"ews\"\n[target.ews]\nurl = \"https://mail.example.com/EWS/Exchange.asmx\"\nuser = \"svc@example.com\"\nsecret = \"env:O365_E2E_UNSET_EWS_SECRET\"",
        );
        let err = build_target(&ews, &creds)
            .err()
            .expect("unset secret")
            .to_string();
        assert!(err.contains("O365_E2E_UNSET_EWS_SECRET"), "{err}");
    }
}
