//! The JSON API under `/api/` (documented in docs/api.md) and the actions behind the page's
//! buttons.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use o365_migrate_engine::config::Job;
use o365_migrate_engine::control::{self, PauseRequest};
use o365_migrate_engine::report::{Event, MailboxReport, Reporter};
use o365_migrate_engine::state::{
    FolderId, ItemPage, ItemQuery, ItemStatus, MailboxId, RunKind, RunSummary, StateStore,
    StatusCounts, StoredEvent, ThroughputPoint,
};
use o365_migrate_engine::{Engine, KeptMailboxVerify, KeptVerify, StopFlag, SyncOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// An API error: status, message, and what to do.
pub(crate) struct ApiError {
    status: StatusCode,
    error: String,
    hint: String,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>, hint: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            hint: hint.into(),
        }
    }
}

impl From<o365_migrate_engine::Error> for ApiError {
    fn from(e: o365_migrate_engine::Error) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
            "see the server's log; the state store may be busy or damaged",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({"error": self.error, "hint": self.hint})),
        )
            .into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// A run this server started.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StartedRun {
    /// `run`, `rescan` or `sync`.
    kind: &'static str,
    /// The one mailbox it works on, if not all.
    mailbox: Option<String>,
    /// When, Unix milliseconds.
    started_at: i64,
    /// How it ended (`None` while it works).
    outcome: Option<String>,
}

/// What every handler shares.
pub(crate) struct App {
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) job: Option<Job>,
    pub(crate) read_only: bool,
    pub(crate) csrf: String,
    /// Engine events of runs this server started, as JSON (for the SSE stream).
    pub(crate) events: broadcast::Sender<String>,
    /// Mailboxes a run of this server is working on now.
    pub(crate) active: Arc<Mutex<HashSet<String>>>,
    /// The last run this server started.
    pub(crate) started: Arc<Mutex<Option<StartedRun>>>,
    /// The overview, kept for a second (every SSE client and page load shares it).
    pub(crate) cached: tokio::sync::Mutex<Option<(std::time::Instant, Arc<Overview>)>>,
}

fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

/// A mailbox's state as the overview shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum MailboxState {
    /// No run has finished it and none works on it now.
    Waiting,
    /// A run works on it.
    Running,
    /// A run holds it, paused by request.
    Paused,
    /// Every item has its outcome; none failed.
    Done,
    /// It stopped with an error, or items failed.
    Failed,
}

/// One mailbox in the overview.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MailboxRow {
    id: MailboxId,
    source: String,
    target: String,
    state: MailboxState,
    counts: StatusCounts,
    /// Items still to do (planned plus not yet listed); `None` = unknown.
    pending: Option<u64>,
    /// Share of items with an outcome, 0–100.
    percent: f64,
    error: Option<String>,
    throttled_answers: u64,
    throttle_pauses: u64,
    folder_notes: Vec<String>,
    plan_messages: Option<u64>,
}

/// Mailboxes per state.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct StateCounts {
    waiting: u64,
    running: u64,
    paused: u64,
    done: u64,
    failed: u64,
}

/// `GET /api/overview`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Overview {
    generated_at: i64,
    /// A run, rescan, sync or provision holds the state's run lock (here or elsewhere).
    running: bool,
    /// The pause in force, if any.
    paused: Option<PauseRequest>,
    read_only: bool,
    /// Whether this server can start runs (it has the job file and is not read-only).
    can_start: bool,
    /// The last run this server started.
    started_here: Option<StartedRun>,
    totals: StatusCounts,
    states: StateCounts,
    pending: u64,
    /// Items migrated per minute over the last 5 minutes.
    rate_per_minute: f64,
    /// Pending items at that rate, in seconds.
    eta_seconds: Option<u64>,
    /// Items migrated per minute over the last hour (for the chart).
    throughput: Vec<ThroughputPoint>,
    mailboxes: Vec<MailboxRow>,
    last_run: Option<RunSummary>,
    verify: Option<VerifySummary>,
}

/// What the last `verify` said, overall.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct VerifySummary {
    at: i64,
    deep: bool,
    ok: bool,
}

async fn kept_verify(store: &dyn StateStore) -> ApiResult<Option<KeptVerify>> {
    Ok(store
        .record(o365_migrate_engine::VERIFY_RECORD)
        .await?
        .and_then(|r| serde_json::from_str(&r.value).ok()))
}

