//! Creates of small messages grouped into `$batch`es: one HTTP round trip for up to 20 creates.
//!
//! When Exchange Online answers slowly, four requests in flight bound a mailbox below its
//! request budget (4 slots × 300 ms = 13.3 requests/s against 16.7). A batch pays the way to
//! the service (network, Graph's gateway) once for 20 creates; Graph runs four of them at a
//! time, so the mailbox's concurrency limit holds.
//!
//! Group commit: the first create of an idle mailbox goes out alone at once; creates that
//! arrive while a request is in flight wait and leave together in the next one. One sender per
//! mailbox writer sends them one after another (two batches at once would run eight
//! sub-requests against a limit of four).
//!
//! Each create keeps the guarantees of a single request: a sub-request answered 429/503/424
//! was not carried out and is sent again (after the mailbox's `Retry-After`); one whose
//! outcome is unknown (502/504, missing from the answer, the batch's answer lost) fails with
//! [`Error::Transport`], and the writer looks it up by fingerprint before it writes it again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::oneshot;

use super::client::{Call, GraphClient, MAX_BATCH, RawRequest};
use super::throttle::MailboxLimiter;
use crate::Error;

/// Largest create body (JSON) that is batched; larger ones go alone. 20 of them stay well
/// below Graph's 4 MB per request, and above about 30 KB per message the upload budget binds
/// before the request budget, so batching would not raise throughput.
pub(crate) const MAX_BATCHED_BODY: usize = 128 * 1024;

struct Pending {
    url: String,
    /// The create's JSON.
    body: Bytes,
    /// Sends of this create that were answered "not carried out, try later".
    throttled: u32,
    first_sent: Option<Instant>,
    done: oneshot::Sender<Result<String, Error>>,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Pending>,
    sending: bool,
}

/// Groups one mailbox's small creates into batches.
pub(crate) struct CreateBatcher {
    client: Arc<GraphClient>,
    limiter: Arc<MailboxLimiter>,
    max_batch: usize,
    queue: Mutex<Queue>,
}

impl CreateBatcher {
    /// `max_batch` creates per request at most (1 to 20; 1 sends each alone).
    pub(crate) fn new(
        client: Arc<GraphClient>,
        limiter: Arc<MailboxLimiter>,
        max_batch: usize,
    ) -> Self {
        Self {
            client,
            limiter,
            max_batch: max_batch.clamp(1, MAX_BATCH),
            queue: Mutex::new(Queue::default()),
        }
    }

    /// Creates per request at most.
    pub(crate) fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Creates the message (`POST url` with `body`) and returns its id. Errors mean the same as
    /// for a single POST: [`Error::Transport`] when it may have been created.
    pub(crate) async fn create(
        self: &Arc<Self>,
        url: String,
        body: Bytes,
    ) -> Result<String, Error> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.items.push_back(Pending {
                url,
                body,
                throttled: 0,
                first_sent: None,
                done: tx,
            });
            !std::mem::replace(&mut q.sending, true)
        };
        if start {
            // Its own task: a caller that gives up must not strand the creates queued behind
            // its own.
            let me = self.clone();
            tokio::spawn(async move { me.drain().await });
        }
        rx.await.unwrap_or_else(|_| {
            Err(Error::Transport(
                "the batch sender stopped before it answered; whether the message was created is unknown"
                    .into(),
            ))
        })
    }

    /// Sends what is queued, a batch at a time, until nothing is.
    async fn drain(self: Arc<Self>) {
        loop {
            let batch: Vec<Pending> = {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                if q.items.is_empty() {
                    q.sending = false;
                    return;
                }
                let n = q.items.len().min(self.max_batch);
                q.items.drain(..n).collect()
            };
            let again = self.send(batch).await;
            if !again.is_empty() {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                for p in again.into_iter().rev() {
                    q.items.push_front(p);
                }
            }
        }
    }

    /// Sends one group; answers each create and returns those to send again.
    async fn send(&self, mut batch: Vec<Pending>) -> Vec<Pending> {
        let now = Instant::now();
        for p in &mut batch {
            p.first_sent.get_or_insert(now);
        }
        if batch.len() == 1 {
            // Alone: a plain POST, with the client's own retries.
            let p = batch.remove(0);
            let r = post_create(&self.client, &self.limiter, &p.url, p.body.clone()).await;
            let _ = p.done.send(r);
            return Vec::new();
        }
        let requests: Vec<RawRequest> = batch
            .iter()
            .map(|p| RawRequest {
                method: "POST".into(),
                url: p.url.clone(),
                body: Some(p.body.clone()),
            })
            .collect();
        let answers = match self.client.send_batch(Some(&self.limiter), &requests).await {
            Ok(a) => a,
            Err(e) => {
                // Nothing is known of any of them (or all were refused alike).
                for p in batch {
                    let _ = p.done.send(Err(e.for_each_item()));
                }
                return Vec::new();
            }
        };
        let retry = self.client.retry_policy();
        let mut again = Vec::new();
        for (mut p, answer) in batch.into_iter().zip(answers) {
            let Some(a) = answer else {
                let _ = p.done.send(Err(Error::Transport(
                    "the $batch answer left this create out: whether it was created is unknown"
                        .into(),
                )));
                continue;
            };
            match a.status {
                200 | 201 => {
                    let _ = p.done.send(created_id(&a.body, &p.url));
                }
                429 | 503 | 424 => {
                    // Not carried out: send it again once the mailbox may be written.
                    if a.status != 424 {
                        // Exchange Online refuses the whole mailbox until its Retry-After has
                        // passed: pause every request to it, as for a single answer.
                        self.client.note_throttled();
                        let wait = a.retry_after.unwrap_or(retry.base_delay);
                        self.limiter
                            .throttled(Some(wait.min(retry.max_retry_after)));
                    }
                    p.throttled += 1;
                    if p.throttled >= retry.max_attempts {
                        let elapsed = p.first_sent.map(|t| t.elapsed()).unwrap_or_default();
                        let _ = p.done.send(Err(Error::RetriesExhausted {
                            attempts: p.throttled,
                            elapsed,
                            last: format!("HTTP {} in a $batch", a.status),
                        }));
                    } else {
                        again.push(p);
                    }
                }
                502 | 504 => {
                    let _ = p.done.send(Err(Error::Transport(format!(
                        "HTTP {} in a $batch: the answer was lost after the create reached the \
                         service, its outcome is unknown",
                        a.status
                    ))));
                }
                status => {
                    let _ = p.done.send(Err(Error::Rejected {
                        method: "POST".into(),
                        path: p.url.split('?').next().unwrap_or_default().to_string(),
                        status,
                        code: a.body["error"]["code"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        message: a.body["error"]["message"]
                            .as_str()
                            .unwrap_or_default()
                            .chars()
                            .take(500)
                            .collect(),
                    }));
                }
            }
        }
        again
    }
}

/// Creates one message with a plain `POST url` (the client's own retries) and returns its id.
pub(crate) async fn post_create(
    client: &GraphClient,
    limiter: &MailboxLimiter,
    url: &str,
    body: Bytes,
) -> Result<String, Error> {
    let reply = client
        .call(Call::post_json(url, Some(limiter), body))
        .await?
        .ok("POST", url)?;
    created_id(&reply.json(url)?, url)
}

fn created_id(v: &Value, url: &str) -> Result<String, Error> {
    v["id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .map(String::from)
        .ok_or_else(|| Error::Protocol {
            context: format!("POST {}", url.split('?').next().unwrap_or_default()),
            message: "the created message has no id".into(),
        })
}
