//! `o365-migrate worker`: many processes on many machines share one migration through a
//! shared state store (PostgreSQL; SQLite works too, for workers on one machine).
//!
//! Each worker takes the run lock *shared* ([`StateStore::lock_workers`]: workers together,
//! never with a `run`), puts the job's mailboxes in the work queue (idempotent, every worker
//! does it), and runs `lanes` mailboxes at once. A lane leases one mailbox
//! ([`StateStore::lease_mailbox`]: compare-and-set on the lease generation, timed by the
//! store's clock), renews the lease every third of its time to live while it runs the mailbox
//! as `run` would — so a mailbox that was half done resumes where it stopped, and nothing is
//! copied twice —, then ends the lease `done` or `failed`.
//!
//! Why leases in tables rather than `SELECT … FOR UPDATE SKIP LOCKED` held for the mailbox's
//! run, or a PostgreSQL job-queue crate: a mailbox can take hours, and a row lock or a
//! queue's visibility timeout tied to one database session would be lost on any reconnect; a
//! lease row with an expiry survives reconnects, works the same on SQLite, and its generation
//! is a fencing token — a worker that stalled past its lease can neither renew nor end it once
//! another took over (and stops its run as soon as it learns so). The lease history is kept:
//! who held which mailbox from when to when.
//!
//! A worker that dies (SIGKILL, power) stops renewing: its leases expire and other workers take
//! the mailboxes over. SIGTERM / Ctrl-C: items in flight are finished and recorded, the leases
//! are released at once (another worker may take them immediately), and the worker exits.
//! Pausing (`o365-migrate pause`) reaches every worker's runs within
//! [`crate::control::PAUSE_POLL`]: they hold their leases (still renewed) and wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::join_all;

use crate::config::Job;
use crate::engine::{Engine, StopFlag};
use crate::error::{Error, Result};
use crate::report::Reporter;
use crate::state::{Lease, LeaseEnd, RunKind, StateStore, WorkState};
use o365_migrate_target as target;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The worker's id in the store (leases, status). Unique per process:
    /// [`default_worker_id`] is `host:pid`.
    pub id: String,
    /// Mailboxes this worker runs at once (at least 1).
    pub lanes: usize,
    /// How long a lease lasts unless renewed; renewed every third of it. Another worker takes
    /// over a dead worker's mailbox after at most this long.
    pub lease: Duration,
    /// How often an idle lane looks for a mailbox whose lease expired.
    pub idle_poll: Duration,
    /// Put done and failed mailboxes back to waiting first (a new pass: what is new in the
    /// source since is copied, the rest is known).
    pub requeue: bool,
}

impl WorkerOptions {
    /// `lanes` lanes, a 60-second lease, a 2-second idle poll, no requeue.
    pub fn new(id: impl Into<String>, lanes: usize) -> WorkerOptions {
        WorkerOptions {
            id: id.into(),
            lanes,
            lease: Duration::from_secs(60),
            idle_poll: Duration::from_secs(2),
            requeue: false,
        }
    }
}

/// `host:pid`.
pub fn default_worker_id() -> String {
    format!("{}:{}", host_name(), std::process::id())
}

/// This machine's name (`/proc/sys/kernel/hostname`, `$HOSTNAME`, or `localhost`).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// What one worker did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WorkerTotals {
    /// Mailboxes it finished.
    pub done: u64,
    /// Mailboxes that failed as a whole under it (reasons in `status`).
    pub failed: u64,
    /// Leases it gave back (stopping).
    pub released: u64,
    /// Leases it lost to another worker (it had stalled past their expiry).
    pub lost: u64,
    /// Items it migrated.
    pub migrated: u64,
    /// Items it skipped.
    pub skipped: u64,
    /// Items that failed.
    pub failed_items: u64,
    /// Whether it stopped early (SIGTERM / Ctrl-C).
    pub stopped: bool,
    /// Milliseconds spent taking and ending leases (the cost of sharing).
    pub lease_ms: u64,
    /// Milliseconds requests waited for the fleet's shared budget (summed over requests).
    pub budget_wait_ms: u64,
}

