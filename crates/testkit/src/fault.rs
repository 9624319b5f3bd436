//! A fault-injecting TCP proxy for reliability tests.
//!
//! [`FaultProxy`] listens on `127.0.0.1` (ephemeral port) and forwards every connection to
//! an upstream address (typically [`crate::Dovecot::imap_addr`]), byte for byte in both
//! directions, while injecting scripted faults:
//!
//! | [`Action`]            | what the client sees                                              |
//! |-----------------------|-------------------------------------------------------------------|
//! | [`Action::Cut`]       | the connection closes (FIN) — e.g. in the middle of a literal      |
//! | [`Action::Reset`]     | `connection reset by peer` (RST, via `SO_LINGER` 0)               |
//! | [`Action::Inject`]    | extra bytes "from the server" (e.g. `* BYE ...`), then a close    |
//! | [`Action::Stall`]     | nothing for a while (no byte forwarded either way), then normal    |
//! | [`Action::Trickle`]   | at most B bytes per interval from then on (both directions)        |
//! | [`FaultProxy::refuse_for`] | `connection refused` for new connections during a window     |
//!
//! A [`Fault`] is an action plus a [`Trigger`] (after N bytes, after a byte pattern plus N
//! bytes, or K bytes into the literal that follows a pattern, e.g. `BODY[] {n}`), watched
//! on one [`Direction`] (server→client by default). A [`FaultPlan`] assigns faults to
//! connections by their accept order (0-based), to every connection, or at random from a
//! seed (1 in N connections cut at a random offset, reproducible). The plan can be replaced
//! while the proxy runs ([`FaultProxy::set_plan`]), and [`FaultProxy::apply_now`] applies an
//! action to every open connection at once.
//!
//! [`FaultProxy::stats`] counts connections, bytes each way and every fault injected by
//! kind. Everything is bounded: dropping the proxy aborts the accept loop and with it every
//! connection task (they live in one `JoinSet`), so no task or socket outlives it.
//!
//! Faults fire at chunk boundaries computed exactly: a trigger "after 100 bytes" forwards
//! exactly 100 bytes, then acts. A fault triggered on one direction that ends the
//! connection (cut, reset, inject) ends both directions.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use o365_migrate_testkit::fault::{Fault, FaultPlan, FaultProxy};
//! use o365_migrate_testkit::{Client, Dovecot, DovecotOptions};
//!
//! let rt = tokio::runtime::Runtime::new()?;
//! rt.block_on(async {
//!     let dovecot = Dovecot::start(DovecotOptions::default())?;
//!     // The first connection gets `* BYE` right after its greeting.
//!     let plan = FaultPlan::new().on_connection(0, Fault::bye().after_pattern(b"ready.\r\n", 0));
//!     let proxy = FaultProxy::start(dovecot.imap_addr(), plan).await?;
//!     let mut imap = Client::connect_plain(proxy.host(), proxy.port()).await?;
//!     assert!(imap.noop().await.is_err());
//!     assert_eq!(proxy.stats().injections, 1);
//!     Ok::<_, o365_migrate_testkit::Error>(())
//! })?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::error::{Error, Result};

/// The line [`Fault::bye`] injects.
pub const BYE_LINE: &[u8] = b"* BYE server shutting down\r\n";

/// Largest chunk read from either side at once.
const CHUNK: usize = 64 * 1024;

/// Which byte stream a trigger watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Server → client (responses, FETCH literals). The default.
    #[default]
    Downstream,
    /// Client → server (commands, APPEND literals).
    Upstream,
}

