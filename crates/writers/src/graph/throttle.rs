//! Per-mailbox pacing under Microsoft's Outlook limits: at most N requests in flight, a sliding
//! request budget and a sliding upload budget. Waiting is always a timed sleep, never a spin.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::writer::ThrottleStats;

/// The per app-and-mailbox limits the client stays under.
#[derive(Debug, Clone, PartialEq)]
pub struct Budgets {
    /// Requests in flight per mailbox (Microsoft: 4).
    pub max_concurrent: usize,
    /// Requests per `request_window` (Microsoft: 10,000 per 10 minutes).
    pub requests_per_window: u64,
    /// The request window.
    pub request_window: Duration,
    /// Bytes of POST/PATCH/PUT bodies per `upload_window` (Microsoft: 150 MB per 5 minutes).
    pub upload_bytes_per_window: u64,
    /// The upload window.
    pub upload_window: Duration,
    /// Extra time added to both windows so that network delay never lets the server count two
    /// requests in one window that the client counted in two (default 1 % + 100 ms).
    pub safety_margin: Duration,
}

impl Default for Budgets {
    fn default() -> Self {
        Self::microsoft()
    }
}

impl Budgets {
    /// Microsoft's documented Outlook limits per app and mailbox.
    pub fn microsoft() -> Self {
        Self {
            max_concurrent: 4,
            requests_per_window: 10_000,
            request_window: Duration::from_secs(600),
            upload_bytes_per_window: 150_000_000,
            upload_window: Duration::from_secs(300),
            safety_margin: Duration::from_millis(100) + Duration::from_secs(6),
        }
    }

    /// The same limits with every window multiplied by `scale` (to match a time-scaled
    /// emulator); the margin becomes 1 % of the request window plus 50 ms.
    pub fn time_scaled(scale: f64) -> Self {
        let m = Self::microsoft();
        let request_window = m.request_window.mul_f64(scale);
        Self {
            request_window,
            upload_window: m.upload_window.mul_f64(scale),
            safety_margin: request_window / 100 + Duration::from_millis(50),
            ..m
        }
    }
}

/// A budget shared beyond this process — every worker of a fleet — that each request to Graph
/// also takes from (the app-wide limit, an admin's cap on requests or bytes per second). The
/// client asks it after the mailbox's own pacing let the request go.
///
/// An implementation waits until the budget allows `requests` requests (the sub-requests of a
/// `$batch` count each) carrying `upload_bytes` bytes of body, and books them.
pub trait SharedBudget: Send + Sync + std::fmt::Debug {
    /// Waits for room and books it.
    fn take(
        &self,
        requests: u64,
        upload_bytes: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
}

#[derive(Default)]
struct Window {
    requests: VecDeque<Instant>,
    uploads: VecDeque<(Instant, u64)>,
    upload_sum: u64,
}

/// Paces one mailbox. Shared by every request to it.
pub(crate) struct MailboxLimiter {
    budgets: Budgets,
    slots: Semaphore,
    window: Mutex<Window>,
    /// Until when the service asked this mailbox to wait (`Retry-After` on a 429 or 503):
    /// no request for the mailbox starts before then; requests already sent are not recalled.
    paused_until: Mutex<Option<Instant>>,
    /// Throttling answers (429/503) this mailbox was given, and the pauses they started.
    throttled: AtomicU64,
    pauses: AtomicU64,
}

/// Holding this means a request slot; drop it when the answer is fully read.
pub(crate) struct Slot<'a> {
    _permit: SemaphorePermit<'a>,
}

impl MailboxLimiter {
    pub(crate) fn new(budgets: Budgets) -> Self {
        Self {
            slots: Semaphore::new(budgets.max_concurrent.max(1)),
            budgets,
            window: Mutex::new(Window::default()),
            paused_until: Mutex::new(None),
            throttled: AtomicU64::new(0),
            pauses: AtomicU64::new(0),
        }
    }