#[derive(Default)]
struct Tally {
    done: AtomicU64,
    failed: AtomicU64,
    released: AtomicU64,
    lost: AtomicU64,
    migrated: AtomicU64,
    skipped: AtomicU64,
    failed_items: AtomicU64,
    lease_us: AtomicU64,
}

/// Runs a worker until the work queue has no waiting mailbox or `stop` is set.
pub async fn work(
    job: Job,
    store: Arc<dyn StateStore>,
    reporter: Arc<dyn Reporter>,
    stop: StopFlag,
    options: WorkerOptions,
) -> Result<WorkerTotals> {
    if options.id.trim().is_empty() {
        return Err(Error::Pipeline {
            context: "starting a worker".into(),
            message: "the worker id is empty".into(),
            hint: Some("leave --id out for host:pid, or give a unique name".into()),
        });
    }
    let _shared = store.lock_workers().await?;
    let ttl_ms = i64::try_from(options.lease.as_millis()).unwrap_or(i64::MAX);
    // The queue: every worker adds the job's mailboxes (those there keep their state).
    let setup = Engine::new(job.clone(), store.clone(), reporter.clone(), stop.clone())?;
    let mut ids = Vec::new();
    for p in setup.pairs().await? {
        ids.push(store.upsert_mailbox(&p.source, &p.target).await?);
    }
    drop(setup);
    store.enqueue_mailboxes(&ids).await?;
    if options.requeue {
        store.requeue_mailboxes().await?;
    }
    let host = host_name();
    let pid = std::process::id();
    store.worker_seen(&options.id, &host, pid, false).await?;
    let beating = Arc::new(AtomicBool::new(true));
    let heartbeat = {
        let (store, id, host, beating) = (
            store.clone(),
            options.id.clone(),
            host.clone(),
            beating.clone(),
        );
        let every = (options.lease / 3).max(Duration::from_millis(100));
        tokio::spawn(async move {
            while beating.load(Ordering::SeqCst) {
                tokio::time::sleep(every).await;
                let _ = store.worker_seen(&id, &host, pid, false).await;
            }
        })
    };
    let tally = Tally::default();
    let budget = Arc::new(FleetBudget::new(store.clone(), &job.fleet).await?);
    let shared: Arc<dyn target::graph::SharedBudget> = budget.clone();
    let lanes = (0..options.lanes.max(1)).map(|_| {
        lane(
            &job, &store, &reporter, &stop, &options, ttl_ms, &tally, &shared,
        )
    });
    let results = join_all(lanes).await;
    beating.store(false, Ordering::SeqCst);
    heartbeat.abort();
    store.worker_seen(&options.id, &host, pid, true).await?;
    for r in results {
        r?;
    }
    Ok(WorkerTotals {
        done: tally.done.load(Ordering::Relaxed),
        failed: tally.failed.load(Ordering::Relaxed),
        released: tally.released.load(Ordering::Relaxed),
        lost: tally.lost.load(Ordering::Relaxed),
        migrated: tally.migrated.load(Ordering::Relaxed),
        skipped: tally.skipped.load(Ordering::Relaxed),
        failed_items: tally.failed_items.load(Ordering::Relaxed),
        stopped: stop.is_stopped(),
        lease_ms: tally.lease_us.load(Ordering::Relaxed) / 1000,
        budget_wait_ms: budget.waited_ms(),
    })
}

