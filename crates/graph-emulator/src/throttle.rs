//! Per app-and-mailbox throttling at Microsoft's Outlook limits, with counters for tests.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Counters of one app-and-mailbox pair, for tests and the bench.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MailboxCounters {
    /// Requests admitted (answered by the mailbox logic).
    pub requests: u64,
    /// Bytes of admitted POST/PATCH/PUT bodies.
    pub upload_bytes: u64,
    /// The largest number of requests in flight at once, counting ones refused for concurrency.
    pub max_concurrent_seen: u32,
    /// Requests refused because more than the allowed number were in flight.
    pub concurrency_violations: u64,
    /// Requests refused because the request budget of the window was used up.
    pub request_budget_refusals: u64,
    /// Requests refused because the upload budget of the window was used up.
    pub upload_budget_refusals: u64,
    /// Injected faults (503, 429, resets, slow replies).
    pub faults_injected: u64,
    /// Answers 429 or 503 with `Retry-After` given to this app and mailbox.
    pub throttled_answers: u64,
    /// Requests that arrived while a `Retry-After` this mailbox was given had not elapsed (each
    /// answered 429, as Exchange Online answers them), not counting those that arrived within
    /// [`RETRY_AFTER_GRACE`] of the answer that opened the window: they may have been sent
    /// before the client read it. Counted per client (access token): a client that was never
    /// given the window is refused but not counted. A client that honours `Retry-After` per
    /// mailbox keeps this 0.
    pub requests_in_retry_window: u64,
}

/// Requests arriving this soon after a throttling answer may have been on their way before the
/// client read it; they are answered 429 but not counted in
/// [`MailboxCounters::requests_in_retry_window`]. Wide enough for a 2-core test machine running
/// tests in parallel, where a request the client decided to send just before it read the answer
/// was seen arriving more than 250 ms later (one such request, twice in seven full test runs);
/// a client that ignores `Retry-After` still sends dozens of requests (4 at a time, one per
/// 150 ms answer) in the rest of a 1- or 2-second window.
pub const RETRY_AFTER_GRACE: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
pub(crate) struct MailboxThrottle {
    pub(crate) in_flight: u32,
    pub(crate) log: VecDeque<Instant>,
    pub(crate) uploads: VecDeque<(Instant, u64)>,
    pub(crate) upload_sum: u64,
    pub(crate) counters: MailboxCounters,
    /// The open `Retry-After` window: when the answer that opened it was given, its end, and
    /// the client it was given to (the access token it came with).
    pub(crate) retry_window: Option<(Instant, Instant, Option<u64>)>,
}

/// Why a request was refused, with the wait to announce in `Retry-After`.
pub(crate) enum Refusal {
    Concurrency,
    Requests(Duration),
    Upload(Duration),
}

impl MailboxThrottle {
    /// Admits a request or refuses it. On `Ok` the caller must call [`Self::leave`] later.
    pub(crate) fn enter(
        &mut self,
        limits: &crate::Limits,
        request_window: Duration,
        upload_window: Duration,
        upload: u64,
    ) -> Result<(), Refusal> {
        let now = Instant::now();
        self.in_flight += 1;
        self.counters.max_concurrent_seen = self.counters.max_concurrent_seen.max(self.in_flight);
        if self.in_flight > limits.max_concurrent {
            self.in_flight -= 1;
            self.counters.concurrency_violations += 1;
            return Err(Refusal::Concurrency);
        }
        while self
            .log
            .front()
            .is_some_and(|t| now.duration_since(*t) >= request_window)
        {
            self.log.pop_front();
        }
        while let Some(&(t, n)) = self.uploads.front() {
            if now.duration_since(t) < upload_window {
                break;
            }
            self.uploads.pop_front();
            self.upload_sum -= n;
        }
        if self.log.len() as u64 >= limits.requests_per_window {
            self.in_flight -= 1;
            self.counters.request_budget_refusals += 1;
            let oldest = self.log.front().copied().unwrap_or(now);
            return Err(Refusal::Requests(
                request_window.saturating_sub(now.duration_since(oldest)),
            ));
        }
        if upload > 0 && self.upload_sum + upload > limits.upload_bytes_per_window {
            self.in_flight -= 1;
            self.counters.upload_budget_refusals += 1;
            // Wait until enough old uploads have left the window.
            let mut freed = 0;
            let mut wait = upload_window;
            for &(t, n) in &self.uploads {
                freed += n;
                if self.upload_sum - freed + upload <= limits.upload_bytes_per_window {
                    wait = upload_window.saturating_sub(now.duration_since(t));
                    break;
                }
            }
            return Err(Refusal::Upload(wait));
        }
        self.log.push_back(now);
        self.counters.requests += 1;
        if upload > 0 {
            self.uploads.push_back((now, upload));
            self.upload_sum += upload;
            self.counters.upload_bytes += upload;
        }
        Ok(())
    }

    /// A throttling answer with `Retry-After` was given at `now`: requests for this mailbox
    /// are refused until `window` has passed (a later end wins).
    pub(crate) fn open_retry_window(
        &mut self,
        now: Instant,
        window: Duration,
        client: Option<u64>,
    ) {
        self.counters.throttled_answers += 1;
        let until = now + window;
        match self.retry_window {
            Some((_, end, _)) if end >= until => {}
            _ => self.retry_window = Some((now, until, client)),
        }
    }

    /// While a `Retry-After` window is open: how much of it is left (the request is refused);
    /// `None` when requests may pass. The request counts as sent inside the window only when
    /// its client was given the window (another client, e.g. a process started after the one
    /// that got the 429 was killed, never saw it) and it began to arrive ([`RETRY_AFTER_GRACE`]
    /// after the answer: a large body started earlier was already on its way.
    pub(crate) fn in_retry_window(
        &mut self,
        now: Instant,
        arrived: Instant,
        client: Option<u64>,
    ) -> Option<Duration> {
        let (opened, until, given_to) = self.retry_window?;
        if now >= until {
            self.retry_window = None;
            return None;
        }
        self.counters.throttled_answers += 1;
        let same_client = given_to.is_none() || client.is_none() || given_to == client;
        if same_client && arrived.saturating_duration_since(opened) >= RETRY_AFTER_GRACE {
            self.counters.requests_in_retry_window += 1;
        }
        Some(until - now)
    }

    pub(crate) fn leave(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }
}