    /// The service answered 429 or 503; with its `Retry-After`, no request for this mailbox
    /// starts until `retry_after` has passed (a later end wins).
    pub(crate) fn throttled(&self, retry_after: Option<Duration>) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
        let Some(d) = retry_after else { return };
        let until = Instant::now() + d;
        let mut p = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if p.is_none_or(|t| t < until) {
            *p = Some(until);
            self.pauses.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What throttling did to this mailbox so far.
    pub(crate) fn stats(&self) -> ThrottleStats {
        ThrottleStats {
            throttled_answers: self.throttled.load(Ordering::Relaxed),
            pauses: self.pauses.load(Ordering::Relaxed),
        }
    }

    /// How long the mailbox is still paused by a `Retry-After`.
    fn pause_left(&self, now: Instant) -> Option<Duration> {
        let p = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        p.and_then(|t| t.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// Waits for request slots and room in both budgets, then books the request: `n` requests
    /// sent as one (1, or the sub-requests of a `$batch`), `min(n, 4)` slots, taken at once (Graph runs four sub-requests of a batch at a time, each
    /// counting against the mailbox's concurrency).
    pub(crate) async fn acquire(&self, n: u64, upload: u64) -> Slot<'_> {
        let slots = n.clamp(1, self.budgets.max_concurrent.max(1) as u64) as u32;
        // The semaphore is never closed, so this cannot fail; fall back to a fresh wait if it did.
        let permit = loop {
            match self.slots.acquire_many(slots).await {
                Ok(p) => break p,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        loop {
            if let Some(d) = self.pause_left(Instant::now()) {
                tokio::time::sleep(d).await;
                continue;
            }
            let wait = self.try_book_n(n, upload, Instant::now());
            match wait {
                None => return Slot { _permit: permit },
                Some(d) => tokio::time::sleep(d.max(Duration::from_millis(1))).await,
            }
        }
    }

    /// Books the request if both budgets allow it now; otherwise returns how long to wait.
    #[cfg(test)]
    fn try_book(&self, upload: u64, now: Instant) -> Option<Duration> {
        self.try_book_n(1, upload, now)
    }

    fn try_book_n(&self, n: u64, upload: u64, now: Instant) -> Option<Duration> {
        let b = &self.budgets;
        let req_window = b.request_window + b.safety_margin;
        let up_window = b.upload_window + b.safety_margin;
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        while w
            .requests
            .front()
            .is_some_and(|t| now.duration_since(*t) >= req_window)
        {
            w.requests.pop_front();
        }
        while let Some(&(t, n)) = w.uploads.front() {
            if now.duration_since(t) < up_window {
                break;
            }
            w.uploads.pop_front();
            w.upload_sum -= n;
        }
        let n = n.clamp(1, b.requests_per_window.max(1));
        if w.requests.len() as u64 + n > b.requests_per_window {
            let excess = (w.requests.len() as u64 + n - b.requests_per_window) as usize;
            let t = w.requests.get(excess - 1).copied().unwrap_or(now);
            return Some(req_window.saturating_sub(now.duration_since(t)));
        }
        if upload > 0 && w.upload_sum > 0 && w.upload_sum + upload > b.upload_bytes_per_window {
            let mut freed = 0;
            for &(t, n) in &w.uploads {
                freed += n;
                if w.upload_sum - freed + upload <= b.upload_bytes_per_window {
                    return Some(up_window.saturating_sub(now.duration_since(t)));
                }
            }
            return Some(up_window);
        }
        for _ in 0..n {
            w.requests.push_back(now);
        }
        if upload > 0 {
            w.uploads.push_back((now, upload));
            w.upload_sum += upload;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_block_until_the_window_moves() {
        let l = MailboxLimiter::new(Budgets {
            max_concurrent: 4,
            requests_per_window: 2,
            request_window: Duration::from_secs(10),
            upload_bytes_per_window: 100,
            upload_window: Duration::from_secs(5),
            safety_margin: Duration::ZERO,
        });
        let t0 = Instant::now();
        assert_eq!(l.try_book(60, t0), None);
        // Second request fits the request budget but not the upload budget.
        let wait = l.try_book(60, t0 + Duration::from_secs(1));
        assert_eq!(wait, Some(Duration::from_secs(4)));
        assert_eq!(l.try_book(0, t0 + Duration::from_secs(1)), None);
        let wait = l.try_book(0, t0 + Duration::from_secs(2));
        assert_eq!(wait, Some(Duration::from_secs(8)));
        assert_eq!(l.try_book(0, t0 + Duration::from_secs(10)), None);
    }
}
