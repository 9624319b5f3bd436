//! How long writing a mailbox into Exchange Online takes: the same rules the writer follows
//! (batches of small creates, upload sessions for large attachments, four requests in flight,
//! the sliding request and upload budgets), applied to the mailbox's message sizes and to the
//! service's answer times as measured from here ([`super::GraphClient::measure_answer_times`]).
//!
//! Under a sliding window a mailbox first sends as fast as the answer times allow, until the
//! window's budget is used; from then on each request waits until the one a budget earlier has
//! left the window. So a mailbox that fits in one budget takes its requests' answer time, and a
//! larger one one window per further budget.

use std::time::Duration;

use super::batch::MAX_BATCHED_BODY;
use super::throttle::Budgets;

/// A create's JSON is about this much larger than the raw message (headers as fields,
/// recipients as objects, the item's properties).
const JSON_OVERHEAD: u64 = 1024;

/// Raw size from which a message's attachments follow the create (through upload sessions):
/// above it the create would pass the request budget the conversion keeps to.
const ATTACHMENTS_FOLLOW_FROM: u64 = o365_migrate_mime::graph::REQUEST_LIMIT as u64 - JSON_OVERHEAD;

/// Bytes per upload-session chunk, as the writer sends them.
const CHUNK: u64 = super::writer::CHUNK as u64;

/// The service's answer times, as measured: a single request takes `gateway + mailbox`; the
/// `gateway` part (network, Graph's gateway) is paid once per HTTP request, a `$batch` too, and
/// the `mailbox` part per item, four at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AnswerTimes {
    /// On the way there and back.
    pub gateway: Duration,
    /// Inside the mailbox, per item.
    pub mailbox: Duration,
}

/// What one mailbox's messages cost against the limits. Add each message's raw size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Workload {
    /// Messages whose create travels in a `$batch`.
    pub batched: u64,
    /// Requests sent alone (creates too large to batch, and every request of a message with
    /// upload sessions).
    pub single_requests: u64,
    /// Bytes of request bodies (counted against the upload budget).
    pub upload_bytes: u64,
}

impl Workload {
    /// Adds one message of `raw_size` bytes.
    pub fn add_message(&mut self, raw_size: u64) {
        // Base64 attachments stay base64 in the JSON, so the body is about the raw size.
        let json = raw_size + JSON_OVERHEAD;
        if raw_size >= ATTACHMENTS_FOLLOW_FROM {
            // Create, createUploadSession, the chunks of the decoded attachment, the final
            // PATCH; the chunks carry the attachment decoded, three quarters of its base64.
            let decoded = raw_size / 4 * 3;
            self.single_requests += 3 + decoded.div_ceil(CHUNK);
            self.upload_bytes += decoded + 3 * JSON_OVERHEAD;
            return;
        }
        self.upload_bytes += json;
        if json as usize <= MAX_BATCHED_BODY {
            self.batched += 1;
        } else {
            self.single_requests += 1;
        }
    }

    /// Requests counted against the request budget (a batch counts each create).
    pub fn requests(&self) -> u64 {
        self.batched + self.single_requests
    }
}

/// The time to write `work` into one mailbox under `budgets`, with batches of `max_batch`.
pub fn mailbox_duration(
    work: &Workload,
    times: &AnswerTimes,
    budgets: &Budgets,
    max_batch: usize,
) -> Duration {
    let slots = budgets.max_concurrent.max(1) as f64;
    let (g, m) = (times.gateway.as_secs_f64(), times.mailbox.as_secs_f64());
    // Requests per second the answer times allow, with nothing else in the way.
    let batch = max_batch.clamp(1, super::client::MAX_BATCH) as f64;
    let batched_rate = if batch > 1.0 {
        // One batch at a time: the way there once, the creates four at a time.
        batch / (g + (batch / slots).ceil() * m).max(1e-6)
    } else {
        slots / (g + m).max(1e-6)
    };
    let single_rate = slots / (g + m).max(1e-6);
    let answer_time =
        work.batched as f64 / batched_rate + work.single_requests as f64 / single_rate;
    let requests = work.requests();
    // The budget's pace stretches the answer time: as fast as answers allow within a budget,
    // then one window per further budget.
    let request_time = paced(
        requests,
        budgets.requests_per_window,
        (budgets.request_window + budgets.safety_margin).as_secs_f64(),
        answer_time,
    );
    // Uploads are bound by their budget; the time to send a budget's bytes is the answer time's
    // share of them.
    let upload_time = paced(
        work.upload_bytes,
        budgets.upload_bytes_per_window,
        (budgets.upload_window + budgets.safety_margin).as_secs_f64(),
        answer_time,
    );
    Duration::from_secs_f64(request_time.max(upload_time))
}