impl App {
    fn row(&self, m: MailboxReport, running: bool, paused: bool) -> MailboxRow {
        let pending = m.pending();
        let done_items = m.counts.migrated + m.counts.skipped + m.counts.failed;
        let finished = pending == Some(0) && (done_items > 0 || m.plan_messages.is_some());
        let active = self
            .active
            .lock()
            .map(|a| a.contains(&m.source))
            .unwrap_or(false);
        let state = if m.error.is_some() || (finished && m.counts.failed > 0) {
            MailboxState::Failed
        } else if finished && done_items > 0 {
            MailboxState::Done
        } else if running && paused {
            MailboxState::Paused
        } else if active || (running && self.active_unknown()) {
            MailboxState::Running
        } else {
            MailboxState::Waiting
        };
        let total = done_items + pending.unwrap_or(0);
        MailboxRow {
            id: m.id,
            state,
            percent: if total == 0 {
                0.0
            } else {
                (done_items as f64 * 1000.0 / total as f64).round() / 10.0
            },
            counts: m.counts,
            pending,
            error: m.error,
            throttled_answers: m.throttled_answers,
            throttle_pauses: m.throttle_pauses,
            folder_notes: m.folder_notes,
            plan_messages: m.plan_messages,
            source: m.source,
            target: m.target,
        }
    }

    /// Whether the run holding the lock is another process's (so which mailboxes it works on
    /// is not known here: every unfinished one shows as running).
    fn active_unknown(&self) -> bool {
        self.started
            .lock()
            .map(|s| s.as_ref().is_none_or(|s| s.outcome.is_some()))
            .unwrap_or(true)
    }

    /// The overview, at most a second old.
    pub(crate) async fn overview(&self) -> ApiResult<Arc<Overview>> {
        let mut cached = self.cached.lock().await;
        if let Some((at, o)) = cached.as_ref()
            && at.elapsed() < std::time::Duration::from_secs(1)
        {
            return Ok(o.clone());
        }
        let o = Arc::new(self.build_overview().await?);
        *cached = Some((std::time::Instant::now(), o.clone()));
        Ok(o)
    }

    /// Forgets the cached overview (after an action).
    pub(crate) async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    async fn build_overview(&self) -> ApiResult<Overview> {
        let store = self.store.as_ref();
        let running = store.run_lock_held().await?;
        let paused = control::pause_request(store).await?;
        let reports = o365_migrate_engine::report::Report::mailbox_reports(store).await?;
        let mut states = StateCounts::default();
        let mut totals = StatusCounts::default();
        let mut pending = 0;
        let mut mailboxes = Vec::with_capacity(reports.len());
        for m in reports {
            let row = self.row(m, running, paused.is_some());
            match row.state {
                MailboxState::Waiting => states.waiting += 1,
                MailboxState::Running => states.running += 1,
                MailboxState::Paused => states.paused += 1,
                MailboxState::Done => states.done += 1,
                MailboxState::Failed => states.failed += 1,
            }
            totals.planned += row.counts.planned;
            totals.migrated += row.counts.migrated;
            totals.skipped += row.counts.skipped;
            totals.failed += row.counts.failed;
            totals.migrated_bytes += row.counts.migrated_bytes;
            pending += row.pending.unwrap_or(0);
            mailboxes.push(row);
        }
        let now = now_ms();
        let throughput = store
            .migrated_over_time(None, now - 3_600_000, 60_000)
            .await?;
        let five_min: u64 = throughput
            .iter()
            .filter(|p| p.at >= now - 300_000)
            .map(|p| p.items)
            .sum();
        let rate_per_minute = five_min as f64 / 5.0;
        let eta_seconds = (rate_per_minute > 0.0 && pending > 0)
            .then(|| (pending as f64 / rate_per_minute * 60.0).round() as u64);
        let last_run = store.runs().await?.into_iter().last();
        let verify = kept_verify(store).await?.map(|v| VerifySummary {
            at: v.at,
            deep: v.deep,
            ok: v.ok,
        });
        Ok(Overview {
            generated_at: now,
            running,
            paused,
            read_only: self.read_only,
            can_start: self.job.is_some() && !self.read_only,
            started_here: self.started.lock().ok().and_then(|s| s.clone()),
            totals,
            states,
            pending,
            rate_per_minute,
            eta_seconds,
            throughput,
            mailboxes,
            last_run,
            verify,
        })
    }
}

