//! [`Engine`]: one job's engine — the job, credentials, the target, the state store, the
//! reporter and the source connection settings — and the connection tests. The work itself
//! lives beside it: [`crate::run`] (copying), [`crate::plan`], [`crate::verify`]; how the engine
//! is built from the job in [`crate::setup`]; reading the source in [`crate::source`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use o365_migrate_credentials as creds;
use o365_migrate_imap as imap;
use o365_migrate_target as target;
use tokio::sync::Semaphore;

use crate::config::Job;
use crate::error::Result;
use crate::matching::MailboxPair;
use crate::report::Reporter;
use crate::setup::{build_target_parts, imap_client_config, load_credentials};
use crate::state::StateStore;

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

/// What `target test` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetTest {
    /// The target's own check (sign-in, permissions), or what failed and the fix.
    pub check: std::result::Result<(), String>,
    /// Each paired target mailbox, opened (empty when the check failed).
    pub mailboxes: Vec<(String, std::result::Result<(), String>)>,
    /// Exchange Online's answer times measured on the first mailbox that opened (Graph targets
    /// only), or why they could not be; `plan` estimates durations from the last ones kept.
    pub answer_times: Option<std::result::Result<crate::plan::MeasuredAnswerTimes, String>>,
}

/// The engine for one job.
pub struct Engine {
    pub(crate) job: Job,
    pub(crate) credentials: creds::Credentials,
    pub(crate) login_mode: creds::LoginMode,
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) target: Arc<dyn target::Target>,
    pub(crate) graph: Option<Arc<target::graph::GraphClient>>,
    pub(crate) mapping: crate::matching::MappingFile,
    pub(crate) reporter: Arc<dyn Reporter>,
    pub(crate) budget: imap::ByteBudget,
    pub(crate) stop: StopFlag,
    pub(crate) source_client: imap::ClientConfig,
    /// The state's run lock once a writing command took it; held until the engine is dropped.
    pub(crate) run_lock: tokio::sync::Mutex<Option<crate::state::RunLock>>,
    /// The job's pairing once a command asked for it (see [`Engine::pairing`]).
    pub(crate) pairing: tokio::sync::Mutex<Option<crate::matching::Pairing>>,
    /// The worker this engine runs leased mailboxes for ([`crate::worker`]): its runs take no
    /// run lock of their own (the worker holds it shared) and are tagged with the worker.
    pub(crate) worker: Option<String>,
    /// Google sign-in for a Gmail source (`[source.google]`).
    pub(crate) google: Option<crate::signin::GoogleAuth>,
    /// Serialises updates of the Gmail download windows kept in the state store.
    pub(crate) download_windows: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("job", &self.job.file)
            .field("mailboxes", &self.credentials.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Creates the engine: reads the credentials, builds the target, opens nothing yet.
    pub fn new(
        job: Job,
        store: Arc<dyn StateStore>,
        reporter: Arc<dyn Reporter>,
        stop: StopFlag,
    ) -> Result<Engine> {
        Engine::build(job, store, reporter, stop, None)
    }

    /// [`Engine::new`] whose Graph requests also take from `shared_budget` (a worker's).
    pub(crate) fn build(
        job: Job,
        store: Arc<dyn StateStore>,
        reporter: Arc<dyn Reporter>,
        stop: StopFlag,
        shared_budget: Option<Arc<dyn target::graph::SharedBudget>>,
    ) -> Result<Engine> {
        let (credentials, login_mode) = load_credentials(&job)?;
        let (target, graph) = build_target_parts(&job, &credentials, shared_budget)?;
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
        let job_google = job
            .source
            .google
            .clone()
            .map(|g| crate::signin::GoogleAuth::new(g, job.base_dir()));
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
            run_lock: tokio::sync::Mutex::new(None),
            pairing: tokio::sync::Mutex::new(None),
            google: job_google,
            download_windows: tokio::sync::Mutex::new(()),
            worker: None,
        })
    }

    /// Takes the state's run lock unless this engine already holds it, and keeps it until the
    /// engine is dropped: never two runs on one state, whoever drives the engine. `run`,
    /// `rescan` and `provision` take it themselves; call this first to hold it across waits
    /// (a run window that has not opened yet). Fails at once when another process holds it.
    pub async fn hold_run_lock(&self) -> Result<()> {
        let mut held = self.run_lock.lock().await;
        if held.is_none() {
            *held = Some(self.store.lock_runs().await?);
        }
        Ok(())
    }

    /// The job.
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// The state store.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// What matching reads, lent from this engine.
    fn matching(&self) -> crate::matching::Matching<'_> {
        crate::matching::Matching {
            job: &self.job,
            credentials: &self.credentials,
            mapping: &self.mapping,
            graph: self.graph.as_ref(),
            store: self.store.as_ref(),
        }
    }

    /// The job's pairing — the pairs every command migrates, the sources left out (with the
    /// reason and the fix) and where it came from: `[matching] pairs_file` when configured,
    /// else automatch against the target directory (kept in the state store, see
    /// [`crate::matching`]), else the credentials file. Decided once per engine.
    pub async fn pairing(&self) -> Result<crate::matching::Pairing> {
        let mut held = self.pairing.lock().await;
        if let Some(p) = &*held {
            return Ok(p.clone());
        }
        let p = self.matching().pairing().await?;
        *held = Some(p.clone());
        Ok(p)
    }

    /// Matches every source in the credentials file to a target user, as `match` shows it.
    /// Manual decisions win: the mapping file's matched and excluded rows, then the credentials'
    /// target column, then `[matching] exclude`; the rules decide the rest. With `create`,
    /// unmatched sources become `create` proposals (needs `[matching] allow_create`). Without
    /// a mapping file the result becomes the job's pairing (kept in the state store).
    pub async fn automatch(&self, create: bool) -> Result<crate::matching::MatchOutcome> {
        let outcome = self.matching().automatch(create).await?;
        if matches!(self.mapping, crate::matching::MappingFile::None) {
            self.matching().keep(&outcome).await?;
            *self.pairing.lock().await = None;
        }
        Ok(outcome)
    }

    /// `provision`: runs automatch with user creation, creates the proposed users (usage
    /// location set), assigns `[matching] licence_sku` to new and unlicensed matched users, and
    /// polls until every mailbox answers or `wait` passes. Updates the mapping file (when
    /// configured) so created users are `matched`. With `dry_run`, only reports the plan.
    /// Graph target only; needs User.ReadWrite.All and LicenseAssignment.ReadWrite.All.
    pub async fn provision(
        &self,
        dry_run: bool,
        wait: Duration,
    ) -> Result<crate::matching::ProvisionReport> {
        if !dry_run {
            self.hold_run_lock().await?;
        }
        let report = self.matching().provision(dry_run, wait).await?;
        if !dry_run {
            // New users and licences: the next command decides the pairing again.
            self.store
                .put_record(crate::matching::PAIRING_RECORD, None)
                .await?;
            *self.pairing.lock().await = None;
        }
        Ok(report)
    }

    /// The mailbox pairs the job migrates ([`Engine::pairing`] without the rest).
    pub async fn pairs(&self) -> Result<Vec<MailboxPair>> {
        Ok(self.pairing().await?.pairs)
    }

    pub(crate) fn client_config(&self) -> imap::ClientConfig {
        let mut c = self.source_client.clone();
        c.budget = Some(self.budget.clone());
        c
    }

    /// `source test`: logs in to every mailbox of the credentials file except those
    /// `[matching] exclude` leaves out (several at once), one result per mailbox. Needs no
    /// target: a source that is not paired yet is tested too.
    ///
    /// With `[dav]`, each login is followed by an entry `<login> (contacts and calendars)`: the
    /// DAV sign-in and discovery, counting address books and calendars.
    pub async fn source_test(&self) -> Vec<(String, std::result::Result<usize, String>)> {
        let sem = Arc::new(Semaphore::new(
            self.job.source.connections_per_host.max(1) as usize
        ));
        let mut out = Vec::new();
        let matching = self.matching();
        let logins: Vec<String> = self
            .credentials
            .records()
            .iter()
            .filter(|r| matching.excluded_by(&r.login).is_none())
            .map(|r| r.login.clone())
            .collect();
        let futs = logins.into_iter().map(|source| {
            let sem = sem.clone();
            async move {
                let _permit = sem.acquire().await;
                // Google sign-in: the token first, so that its error names the fix.
                let token = match &self.google {
                    Some(g) => g.check(&source).await.map_err(|e| e.to_string()),
                    None => Ok(()),
                };
                let r = match token {
                    Err(e) => Err(e),
                    Ok(()) => match self.open_source(&source).await {
                        Ok(mut s) => {
                            let r = s
                                .list_mailboxes(false)
                                .await
                                .map(|l| l.len())
                                .map_err(|e| e.to_string());
                            let _ = s.logout().await;
                            r
                        }
                        Err(e) => Err(crate::gmail::with_login_fix(
                            e.to_string(),
                            self.google.is_some(),
                        )),
                    },
                };
                // With `[dav]`: the contacts and calendars sign-in too, counting collections.
                let dav = match self.pim_source(&source) {
                    Ok(None) => None,
                    Ok(Some(p)) => Some(
                        p.collections()
                            .await
                            .map(|c| c.len())
                            .map_err(|e| e.to_string()),
                    ),
                    Err(e) => Some(Err(e.to_string())),
                };
                (source, r, dav)
            }
        });
        for (source, r, dav) in join_all(futs).await {
            let label = format!("{source} (contacts and calendars)");
            out.push((source, r));
            if let Some(d) = dav {
                out.push((label, d));
            }
        }
        out
    }

    /// `target test`: the target's own check, then each paired target mailbox opened (see
    /// [`Engine::pairing`]; an error when the pairing cannot be decided, e.g. the directory
    /// cannot be listed).
    pub async fn target_test(&self) -> Result<TargetTest> {
        let check = self.target.check().await.map_err(|e| e.to_string());
        let mut per = Vec::new();
        let pairs = match &check {
            Ok(()) => self.pairs().await?,
            // Sign-in or permissions failed: the directory cannot be read either.
            Err(_) => Vec::new(),
        };
        for p in pairs {
            let r = self
                .target
                .open_mailbox(&p.target)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string());
            per.push((p.target, r));
        }
        let answer_times = match (&self.graph, per.iter().find(|(_, r)| r.is_ok())) {
            (Some(graph), Some((mailbox, _))) => {
                Some(match graph.measure_answer_times(mailbox).await {
                    Ok(t) => {
                        let m = crate::plan::MeasuredAnswerTimes::new(mailbox, t);
                        crate::state::put_json(
                            self.store.as_ref(),
                            crate::plan::ANSWER_TIMES_RECORD,
                            &m,
                        )
                        .await?;
                        Ok(m)
                    }
                    Err(e) => Err(e.to_string()),
                })
            }
            _ => None,
        };
        Ok(TargetTest {
            check,
            mailboxes: per,
            answer_times,
        })
    }
}

pub(crate) async fn join_all<F: std::future::Future>(
    futs: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