/// Time to send `n` units under a sliding budget of `per_window` per `window` seconds, when
/// sending all `n` back to back would take `unhindered` seconds.
fn paced(n: u64, per_window: u64, window: f64, unhindered: f64) -> f64 {
    if n == 0 || per_window == 0 {
        return unhindered;
    }
    let rate = n as f64 / unhindered.max(1e-9);
    if n <= per_window || rate * window <= per_window as f64 {
        // Never more than a budget in any window.
        return unhindered;
    }
    // Whole budgets each start a window after the one before; the rest goes at the answer rate.
    let full = (n - 1) / per_window;
    let rest = n - full * per_window;
    full as f64 * window + rest as f64 / rate
}

/// The time for a whole job: mailboxes taken in order by `at_once` workers, each starting the
/// next mailbox when it finishes one.
pub fn job_duration(per_mailbox: &[Duration], at_once: usize) -> Duration {
    let mut workers = vec![Duration::ZERO; at_once.max(1)];
    for d in per_mailbox {
        if let Some(w) = workers.iter_mut().min() {
            *w += *d;
        }
    }
    workers.into_iter().max().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(g: u64, m: u64) -> AnswerTimes {
        AnswerTimes {
            gateway: Duration::from_millis(g),
            mailbox: Duration::from_millis(m),
        }
    }

    #[test]
    fn sizes_decide_batched_single_and_upload_sessions() {
        let mut w = Workload::default();
        w.add_message(1_000);
        w.add_message(200_000);
        w.add_message(25_000_000);
        assert_eq!(w.batched, 1);
        // 25 MB raw: 18.75 MB decoded in 5 chunks of 3.75 MiB, plus create, session and PATCH;
        // the chunks carry the decoded bytes.
        assert_eq!(w.single_requests, 1 + 3 + 5);
        assert_eq!(
            w.upload_bytes,
            1_000 + 200_000 + 18_750_000 + 5 * JSON_OVERHEAD
        );
    }

    #[test]
    fn a_small_mailbox_takes_its_answer_time_a_large_one_a_window_per_budget() {
        let b = Budgets::microsoft();
        let window = (b.request_window + b.safety_margin).as_secs_f64();
        let w = |n| Workload {
            batched: n,
            ..Workload::default()
        };
        // 20 per 50 + 5 × 100 ms = 36.4 creates/s.
        let t = mailbox_duration(&w(3_640), &times(50, 100), &b, 20).as_secs_f64();
        assert!((t - 100.0).abs() < 0.5, "{t}");
        // Two and a half budgets: two windows, then half a budget at 36.4/s.
        let t = mailbox_duration(&w(25_000), &times(50, 100), &b, 20).as_secs_f64();
        let expected = 2.0 * window + 5_000.0 / (20.0 / 0.55);
        assert!((t - expected).abs() < 0.5, "{t} against {expected}");
        // Unbatched at 300 ms: 13.3/s is below the budget's pace, which never binds.
        let t = mailbox_duration(&w(25_000), &times(100, 200), &b, 1).as_secs_f64();
        assert!((t - 25_000.0 / (4.0 / 0.3)).abs() < 1.0, "{t}");
    }

    #[test]
    fn the_job_takes_its_busiest_worker() {
        let s = Duration::from_secs;
        assert_eq!(job_duration(&[s(10), s(10), s(10)], 2), s(20));
        assert_eq!(job_duration(&[s(30), s(10), s(10), s(10)], 2), s(30));
        assert_eq!(job_duration(&[], 4), s(0));
    }
}