/// `GET /api/overview`.
pub(crate) async fn overview(State(app): State<Arc<App>>) -> ApiResult<Json<Arc<Overview>>> {
    Ok(Json(app.overview().await?))
}

/// `GET /api/mailboxes`.
pub(crate) async fn mailboxes(State(app): State<Arc<App>>) -> ApiResult<Json<Vec<MailboxRow>>> {
    Ok(Json(app.overview().await?.mailboxes.clone()))
}

/// One folder of a mailbox page.
#[derive(Debug, Serialize)]
pub(crate) struct FolderRow {
    id: FolderId,
    source_path: String,
    target_path: String,
    counts: StatusCounts,
}

/// `GET /api/mailboxes/{id}`.
#[derive(Debug, Serialize)]
pub(crate) struct MailboxDetail {
    mailbox: MailboxRow,
    folders: Vec<FolderRow>,
    /// What the last `verify` found for this mailbox.
    verify: Option<KeptMailboxVerify>,
    verify_at: Option<i64>,
    /// Throttling events of this mailbox, newest last (at most 100).
    throttling: Vec<StoredEvent>,
}

async fn find_row(app: &App, id: i64) -> ApiResult<MailboxRow> {
    app.overview()
        .await?
        .mailboxes
        .iter()
        .find(|m| m.id.0 == id)
        .cloned()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no mailbox with id {id}"),
                "list them with GET /api/mailboxes",
            )
        })
}

/// `GET /api/mailboxes/{id}`.
pub(crate) async fn mailbox(
    State(app): State<Arc<App>>,
    Path(id): Path<i64>,
) -> ApiResult<Json<MailboxDetail>> {
    let row = find_row(&app, id).await?;
    let store = app.store.as_ref();
    let counts = store.folder_counts(row.id).await?;
    let folders = store
        .folders(row.id)
        .await?
        .into_iter()
        .map(|f| FolderRow {
            counts: counts
                .iter()
                .find(|c| c.folder == f.id)
                .map(|c| c.counts)
                .unwrap_or_default(),
            id: f.id,
            source_path: f.source_path,
            target_path: f.target_path,
        })
        .collect();
    let kept = kept_verify(store).await?;
    let verify_at = kept.as_ref().map(|k| k.at);
    let verify = kept.and_then(|k| k.mailboxes.into_iter().find(|m| m.source == row.source));
    let mut throttling: Vec<StoredEvent> = store
        .events(&["target_throttled"])
        .await?
        .into_iter()
        .filter(|e| e.mailbox == Some(row.id))
        .collect();
    let skip = throttling.len().saturating_sub(100);
    throttling.drain(..skip);
    Ok(Json(MailboxDetail {
        mailbox: row,
        folders,
        verify,
        verify_at,
        throttling,
    }))
}

/// `GET /api/items` parameters (all optional).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ItemParams {
    mailbox: Option<i64>,
    folder: Option<i64>,
    status: Option<String>,
    /// Any of subject, sender, reason, folder.
    q: Option<String>,
    subject: Option<String>,
    sender: Option<String>,
    reason: Option<String>,
    folder_path: Option<String>,
    /// `YYYY-MM-DD` (UTC), inclusive.
    since: Option<String>,
    /// `YYYY-MM-DD` (UTC), exclusive.
    before: Option<String>,
    after: Option<i64>,
    limit: Option<u32>,
}

fn day(name: &str, v: &str) -> ApiResult<i64> {
    let f = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(v.trim(), &f)
        .map(|d| d.midnight().assume_utc().unix_timestamp())
        .map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("`{name}={v}` is not a date"),
                "write dates as YYYY-MM-DD (UTC)",
            )
        })
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().to_owned())
}

/// `GET /api/items`: the item ledger, filtered and paged on the server.
pub(crate) async fn items(
    State(app): State<Arc<App>>,
    Query(p): Query<ItemParams>,
) -> ApiResult<Json<ItemPage>> {
    let status = match nonempty(p.status) {
        None => None,
        Some(s) => Some(ItemStatus::parse(&s).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("`status={s}` is not a status"),
                "use planned, migrated, skipped or failed",
            )
        })?),
    };
    let q = ItemQuery {
        mailbox: p.mailbox.map(MailboxId),
        folder: p.folder.map(FolderId),
        status,
        subject: nonempty(p.subject),
        sender: nonempty(p.sender),
        reason: nonempty(p.reason),
        folder_path: nonempty(p.folder_path),
        text: nonempty(p.q),
        since: nonempty(p.since).map(|v| day("since", &v)).transpose()?,
        before: nonempty(p.before).map(|v| day("before", &v)).transpose()?,
        after_id: p.after.unwrap_or(0),
        limit: p.limit.unwrap_or(50),
    };
    Ok(Json(app.store.search_items(&q).await?))
}

