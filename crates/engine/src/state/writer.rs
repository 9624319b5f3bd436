//! A writer task that batches outcomes from many pipeline tasks into few transactions.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{Batch, EventRecord, ItemOutcome, RunId, StateStore};
use crate::error::{Error, Result};

enum Msg {
    Outcome(ItemOutcome),
    Event(EventRecord),
    Flush(oneshot::Sender<Result<()>>),
}

/// Collects outcomes and events from any number of tasks and writes them with
/// [`StateStore::record_batch`] when `max_items` are pending or `max_delay` has passed since the
/// first pending one — whichever comes first. [`BatchWriter::flush`] waits until everything sent
/// before it is committed (call it before acting on "recorded", e.g. before ending a folder).
///
/// After a failed write the writer stops and every later call returns an error. The original
/// error goes to the `flush` that triggered the write, otherwise to [`BatchWriter::close`].
#[derive(Debug)]
pub struct BatchWriter {
    tx: mpsc::Sender<Msg>,
    task: tokio::task::JoinHandle<Result<()>>,
}

fn stopped() -> Error {
    Error::State {
        path: "writer".into(),
        operation: "record",
        message: "the state writer stopped after an earlier error".into(),
        hint: Some("see the first error (returned by flush or close)".into()),
    }
}

impl BatchWriter {
    /// Starts the writer task on the current tokio runtime.
    pub fn spawn(
        store: Arc<dyn StateStore>,
        run: RunId,
        max_items: usize,
        max_delay: Duration,
    ) -> BatchWriter {
        let max_items = max_items.max(1);
        let (tx, mut rx) = mpsc::channel::<Msg>(max_items * 2);
        let task = tokio::spawn(async move {
            let mut batch = Batch::default();
            let mut deadline: Option<tokio::time::Instant> = None;
            loop {
                let msg = match deadline {
                    Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                        Ok(m) => m,
                        Err(_) => {
                            write(&*store, run, &mut batch).await?;
                            deadline = None;
                            continue;
                        }
                    },
                    None => rx.recv().await,
                };
                match msg {
                    None => return write(&*store, run, &mut batch).await,
                    Some(Msg::Flush(reply)) => {
                        let r = write(&*store, run, &mut batch).await;
                        deadline = None;
                        let failed = r.is_err();
                        if failed {
                            // Refuse later sends before answering: a caller that saw the
                            // error must not be able to queue an outcome that is never written.
                            rx.close();
                        }
                        let _ = reply.send(r);
                        if failed {
                            return Err(stopped());
                        }
                    }
                    Some(m) => {
                        match m {
                            Msg::Outcome(o) => batch.outcomes.push(o),
                            Msg::Event(e) => batch.events.push(e),
                            Msg::Flush(_) => {}
                        }
                        if deadline.is_none() {
                            deadline = Some(tokio::time::Instant::now() + max_delay);
                        }
                        if batch.outcomes.len() + batch.events.len() >= max_items {
                            write(&*store, run, &mut batch).await?;
                            deadline = None;
                        }
                    }
                }
            }
        });
        BatchWriter { tx, task }
    }

    /// Queues an outcome.
    pub async fn record(&self, outcome: ItemOutcome) -> Result<()> {
        self.tx
            .send(Msg::Outcome(outcome))
            .await
            .map_err(|_| stopped())
    }

    /// Queues an event.
    pub async fn event(&self, event: EventRecord) -> Result<()> {
        self.tx.send(Msg::Event(event)).await.map_err(|_| stopped())
    }

    /// Writes everything queued so far and waits for the commit.
    pub async fn flush(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Msg::Flush(reply))
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Writes what is pending, stops the task and returns the first error, if any.
    pub async fn close(self) -> Result<()> {
        drop(self.tx);
        self.task.await.map_err(|e| Error::State {
            path: "writer".into(),
            operation: "close",
            message: format!("the state writer task ended abnormally: {e}"),
            hint: None,
        })?
    }
}

async fn write(store: &dyn StateStore, run: RunId, batch: &mut Batch) -> Result<()> {
    if batch.outcomes.is_empty() && batch.events.is_empty() {
        return Ok(());
    }
    let b = std::mem::take(batch);
    store.record_batch(run, &b).await
}