/// One lane: lease, run, end; until nothing waits or the worker stops.
#[allow(clippy::too_many_arguments)]
async fn lane(
    job: &Job,
    store: &Arc<dyn StateStore>,
    reporter: &Arc<dyn Reporter>,
    stop: &StopFlag,
    options: &WorkerOptions,
    ttl_ms: i64,
    tally: &Tally,
    shared: &Arc<dyn target::graph::SharedBudget>,
) -> Result<()> {
    // The lane's own stop flag: set by the worker's (SIGTERM) or by a lost lease, which must
    // stop this lane's mailbox only.
    let lane_stop = StopFlag::new();
    let mut engine = Engine::build(
        job.clone(),
        store.clone(),
        reporter.clone(),
        lane_stop.clone(),
        Some(shared.clone()),
    )?;
    engine.worker = Some(options.id.clone());
    let max_live = job.fleet.mailboxes_at_once.map(u64::from);
    loop {
        if stop.is_stopped() {
            return Ok(());
        }
        let t0 = std::time::Instant::now();
        let leased = store.lease_mailbox(&options.id, ttl_ms, max_live).await?;
        tally.lease_us.fetch_add(elapsed_us(t0), Ordering::Relaxed);
        let Some(lease) = leased else {
            let now = store.clock().await?;
            if store.work_counts(now).await?.waiting == 0 {
                return Ok(());
            }
            // Held by other workers: one of them may die, and its lease expire.
            sleep_unless_stopped(options.idle_poll, stop).await;
            continue;
        };
        lane_stop.clear();
        let lost = Arc::new(AtomicBool::new(false));
        let keeper = keep_lease(
            store.clone(),
            lease.clone(),
            ttl_ms,
            options.lease,
            stop.clone(),
            lane_stop.clone(),
            lost.clone(),
        );
        let r = engine
            .run_pass(RunKind::Run, std::slice::from_ref(&lease.source), None)
            .await;
        keeper.abort();
        let _ = keeper.await;
        if lost.load(Ordering::SeqCst) {
            tally.lost.fetch_add(1, Ordering::Relaxed);
            if let Ok((_, t)) = &r {
                add(tally, t);
            }
            continue;
        }
        let end = match &r {
            _ if stop.is_stopped() => LeaseEnd::Released,
            Ok((_, t)) if t.stopped => LeaseEnd::Released,
            Ok((_, t)) if !t.paused.is_empty() => LeaseEnd::Failed(t.paused.join("; ")),
            Ok((_, t)) if t.mailbox_errors.is_empty() => LeaseEnd::Done,
            Ok((_, t)) => LeaseEnd::Failed(t.mailbox_errors.join("; ")),
            Err(e) => LeaseEnd::Failed(e.to_string()),
        };
        if let Ok((_, t)) = &r {
            add(tally, t);
        }
        let counter = match end {
            LeaseEnd::Done => &tally.done,
            LeaseEnd::Failed(_) => &tally.failed,
            LeaseEnd::Released => &tally.released,
        };
        let t0 = std::time::Instant::now();
        let ended = store.end_lease(&lease, &end).await?;
        tally.lease_us.fetch_add(elapsed_us(t0), Ordering::Relaxed);
        if ended {
            counter.fetch_add(1, Ordering::Relaxed);
        } else {
            tally.lost.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(e) = r
            && is_store_error(&e)
        {
            // The state store itself failed: this worker cannot record anything.
            return Err(e);
        }
    }
}

fn elapsed_us(t0: std::time::Instant) -> u64 {
    u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX)
}

fn add(tally: &Tally, t: &crate::run::RunTotals) {
    tally.migrated.fetch_add(t.migrated, Ordering::Relaxed);
    tally.skipped.fetch_add(t.skipped, Ordering::Relaxed);
    tally.failed_items.fetch_add(t.failed, Ordering::Relaxed);
}

fn is_store_error(e: &Error) -> bool {
    matches!(e, Error::State { .. })
}

/// Renews `lease` every third of its time to live while the mailbox runs. Stops the lane's run
/// when the lease is lost (another worker took over) or when no renewal got through for two
/// thirds of the time to live (self-fencing: the lease may be about to expire). Forwards the
/// worker's stop to the lane.
fn keep_lease(
    store: Arc<dyn StateStore>,
    mut lease: Lease,
    ttl_ms: i64,
    ttl: Duration,
    stop: StopFlag,
    lane_stop: StopFlag,
    lost: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = (ttl / 3).max(Duration::from_millis(50));
        let tick = every.min(crate::control::PAUSE_POLL);
        let mut last_ok = std::time::Instant::now();
        let mut next = last_ok + every;
        loop {
            tokio::time::sleep(tick).await;
            if stop.is_stopped() {
                lane_stop.stop();
            }
            if std::time::Instant::now() < next {
                continue;
            }
            next = std::time::Instant::now() + every;
            match store.renew_lease(&lease, ttl_ms).await {
                Ok(Some(until)) => {
                    lease.until = until;
                    last_ok = std::time::Instant::now();
                }
                Ok(None) => {
                    lost.store(true, Ordering::SeqCst);
                    lane_stop.stop();
                    return;
                }
                Err(_) if last_ok.elapsed() > ttl * 2 / 3 => {
                    lost.store(true, Ordering::SeqCst);
                    lane_stop.stop();
                    return;
                }
                Err(_) => {}
            }
        }
    })
}