/// When a fault fires, counted on the bytes forwarded in its [`Direction`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trigger {
    /// After exactly this many bytes (0: as soon as the connection is set up, before any
    /// byte is forwarded).
    AfterBytes(u64),
    /// After the first occurrence of `pattern` plus `then` further bytes.
    AfterPattern {
        /// Bytes to look for (may span reads).
        pattern: Vec<u8>,
        /// Bytes forwarded after the pattern before the fault fires.
        then: u64,
    },
    /// Inside a literal: after the first occurrence of `after` (e.g. `b"BODY[] {"`), the
    /// rest of that line (the `n}\r\n` of the literal header), and `bytes` bytes of the
    /// literal's content. "The server has sent K bytes of a `{n}` literal."
    InLiteral {
        /// Bytes that precede the literal on its line (ending at or before its `{`).
        after: Vec<u8>,
        /// Literal content bytes forwarded before the fault fires.
        bytes: u64,
    },
}

/// What a fault does when it fires.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Close both sides of the connection (the client reads EOF).
    Cut,
    /// Abort the client side with a TCP RST (`SO_LINGER` 0), close the upstream side.
    Reset,
    /// Send these bytes to the client (as if from the server), then close both sides.
    Inject(Vec<u8>),
    /// Forward nothing in either direction for this long, then continue normally.
    Stall(Duration),
    /// From now on forward at most `bytes` bytes per `interval`, in both directions.
    Trickle {
        /// Bytes per interval (at least 1).
        bytes: usize,
        /// The interval.
        interval: Duration,
    },
}

/// The kinds of fault, for [`FaultStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// [`Action::Cut`].
    Cut,
    /// [`Action::Reset`].
    Reset,
    /// [`Action::Inject`].
    Inject,
    /// [`Action::Stall`].
    Stall,
    /// [`Action::Trickle`].
    Trickle,
    /// A [`FaultProxy::refuse_for`] window.
    Refuse,
}

impl Action {
    /// The kind of this action.
    pub fn kind(&self) -> FaultKind {
        match self {
            Action::Cut => FaultKind::Cut,
            Action::Reset => FaultKind::Reset,
            Action::Inject(_) => FaultKind::Inject,
            Action::Stall(_) => FaultKind::Stall,
            Action::Trickle { .. } => FaultKind::Trickle,
        }
    }
}

/// One scripted fault: an [`Action`], when it fires ([`Trigger`]) and on which
/// [`Direction`]. Each fault fires at most once per connection.
///
/// Built fluently: `Fault::cut().in_literal(b"BODY[] {", 1000)`,
/// `Fault::stall(Duration::from_secs(5)).after_pattern(b"a3 OK", 0)`,
/// `Fault::reset().after_bytes(4096).upstream()`. Without a trigger it fires at once.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fault {
    /// What happens.
    pub action: Action,
    /// When.
    pub trigger: Trigger,
    /// Which byte stream the trigger counts.
    pub direction: Direction,
}

impl Fault {
    /// A fault with this action, firing as soon as the connection is set up.
    pub fn new(action: Action) -> Self {
        Fault {
            action,
            trigger: Trigger::AfterBytes(0),
            direction: Direction::Downstream,
        }
    }

    /// Close the connection.
    pub fn cut() -> Self {
        Fault::new(Action::Cut)
    }

    /// Reset the connection (RST).
    pub fn reset() -> Self {
        Fault::new(Action::Reset)
    }

    /// Inject raw bytes towards the client, then close.
    pub fn inject(bytes: impl Into<Vec<u8>>) -> Self {
        Fault::new(Action::Inject(bytes.into()))
    }

    /// Inject [`BYE_LINE`] (`* BYE server shutting down`), then close.
    pub fn bye() -> Self {
        Fault::inject(BYE_LINE)
    }

    /// Stop forwarding for `duration`.
    pub fn stall(duration: Duration) -> Self {
        Fault::new(Action::Stall(duration))
    }

    /// Forward at most `bytes` bytes per `interval` from the trigger on.
    pub fn trickle(bytes: usize, interval: Duration) -> Self {
        Fault::new(Action::Trickle {
            bytes: bytes.max(1),
            interval,
        })
    }