/// `GET /api/runs`.
pub(crate) async fn runs(State(app): State<Arc<App>>) -> ApiResult<Json<Vec<RunSummary>>> {
    Ok(Json(app.store.runs().await?))
}

/// `GET /api/events/recent`: the newest stored events (at most 200), oldest first.
pub(crate) async fn recent_events(
    State(app): State<Arc<App>>,
) -> ApiResult<Json<Vec<StoredEvent>>> {
    Ok(Json(
        crate::live::latest_events(app.store.as_ref(), 200).await?,
    ))
}

/// `GET /api/reports/{name}`: `report.json`, `report.html`, `items.csv` or `items.json`.
pub(crate) async fn report(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    use o365_migrate_engine::report::{Report, write_items_csv, write_items_json};
    let store = app.store.as_ref();
    let io = |e: std::io::Error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("writing {name}: {e}"),
            "see the server's log",
        )
    };
    let (body, ctype) = match name.as_str() {
        "report.json" => {
            let r = Report::build(store).await?;
            (
                serde_json::to_vec_pretty(&r).unwrap_or_default(),
                "application/json",
            )
        }
        "report.html" => (
            Report::build(store).await?.html().into_bytes(),
            "text/html; charset=utf-8",
        ),
        "items.csv" | "items.json" => {
            // The writers take a `dyn Write`, which is not `Send`: they run on a blocking
            // thread of their own.
            let csv = name == "items.csv";
            let store = app.store.clone();
            let handle = tokio::runtime::Handle::current();
            let v = tokio::task::spawn_blocking(move || {
                let mut v = Vec::new();
                let r = handle.block_on(async {
                    if csv {
                        write_items_csv(store.as_ref(), &mut v).await
                    } else {
                        write_items_json(store.as_ref(), &mut v).await
                    }
                });
                r.map(|_| v)
            })
            .await
            .map_err(|e| io(std::io::Error::other(e)))?
            .map_err(io)?;
            let ctype = if csv {
                "text/csv; charset=utf-8"
            } else {
                "application/json"
            };
            (v, ctype)
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no report `{name}`"),
                "ask for report.json, report.html, items.csv or items.json",
            ));
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, ctype.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// `POST /api/runs` body.
#[derive(Debug, Deserialize)]
pub(crate) struct StartRun {
    /// `run`, `rescan` or `sync`.
    kind: String,
    /// Only this mailbox (source or target address).
    mailbox: Option<String>,
}

/// Starts `kind` over `only` in a thread of its own (its own runtime: the engine's run is
/// long and is not tied to any request), once it holds the state's run lock.
async fn start(app: &Arc<App>, kind: RunKind, mailbox: Option<String>) -> ApiResult<StartedRun> {
    let job = app.job.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "this dashboard was started without a job file",
            "start `o365-migrate serve` with the job's --config to start runs from the page",
        )
    })?;
    if app.store.run_lock_held().await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "a run, rescan, sync or provision is already working on this state",
            "wait for it to finish, or pause it",
        ));
    }
    let reporter = Arc::new(LiveReporter {
        tx: app.events.clone(),
        active: app.active.clone(),
    });
    let store = app.store.clone();
    let name = match kind {
        RunKind::Rescan => "rescan",
        RunKind::Sync => "sync",
        _ => "run",
    };
    let started = StartedRun {
        kind: name,
        mailbox: mailbox.clone(),
        started_at: now_ms(),
        outcome: None,
    };
    let slot = app.started.clone();
    let tx = app.events.clone();
    let active = app.active.clone();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
    let only: Vec<String> = mailbox.into_iter().collect();
    std::thread::Builder::new()
        .name(format!("dashboard-{name}"))
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("cannot start a runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                let engine = match Engine::new(job, store, reporter, StopFlag::new()) {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                if let Err(e) = engine.hold_run_lock().await {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
                let _ = ready_tx.send(Ok(()));
                let r = match kind {
                    RunKind::Sync => engine.sync(&only, SyncOptions::default()).await,
                    k => engine.run(k, &only).await,
                };
                let outcome = match &r {
                    Ok((_, t)) if t.stopped => "stopped".to_owned(),
                    Ok((_, t)) if t.failed > 0 || !t.mailbox_errors.is_empty() => {
                        format!(
                            "finished with {} failed items, {} mailbox errors",
                            t.failed,
                            t.mailbox_errors.len()
                        )
                    }
                    Ok(_) => "completed".to_owned(),
                    Err(e) => format!("failed: {e}"),
                };
                if let Ok(mut a) = active.lock() {
                    a.clear();
                }
                if let Ok(mut s) = slot.lock()
                    && let Some(s) = s.as_mut()
                {
                    s.outcome = Some(outcome.clone());
                }
                let _ = tx.send(
                    serde_json::json!({"event": "run_finished", "kind": name, "outcome": outcome})
                        .to_string(),
                );
            });
        })
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot start a thread: {e}"),
                "the machine is out of resources",
            )
        })?;
    match ready_rx.await {
        Ok(Ok(())) => {
            if let Ok(mut s) = app.started.lock() {
                *s = Some(started.clone());
            }
            app.invalidate().await;
            Ok(started)
        }
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            e,
            "fix the job or wait for the other run, then try again",
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the run's thread ended before it started",
            "see the server's log",
        )),
    }
}