async fn sleep_unless_stopped(d: Duration, stop: &StopFlag) {
    let until = std::time::Instant::now() + d;
    while std::time::Instant::now() < until && !stop.is_stopped() {
        tokio::time::sleep(Duration::from_millis(50).min(d)).await;
    }
}

/// The whole fleet as the store knows it: for `status` and the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fleet {
    /// The store's clock when read, Unix milliseconds.
    pub now: i64,
    /// Mailboxes waiting (free or leased), done and failed.
    pub waiting: u64,
    /// Of the waiting ones, those a live lease holds now.
    pub leased: u64,
    /// Of the waiting ones, those whose lease expired and that no worker has taken over yet:
    /// their worker died or lost the store.
    pub stuck: u64,
    /// Mailboxes done.
    pub done: u64,
    /// Mailboxes failed.
    pub failed: u64,
    /// Every worker that reported, with whether it is alive (a heartbeat within the last
    /// minute and no clean stop), what it holds and what its runs migrated.
    pub workers: Vec<FleetWorker>,
    /// The work queue ([`Fleet::summary`]: only the mailboxes held now, stuck or failed).
    pub queue: Vec<crate::state::WorkRow>,
    /// Every lease taken: who held which mailbox from when to when (none from
    /// [`Fleet::summary`]).
    pub leases: Vec<crate::state::LeaseSpan>,
}

/// One worker in [`Fleet`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct FleetWorker {
    /// What it reported.
    #[serde(flatten)]
    pub record: crate::state::WorkerRecord,
    /// Whether it is alive.
    pub alive: bool,
    /// The mailboxes it holds now (source addresses).
    pub holding: Vec<String>,
    /// Items per minute it migrated since it started (its runs' counters over its lifetime).
    pub items_per_minute: f64,
}

impl Fleet {
    /// Reads the whole fleet from the store: the queue and every lease ever taken too (for
    /// the report and `status --json`; empty when no worker ever ran).
    pub async fn read(store: &dyn StateStore) -> Result<Fleet> {
        Self::read_with(store, true).await
    }

    /// Reads what a person watching needs, a few rows per worker however long the queue:
    /// the counts, the workers, the mailboxes held, stuck or failed — not the whole queue nor
    /// the lease history.
    pub async fn summary(store: &dyn StateStore) -> Result<Fleet> {
        Self::read_with(store, false).await
    }

    /// Whether any worker ever had a queue here.
    pub fn is_empty(&self) -> bool {
        self.waiting + self.done + self.failed == 0
    }