    /// Fire after exactly `bytes` bytes.
    pub fn after_bytes(mut self, bytes: u64) -> Self {
        self.trigger = Trigger::AfterBytes(bytes);
        self
    }

    /// Fire after the first `pattern` plus `then` bytes.
    pub fn after_pattern(mut self, pattern: &[u8], then: u64) -> Self {
        self.trigger = Trigger::AfterPattern {
            pattern: pattern.to_vec(),
            then,
        };
        self
    }

    /// Fire `bytes` bytes into the literal following the first `after` (see
    /// [`Trigger::InLiteral`]).
    pub fn in_literal(mut self, after: &[u8], bytes: u64) -> Self {
        self.trigger = Trigger::InLiteral {
            after: after.to_vec(),
            bytes,
        };
        self
    }

    /// Watch the client → server stream instead.
    pub fn upstream(mut self) -> Self {
        self.direction = Direction::Upstream;
        self
    }
}

/// A snapshot of the proxy's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultStats {
    /// Connections accepted (and forwarded or faulted).
    pub connections_accepted: u64,
    /// Connections whose task has ended.
    pub connections_closed: u64,
    /// Connections where the upstream could not be reached (closed at once).
    pub upstream_failures: u64,
    /// Bytes forwarded server → client (injected bytes not included).
    pub bytes_downstream: u64,
    /// Bytes forwarded client → server.
    pub bytes_upstream: u64,
    /// Cuts injected.
    pub cuts: u64,
    /// Resets injected.
    pub resets: u64,
    /// Injections (e.g. BYE) sent.
    pub injections: u64,
    /// Stalls started.
    pub stalls: u64,
    /// Trickles started.
    pub trickles: u64,
    /// Refusal windows ([`FaultProxy::refuse_for`]) started.
    pub refusals: u64,
    /// Occurrences rewritten ([`FaultPlan::rewriting`]).
    pub rewrites: u64,
}

impl FaultStats {
    /// All faults injected, of every kind.
    pub fn faults_injected(&self) -> u64 {
        self.cuts + self.resets + self.injections + self.stalls + self.trickles + self.refusals
    }

    /// The count for one kind.
    pub fn count(&self, kind: FaultKind) -> u64 {
        match kind {
            FaultKind::Cut => self.cuts,
            FaultKind::Reset => self.resets,
            FaultKind::Inject => self.injections,
            FaultKind::Stall => self.stalls,
            FaultKind::Trickle => self.trickles,
            FaultKind::Refuse => self.refusals,
        }
    }
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    closed: AtomicU64,
    upstream_failures: AtomicU64,
    down: AtomicU64,
    up: AtomicU64,
    cuts: AtomicU64,
    resets: AtomicU64,
    injections: AtomicU64,
    stalls: AtomicU64,
    trickles: AtomicU64,
    refusals: AtomicU64,
    rewrites: AtomicU64,
    live_applied: AtomicU64,
}