/// `POST /api/runs`: starts a run, rescan or sync (202), or says why not (409).
pub(crate) async fn start_run(
    State(app): State<Arc<App>>,
    Json(body): Json<StartRun>,
) -> ApiResult<(StatusCode, Json<StartedRun>)> {
    let kind = match body.kind.as_str() {
        "run" => RunKind::Run,
        "rescan" => RunKind::Rescan,
        "sync" => RunKind::Sync,
        k => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("`{k}` is not something the dashboard starts"),
                "use run, rescan or sync",
            ));
        }
    };
    let started = start(&app, kind, nonempty(body.mailbox)).await?;
    Ok((StatusCode::ACCEPTED, Json(started)))
}

/// `POST /api/mailboxes/{id}/retry`: a rescan of that mailbox, which retries its failed
/// items (and copies what arrived since).
pub(crate) async fn retry(
    State(app): State<Arc<App>>,
    Path(id): Path<i64>,
) -> ApiResult<(StatusCode, Json<StartedRun>)> {
    let row = find_row(&app, id).await?;
    let started = start(&app, RunKind::Rescan, Some(row.source)).await?;
    Ok((StatusCode::ACCEPTED, Json(started)))
}

/// `POST /api/pause`: every run on this state (here or in another process) stops starting
/// items, records those in flight and waits.
pub(crate) async fn pause(State(app): State<Arc<App>>) -> ApiResult<Json<serde_json::Value>> {
    let p = control::request_pause(app.store.as_ref(), "dashboard").await?;
    app.invalidate().await;
    Ok(Json(
        serde_json::json!({"paused": true, "by": p.by, "at": p.at}),
    ))
}

/// `POST /api/resume`.
pub(crate) async fn resume(State(app): State<Arc<App>>) -> ApiResult<Json<serde_json::Value>> {
    let was = control::request_resume(app.store.as_ref()).await?;
    app.invalidate().await;
    Ok(Json(
        serde_json::json!({"paused": false, "was_paused": was}),
    ))
}

/// `GET /api/session`: what the page needs to act (the CSRF token for POSTs).
pub(crate) async fn session(State(app): State<Arc<App>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "csrf_token": app.csrf,
        "read_only": app.read_only,
        "can_start": app.job.is_some() && !app.read_only,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// Sends the engine's events of runs this server started to the SSE clients, and keeps the
/// set of mailboxes they work on.
struct LiveReporter {
    tx: broadcast::Sender<String>,
    active: Arc<Mutex<HashSet<String>>>,
}

impl Reporter for LiveReporter {
    fn report(&self, event: &Event) {
        match event {
            Event::MailboxStarted { mailbox, .. } => {
                if let Ok(mut a) = self.active.lock() {
                    a.insert(mailbox.clone());
                }
            }
            Event::MailboxFinished { mailbox, .. } => {
                if let Ok(mut a) = self.active.lock() {
                    a.remove(mailbox);
                }
            }
            // One per item: the overview's counts carry them.
            Event::ItemMigrated { .. } | Event::FolderProgress { .. } => return,
            _ => {}
        }
        if self.tx.receiver_count() > 0
            && let Ok(json) = serde_json::to_string(event)
        {
            let _ = self.tx.send(json);
        }
    }
}