    async fn read_with(store: &dyn StateStore, full: bool) -> Result<Fleet> {
        let now = store.clock().await?;
        let counts = store.work_counts(now).await?;
        let scope = if full {
            crate::state::WorkScope::All
        } else {
            crate::state::WorkScope::HeldOrFailed
        };
        let queue = if counts.total() == 0 {
            Vec::new()
        } else {
            store.work_queue(scope).await?
        };
        let leases = if full && counts.total() > 0 {
            store.lease_history().await?
        } else {
            Vec::new()
        };
        let workers = store.workers().await?;
        let live = |w: &crate::state::WorkRow| {
            w.state == WorkState::Waiting && w.worker.is_some() && w.lease_until >= now
        };
        let workers = workers
            .into_iter()
            .map(|record| {
                let holding = queue
                    .iter()
                    .filter(|w| live(w) && w.worker.as_deref() == Some(record.id.as_str()))
                    .map(|w| w.source.clone())
                    .collect();
                let alive = record.stopped_at.is_none() && now - record.heartbeat_at < 60_000;
                let end = record.stopped_at.unwrap_or(now).max(record.started_at + 1);
                #[allow(clippy::cast_precision_loss)]
                let items_per_minute =
                    record.migrated as f64 * 60_000.0 / (end - record.started_at) as f64;
                FleetWorker {
                    record,
                    alive,
                    holding,
                    items_per_minute,
                }
            })
            .collect();
        Ok(Fleet {
            now,
            waiting: counts.waiting,
            leased: counts.leased,
            stuck: counts.stuck,
            done: counts.done,
            failed: counts.failed,
            workers,
            queue,
            leases,
        })
    }

    /// For people: the queue in one line, one line per worker, one per failed or stuck mailbox.
    pub fn human(&self) -> String {
        use std::fmt::Write as _;
        let mut out = format!(
            "fleet: {} mailboxes waiting ({} leased, {} stuck on an expired lease), {} done, {} failed\n",
            self.waiting, self.leased, self.stuck, self.done, self.failed
        );
        for w in &self.workers {
            let state = match (w.alive, w.record.stopped_at) {
                (true, _) => format!(
                    "alive, last heartbeat {} s ago",
                    (self.now - w.record.heartbeat_at).max(0) / 1000
                ),
                (false, Some(_)) => "stopped".into(),
                (false, None) => format!(
                    "silent for {} s (dead?)",
                    (self.now - w.record.heartbeat_at).max(0) / 1000
                ),
            };
            let _ = writeln!(
                out,
                "  worker {} on {} (pid {}): {state}; holds {}; migrated {} ({:.0}/min)",
                w.record.id,
                w.record.host,
                w.record.pid,
                if w.holding.is_empty() {
                    "nothing".to_owned()
                } else {
                    w.holding.join(", ")
                },
                w.record.migrated,
                w.items_per_minute
            );
        }
        for q in &self.queue {
            if q.state == WorkState::Failed {
                let _ = writeln!(
                    out,
                    "  failed: {}: {}",
                    q.source,
                    q.reason.as_deref().unwrap_or("")
                );
            } else if q.state == WorkState::Waiting
                && q.worker.is_some()
                && q.lease_until < self.now
            {
                let _ = writeln!(
                    out,
                    "  stuck: {} (lease of {} expired {} s ago; the next idle worker takes it over)",
                    q.source,
                    q.worker.as_deref().unwrap_or(""),
                    (self.now - q.lease_until) / 1000
                );
            }
        }
        out
    }
}

/// The fleet's shared budget ([`crate::config::FleetConfig`]): Graph requests (and upload
/// bytes) per second over every worker, booked in the state store one tick — a tenth of a
/// second of the store's clock, with a tenth of the cap — at a time
/// ([`StateStore::reserve_budget`]). A worker books a twentieth of a tick's share at once and
/// spends it locally, so it asks the store a few times per tick at most; what it booked and
/// did not spend by the end of the tick is dropped, never carried over. So the fleet stays
/// under the cap in every second, and a window of any second or ten seconds, wherever it
/// starts, holds at most a tenth of a second's cap more. When the store cannot be reached for
/// 10 seconds a request goes without booking (the worker cannot record anything then and
/// stops soon after: its leases are renewed through the same store).
pub struct FleetBudget {
    store: Arc<dyn StateStore>,
    max_requests: u64,
    max_bytes: u64,
    chunk_requests: u64,
    chunk_bytes: u64,
    /// The store's clock minus this machine's, milliseconds.
    offset_ms: i64,
    local: tokio::sync::Mutex<Allowance>,
    waited_us: AtomicU64,
}

impl std::fmt::Debug for FleetBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetBudget")
            .field("max_requests", &self.max_requests)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Allowance {
    slot: i64,
    requests: u64,
    bytes: u64,
}