impl Counters {
    fn fault(&self, kind: FaultKind) {
        let c = match kind {
            FaultKind::Cut => &self.cuts,
            FaultKind::Reset => &self.resets,
            FaultKind::Inject => &self.injections,
            FaultKind::Stall => &self.stalls,
            FaultKind::Trickle => &self.trickles,
            FaultKind::Refuse => &self.refusals,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

struct Shared {
    upstream: SocketAddr,
    plan: Mutex<FaultPlan>,
    counters: Counters,
    listening: AtomicBool,
}

/// The running proxy. Stops (and ends every connection) on drop.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    live: broadcast::Sender<Action>,
    refuse: watch::Sender<Option<Instant>>,
    shutdown: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("stats", &self.stats())
            .finish()
    }
}

impl FaultProxy {
    /// Binds `127.0.0.1:0` and starts forwarding to `upstream` under `plan`. Must be called
    /// inside a tokio runtime; the proxy's tasks run on it.
    pub async fn start(upstream: SocketAddr, plan: FaultPlan) -> Result<FaultProxy> {
        let listener = TcpListener::bind((crate::dovecot::HOST, 0))
            .await
            .map_err(|e| Error::io("binding the fault proxy on 127.0.0.1", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("reading the fault proxy's address", e))?;
        let shared = Arc::new(Shared {
            upstream,
            plan: Mutex::new(plan),
            counters: Counters::default(),
            listening: AtomicBool::new(true),
        });
        let (live, _) = broadcast::channel(64);
        let (refuse, refuse_rx) = watch::channel(None);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(
            listener,
            addr,
            shared.clone(),
            live.clone(),
            refuse_rx,
            shutdown_rx,
        ));
        Ok(FaultProxy {
            addr,
            shared,
            live,
            refuse,
            shutdown,
            task: Some(task),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        crate::dovecot::HOST
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The upstream address.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Replaces the plan for connections accepted from now on (indices keep counting).
    pub fn set_plan(&self, plan: FaultPlan) {
        if let Ok(mut p) = self.shared.plan.lock() {
            *p = plan;
        }
    }

    /// Applies `action` to every open connection now (at its next chunk boundary for
    /// data in flight; at once for idle ones). Waits (up to 2 s) until each connection
    /// has taken it and returns how many did.
    pub async fn apply_now(&self, action: Action) -> usize {
        let before = self.shared.counters.live_applied.load(Ordering::SeqCst);
        let receivers = self.live.send(action).unwrap_or(0) as u64;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let done = self.shared.counters.live_applied.load(Ordering::SeqCst) - before;
            if done >= receivers || Instant::now() >= deadline {
                return done as usize;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Closes the listener for `duration` (new connections get `connection refused`),
    /// then listens again on the same port. Open connections are not affected. Returns
    /// once the listener is closed (or after 2 s).
    pub async fn refuse_for(&self, duration: Duration) {
        self.shared.counters.fault(FaultKind::Refuse);
        self.refuse.send_replace(Some(Instant::now() + duration));
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.shared.listening.load(Ordering::SeqCst) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Whether the listener is currently accepting (false during a refusal window).
    pub fn is_listening(&self) -> bool {
        self.shared.listening.load(Ordering::SeqCst)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> FaultStats {
        let c = &self.shared.counters;
        let l = |a: &AtomicU64| a.load(Ordering::SeqCst);
        FaultStats {
            connections_accepted: l(&c.accepted),
            connections_closed: l(&c.closed),
            upstream_failures: l(&c.upstream_failures),
            bytes_downstream: l(&c.down),
            bytes_upstream: l(&c.up),
            cuts: l(&c.cuts),
            resets: l(&c.resets),
            injections: l(&c.injections),
            stalls: l(&c.stalls),
            trickles: l(&c.trickles),
            refusals: l(&c.refusals),
            rewrites: l(&c.rewrites),
        }
    }

    /// Stops accepting, ends every connection and waits for the proxy's tasks to end.
    pub async fn stop(mut self) {
        self.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            // Aborting the accept loop drops its JoinSet, which aborts every connection.
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    addr: SocketAddr,
    shared: Arc<Shared>,
    live: broadcast::Sender<Action>,
    mut refuse: watch::Receiver<Option<Instant>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut listener = Some(listener);
    loop {
        while tasks.try_join_next().is_some() {}
        let until = *refuse.borrow_and_update();
        if let Some(until) = until.filter(|u| *u > Instant::now()) {
            listener = None;
            shared.listening.store(false, Ordering::SeqCst);
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                r = refuse.changed() => if r.is_err() { break },
                _ = shutdown.changed() => break,
            }
            continue;
        }
        if listener.is_none() {
            // Rebind the same port (SO_REUSEADDR is set by tokio on Unix).
            for _ in 0..250 {
                if let Ok(l) = TcpListener::bind(addr).await {
                    listener = Some(l);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let Some(l) = listener.as_ref() else {
            // The port could not be bound again within 5 s; stop accepting.
            break;
        };
        shared.listening.store(true, Ordering::SeqCst);
        tokio::select! {
            accepted = l.accept() => match accepted {
                Ok((stream, _)) => {
                    let index = shared.counters.accepted.fetch_add(1, Ordering::SeqCst);
                    let (faults, rewrites) = shared
                        .plan
                        .lock()
                        .map(|p| (p.faults_for(index), p.rewrites()))
                        .unwrap_or_default();
                    tasks.spawn(serve(
                        stream,
                        faults,
                        rewrites,
                        shared.clone(),
                        live.subscribe(),
                        shutdown.clone(),
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            r = refuse.changed() => if r.is_err() { break },
            _ = shutdown.changed() => break,
        }
    }
    shared.listening.store(false, Ordering::SeqCst);
    tasks.shutdown().await;
}

/// Per-connection state shared by both directions.
#[derive(Default)]
struct Ctl {
    stall_until: Mutex<Option<Instant>>,
    trickle: Mutex<Option<(usize, Duration)>>,
}

impl Ctl {
    fn stall(&self, d: Duration) {
        if let Ok(mut s) = self.stall_until.lock() {
            let until = Instant::now() + d;
            *s = Some(s.map_or(until, |old| old.max(until)));
        }
    }

    fn set_trickle(&self, bytes: usize, interval: Duration) {
        if let Ok(mut t) = self.trickle.lock() {
            *t = Some((bytes.max(1), interval));
        }
    }

    async fn wait_stall(&self) {
        loop {
            let until = self.stall_until.lock().ok().and_then(|s| *s);
            match until {
                Some(u) if u > Instant::now() => tokio::time::sleep_until(u).await,
                _ => return,
            }
        }
    }

    fn trickle(&self) -> Option<(usize, Duration)> {
        self.trickle.lock().ok().and_then(|t| *t)
    }
}

/// How a connection ended.
#[derive(Debug)]
enum End {
    Closed,
    Cut,
    Reset,
    Inject(Vec<u8>),
}

async fn serve(
    mut client: TcpStream,
    faults: Vec<Fault>,
    rewrites: Vec<plan::Rewrite>,
    shared: Arc<Shared>,
    mut live: broadcast::Receiver<Action>,
    mut shutdown: watch::Receiver<bool>,
) {
    let counters = &shared.counters;
    let server =
        tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(shared.upstream)).await;
    let Ok(Ok(mut server)) = server else {
        counters.upstream_failures.fetch_add(1, Ordering::SeqCst);
        counters.closed.fetch_add(1, Ordering::SeqCst);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let ctl = Ctl::default();
    let (down, up): (Vec<Fault>, Vec<Fault>) = faults
        .into_iter()
        .partition(|f| f.direction == Direction::Downstream);
    let end = {
        let (mut cr, mut cw) = client.split();
        let (mut sr, mut sw) = server.split();
        let (rw_down, rw_up): (Vec<_>, Vec<_>) = rewrites
            .into_iter()
            .partition(|r| r.direction == Direction::Downstream);
        let down = pump(
            &mut sr,
            &mut cw,
            down,
            rw_down,
            &ctl,
            &counters.down,
            counters,
        );
        let up = pump(&mut cr, &mut sw, up, rw_up, &ctl, &counters.up, counters);
        tokio::pin!(down);
        tokio::pin!(up);
        loop {
            tokio::select! {
                e = &mut down => break e,
                e = &mut up => break e,
                cmd = live.recv() => match cmd {
                    Ok(action) => {
                        let end = match action {
                            Action::Stall(d) => { ctl.stall(d); counters.fault(FaultKind::Stall); None }
                            Action::Trickle { bytes, interval } => {
                                ctl.set_trickle(bytes, interval);
                                counters.fault(FaultKind::Trickle);
                                None
                            }
                            Action::Cut => Some(End::Cut),
                            Action::Reset => Some(End::Reset),
                            Action::Inject(b) => Some(End::Inject(b)),
                        };
                        counters.live_applied.fetch_add(1, Ordering::SeqCst);
                        if let Some(end) = end { break end; }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break End::Closed,
                },
                _ = shutdown.changed() => break End::Closed,
            }
        }
    };
    match end {
        End::Closed => {}
        End::Cut => {
            counters.fault(FaultKind::Cut);
            let _ = client.shutdown().await;
        }
        End::Reset => {
            counters.fault(FaultKind::Reset);
            let _ = client.set_zero_linger();
        }
        End::Inject(bytes) => {
            counters.fault(FaultKind::Inject);
            let send = async {
                client.write_all(&bytes).await?;
                client.shutdown().await
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), send).await;
        }
    }
    drop(server);
    drop(client);
    counters.closed.fetch_add(1, Ordering::SeqCst);
}

/// Forwards `r` to `w`, firing `faults` at their exact byte positions. Returns when the
/// stream ends or a fault ends the connection.
async fn pump<R, W>(
    r: &mut R,
    w: &mut W,
    faults: Vec<Fault>,
    rewrites: Vec<plan::Rewrite>,
    ctl: &Ctl,
    bytes: &AtomicU64,
    counters: &Counters,
) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut pending: Vec<(TriggerState, Action)> = faults
        .into_iter()
        .map(|f| (TriggerState::new(&f.trigger), f.action))
        .collect();
    let mut buf = vec![0u8; CHUNK];
    // Triggers at offset 0 fire before anything is forwarded.
    if let Some(end) = fire_ready(&mut pending, &[], ctl, counters) {
        return end;
    }
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return End::Closed,
            Ok(n) => n,
        };
        if let Some(read) = buf.get_mut(..n) {
            for rw in &rewrites {
                counters
                    .rewrites
                    .fetch_add(rw.apply(read), Ordering::SeqCst);
            }
        }
        let mut rest = buf.get(..n).unwrap_or_default();
        loop {
            let fire_at = pending.iter().filter_map(|(t, _)| t.find(rest)).min();
            let take = fire_at.unwrap_or(rest.len()).min(rest.len());
            let (now, later) = rest.split_at(take);
            if !now.is_empty() {
                if forward(w, now, ctl, bytes).await.is_err() {
                    return End::Closed;
                }
                for (t, _) in &mut pending {
                    t.advance(now);
                }
            }
            rest = later;
            if fire_at.is_none() {
                break;
            }
            if let Some(end) = fire_ready(&mut pending, rest, ctl, counters) {
                return end;
            }
        }
    }
}

/// Fires (and removes) every pending fault whose trigger is due at the start of `next`.
/// Returns how the connection ends, if a fired fault ends it.
fn fire_ready(
    pending: &mut Vec<(TriggerState, Action)>,
    next: &[u8],
    ctl: &Ctl,
    counters: &Counters,
) -> Option<End> {
    let mut end = None;
    let mut i = 0;
    while i < pending.len() {
        let due = pending.get(i).is_some_and(|(t, _)| t.find(next) == Some(0));
        if !due {
            i += 1;
            continue;
        }
        let (_, action) = pending.remove(i);
        match action {
            Action::Stall(d) => {
                ctl.stall(d);
                counters.fault(FaultKind::Stall);
            }
            Action::Trickle { bytes, interval } => {
                ctl.set_trickle(bytes, interval);
                counters.fault(FaultKind::Trickle);
            }
            Action::Cut => end = end.or(Some(End::Cut)),
            Action::Reset => end = end.or(Some(End::Reset)),
            Action::Inject(b) => end = end.or(Some(End::Inject(b))),
        }
    }
    end
}

async fn forward<W: AsyncWrite + Unpin>(
    w: &mut W,
    data: &[u8],
    ctl: &Ctl,
    bytes: &AtomicU64,
) -> std::io::Result<()> {
    let mut rest = data;
    while !rest.is_empty() {
        ctl.wait_stall().await;
        let (piece, pause) = match ctl.trickle() {
            Some((b, interval)) => (b.min(rest.len()), Some(interval)),
            None => (rest.len(), None),
        };
        let (now, later) = rest.split_at(piece);
        w.write_all(now).await?;
        w.flush().await?;
        bytes.fetch_add(now.len() as u64, Ordering::SeqCst);
        rest = later;
        if let Some(p) = pause {
            tokio::time::sleep(p).await;
        }
    }
    Ok(())
}

/// Streaming matcher for one [`Trigger`].
#[derive(Debug, Clone)]
struct TriggerState {
    pattern: Vec<u8>,
    skip_line: bool,
    then: u64,
    phase: Phase,
    /// Last `pattern.len() - 1` bytes seen while searching (matches across reads).
    tail: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Search,
    SkipLine,
    Count(u64),
}

impl TriggerState {
    fn new(trigger: &Trigger) -> Self {
        let (pattern, skip_line, then) = match trigger {
            Trigger::AfterBytes(n) => (Vec::new(), false, *n),
            Trigger::AfterPattern { pattern, then } => (pattern.clone(), false, *then),
            Trigger::InLiteral { after, bytes } => (after.clone(), true, *bytes),
        };
        let phase = if pattern.is_empty() {
            if skip_line {
                Phase::SkipLine
            } else {
                Phase::Count(then)
            }
        } else {
            Phase::Search
        };
        TriggerState {
            pattern,
            skip_line,
            then,
            phase,
            tail: Vec::new(),
        }
    }

    /// Where in `data` (bytes to forward first) the trigger fires, if it does.
    fn find(&self, data: &[u8]) -> Option<usize> {
        self.scan(data).0
    }

    /// Consumes `data` (forwarded without firing, or up to the firing point).
    fn advance(&mut self, data: &[u8]) {
        let (_, phase, tail) = self.scan(data);
        self.phase = phase;
        self.tail = tail;
    }

    /// Walks `data` from the current state: (fire offset, phase after all of `data`, tail).
    fn scan(&self, data: &[u8]) -> (Option<usize>, Phase, Vec<u8>) {
        let mut phase = self.phase;
        let mut i = 0usize;
        let mut tail = Vec::new();
        let mut fire = None;
        loop {
            match phase {
                Phase::Search => {
                    let mut hay = self.tail.clone();
                    hay.extend_from_slice(data);
                    match find_sub(&hay, &self.pattern) {
                        Some(pos) => {
                            i = (pos + self.pattern.len()).saturating_sub(self.tail.len());
                            phase = if self.skip_line {
                                Phase::SkipLine
                            } else {
                                Phase::Count(self.then)
                            };
                        }
                        None => {
                            let keep = self.pattern.len().saturating_sub(1);
                            tail = hay
                                .get(hay.len().saturating_sub(keep)..)
                                .unwrap_or_default()
                                .to_vec();
                            break;
                        }
                    }
                }
                Phase::SkipLine => {
                    match data
                        .get(i..)
                        .and_then(|d| d.iter().position(|&b| b == b'\n'))
                    {
                        Some(p) => {
                            i += p + 1;
                            phase = Phase::Count(self.then);
                        }
                        None => break,
                    }
                }
                Phase::Count(k) => {
                    let avail = data.len().saturating_sub(i) as u64;
                    if avail >= k {
                        fire = Some(i + k as usize);
                        // State after consuming all of `data` would be "already fired";
                        // the caller removes the fault then.
                        phase = Phase::Count(0);
                    } else {
                        phase = Phase::Count(k - avail);
                    }
                    break;
                }
            }
        }
        (fire, phase, tail)
    }
}

fn find_sub(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

mod plan;
pub use plan::FaultPlan;

#[cfg(test)]
mod tests;
