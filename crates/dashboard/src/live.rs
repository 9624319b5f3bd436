//! `GET /api/events`: server-sent events. Each client gets
//! - `overview`: the overview JSON (as `GET /api/overview`) whenever it changed, checked every
//!   second — counts, states and throughput of runs in this process or any other;
//! - `stored`: each event the engine stored (mailbox errors, completions, throttling, ...),
//!   the newest 20 first, then new ones as they are stored;
//! - `engine`: the engine's own events of runs this server started (mailbox started and
//!   finished, items skipped or failed, throttling, paused, resumed, `run_finished`).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use o365_migrate_engine::state::{StateStore, StoredEvent};
use tokio::sync::broadcast;

use crate::api::App;

/// The newest `n` stored events, oldest first.
pub(crate) async fn latest_events(
    store: &dyn StateStore,
    n: usize,
) -> o365_migrate_engine::Result<Vec<StoredEvent>> {
    let mut keep: VecDeque<StoredEvent> = VecDeque::new();
    let mut after = 0;
    loop {
        let page = store.events_after(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        let full = page.len() == 1000;
        keep.extend(page);
        while keep.len() > n {
            keep.pop_front();
        }
        if !full {
            break;
        }
    }
    Ok(keep.into())
}

struct Client {
    app: Arc<App>,
    rx: broadcast::Receiver<String>,
    queue: VecDeque<SseEvent>,
    last_overview: String,
    last_event: Option<i64>,
    tick: tokio::time::Interval,
}

impl Client {
    async fn poll_store(&mut self) {
        match self.app.overview().await {
            Ok(o) => {
                let json = serde_json::to_string(&*o).unwrap_or_default();
                // `generated_at` changes every time: compare without it.
                let key = json.split_once(',').map(|(_, rest)| rest).unwrap_or("");
                if key != self.last_overview {
                    self.last_overview = key.to_owned();
                    self.queue
                        .push_back(SseEvent::default().event("overview").data(json));
                }
            }
            Err(_) => tracing::warn!("dashboard: cannot build the overview"),
        }
        let store = self.app.store.as_ref();
        let events = match self.last_event {
            None => latest_events(store, 20).await,
            Some(after) => store.events_after(after, 200).await,
        };
        match events {
            Ok(events) => {
                if let Some(l) = events.last() {
                    self.last_event = Some(l.id);
                } else if self.last_event.is_none() {
                    self.last_event = Some(0);
                }
                for e in events {
                    if let Ok(json) = serde_json::to_string(&e) {
                        self.queue
                            .push_back(SseEvent::default().event("stored").data(json));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "dashboard: cannot read events"),
        }
    }
}

/// `GET /api/events`.
pub(crate) async fn events(
    State(app): State<Arc<App>>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let client = Client {
        rx: app.events.subscribe(),
        app,
        queue: VecDeque::new(),
        last_overview: String::new(),
        last_event: None,
        tick,
    };
    let stream = futures_util::stream::unfold(client, |mut c| async move {
        loop {
            if let Some(e) = c.queue.pop_front() {
                return Some((Ok(e), c));
            }
            tokio::select! {
                r = c.rx.recv() => match r {
                    Ok(json) => {
                        // A run's end, a pause or a resume changes the overview at once.
                        let changes = ["\"run_finished\"", "\"paused\"", "\"resumed\""]
                            .iter()
                            .any(|k| json.contains(k));
                        c.queue.push_back(SseEvent::default().event("engine").data(json));
                        if changes {
                            c.app.invalidate().await;
                            c.poll_store().await;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => {
                        c.tick.tick().await;
                    }
                },
                _ = c.tick.tick() => c.poll_store().await,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