/// No byte cap: large enough never to bind, small enough that sums stay in an `i64`.
const NO_BYTE_CAP: u64 = 1 << 60;

impl FleetBudget {
    /// The budget `fleet` describes, over `store`.
    pub async fn new(
        store: Arc<dyn StateStore>,
        fleet: &crate::config::FleetConfig,
    ) -> Result<Self> {
        let bad = |message: String| Error::Pipeline {
            context: "[fleet]".into(),
            message,
            hint: Some("give a positive number, or leave the setting out".into()),
        };
        if fleet.requests_per_second == 0 {
            return Err(bad("requests_per_second is 0".into()));
        }
        let max_bytes = match fleet.megabytes_per_second {
            Some(mb) if !(mb > 0.0 && mb.is_finite()) => {
                return Err(bad(format!("megabytes_per_second is {mb}")));
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Some(mb) => ((mb * 1e6) as u64).clamp(1, NO_BYTE_CAP),
            None => NO_BYTE_CAP,
        };
        let max_requests = u64::from(fleet.requests_per_second);
        let offset_ms = store.clock().await? - crate::state::now_ms();
        Ok(FleetBudget {
            store,
            max_requests,
            max_bytes,
            chunk_requests: max_requests.div_ceil(200),
            chunk_bytes: if max_bytes == NO_BYTE_CAP {
                0
            } else {
                max_bytes.div_ceil(200)
            },
            offset_ms,
            local: tokio::sync::Mutex::new(Allowance::default()),
            waited_us: AtomicU64::new(0),
        })
    }

    /// Milliseconds requests have waited for the budget so far (summed over requests).
    pub fn waited_ms(&self) -> u64 {
        self.waited_us.load(Ordering::Relaxed) / 1000
    }

    /// The tick (tenth of a second of the store's clock) it is now.
    fn tick_now(&self) -> i64 {
        (crate::state::now_ms() + self.offset_ms).div_euclid(1000 / TICKS_PER_SECOND)
    }

    /// Sleeps until the next tick begins.
    async fn next_tick(&self, tick: i64) {
        let left =
            (tick + 1) * (1000 / TICKS_PER_SECOND) - (crate::state::now_ms() + self.offset_ms);
        tokio::time::sleep(Duration::from_millis(
            u64::try_from(left.clamp(1, 1000)).unwrap_or(1),
        ))
        .await;
    }

    /// Waits for room, books it and returns the tick (tenth of a second of the store's clock)
    /// whose allowance it spent last. What is spent from one tick never exceeds what was
    /// booked in it, and no tick is booked beyond its share of the cap; a request larger than
    /// a tick's share books whole ticks one after the other until it is covered.
    pub(crate) async fn take_in_slot(&self, requests: u64, bytes: u64) -> i64 {
        let bytes = if self.max_bytes == NO_BYTE_CAP {
            0
        } else {
            bytes
        };
        if requests > self.max_requests / TICKS_U64 || bytes > self.max_bytes / TICKS_U64 {
            return self.take_across_ticks(requests, bytes).await;
        }
        let mut failures = 0u32;
        loop {
            // The tick is read with the allowance locked: a lane that waited for the lock
            // while another booked must not spend the last tick's allowance.
            let mut a = self.local.lock().await;
            let tick = self.tick_now();
            if a.slot != tick {
                *a = Allowance {
                    slot: tick,
                    ..Allowance::default()
                };
            }
            if a.requests >= requests && a.bytes >= bytes {
                a.requests -= requests;
                a.bytes -= bytes;
                return tick;
            }
            let need_r = requests - a.requests.min(requests);
            let need_b = bytes - a.bytes.min(bytes);
            let (share_r, share_b) = (
                tick_share(self.max_requests, tick),
                tick_share(self.max_bytes, tick),
            );
            // A chunk first; when the tick has less room than a chunk, just what is needed.
            let tries = [
                (
                    need_r.max(self.chunk_requests).min(share_r),
                    need_b.max(self.chunk_bytes).min(share_b),
                ),
                (need_r, need_b),
            ];
            let mut booked = false;
            let mut failed = false;
            for (r, b) in tries {
                match self
                    .store
                    .reserve_budget(tick, r, b, share_r, share_b)
                    .await
                {
                    Ok(true) => {
                        a.requests += r;
                        a.bytes += b;
                        booked = true;
                        break;
                    }
                    Ok(false) => {}
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            drop(a);
            if booked {
                continue;
            }
            if failed {
                failures += 1;
                if failures >= STORE_FAILURES_BEFORE_GOING_ON {
                    return tick;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            // This tick is full: wait for the next.
            self.next_tick(tick).await;
        }
    }

    /// A request larger than a tick's share: books as much of each tick as it can, tick after
    /// tick, until the whole request is covered. The allowance stays locked meanwhile, so this
    /// worker's other lanes cannot spend what it is saving up (they would wait for the budget
    /// anyway).
    async fn take_across_ticks(&self, requests: u64, bytes: u64) -> i64 {
        let mut a = self.local.lock().await;
        let (mut got_r, mut got_b) = (0u64, 0u64);
        let mut failures = 0u32;
        loop {
            let tick = self.tick_now();
            if a.slot != tick {
                *a = Allowance {
                    slot: tick,
                    ..Allowance::default()
                };
            }
            let use_r = a.requests.min(requests - got_r);
            let use_b = a.bytes.min(bytes - got_b);
            a.requests -= use_r;
            a.bytes -= use_b;
            got_r += use_r;
            got_b += use_b;
            if got_r >= requests && got_b >= bytes {
                return tick;
            }
            let (share_r, share_b) = (
                tick_share(self.max_requests, tick),
                tick_share(self.max_bytes, tick),
            );
            let (mut want_r, mut want_b) = (
                (requests - got_r).min(share_r),
                (bytes - got_b).min(share_b),
            );
            // The whole share if the tick is still empty, else halves of it: what is left.
            let mut progressed = false;
            while want_r > 0 || want_b > 0 {
                match self
                    .store
                    .reserve_budget(tick, want_r, want_b, share_r, share_b)
                    .await
                {
                    Ok(true) => {
                        got_r += want_r;
                        got_b += want_b;
                        progressed = true;
                        break;
                    }
                    Ok(false) => {
                        want_r /= 2;
                        want_b /= 2;
                    }
                    Err(_) => {
                        failures += 1;
                        if failures >= STORE_FAILURES_BEFORE_GOING_ON {
                            return tick;
                        }
                        break;
                    }
                }
            }
            if progressed && got_r >= requests && got_b >= bytes {
                return tick;
            }
            self.next_tick(tick).await;
        }
    }
}

/// Ticks a second's cap is shared out over: wherever a window of a second (or ten) starts,
/// it holds at most the cap plus one tick's share — a tenth of a second's cap — more.
const TICKS_PER_SECOND: i64 = 10;
#[allow(clippy::cast_sign_loss)]
const TICKS_U64: u64 = TICKS_PER_SECOND as u64;

/// Booking errors in a row after which a request goes without booking: the store has been
/// unreachable for about ten seconds, and the worker stops soon anyway (its leases are
/// renewed through the same store).
const STORE_FAILURES_BEFORE_GOING_ON: u32 = 20;

/// Tick `tick`'s share of a per-second `cap`: the shares of any ten ticks in a row add up to
/// exactly `cap`, none differs from another by more than one.
fn tick_share(cap: u64, tick: i64) -> u64 {
    let k = u128::from(tick.rem_euclid(TICKS_PER_SECOND).unsigned_abs());
    let cap = u128::from(cap);
    let n = u128::from(TICKS_U64);
    u64::try_from((k + 1) * cap / n - k * cap / n).unwrap_or(u64::MAX)
}

impl target::graph::SharedBudget for FleetBudget {
    fn take(
        &self,
        requests: u64,
        upload_bytes: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let t0 = std::time::Instant::now();
            self.take_in_slot(requests, upload_bytes).await;
            self.waited_us.fetch_add(elapsed_us(t0), Ordering::Relaxed);
        })
    }
}
