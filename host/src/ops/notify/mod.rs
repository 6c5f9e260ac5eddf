//! Notifications: the one place every part of the host reports what happened — a pipeline run
//! started, finished or failed, a model was published, a hook dead-lettered an event, an alert
//! fired — and the two ways out of the host: the Server-Sent Events streams
//! (`GET /v1/events/stream`, `GET /v1/runs/{id}/events`) and signed webhooks ([`webhooks`]).
//!
//! The bus is in memory. SSE readers get a bounded broadcast: a reader too slow to keep up is
//! told how many events it missed (Kubernetes watch semantics) rather than slowing the host.
//! Webhook delivery gets every event through an unbounded channel, since a missed
//! `run.failed` is exactly what an on-call team cannot afford.

pub mod alerts;
pub mod webhooks;

use crate::platform::clock::now_ms;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc};

/// Every event type, for filters and docs. `run.step` is progress: it goes to SSE streams and to
/// webhooks that name it explicitly, never to a catch-all subscription.
pub const KINDS: &[&str] = &[
    "run.started",
    "run.step",
    "run.finished",
    "run.failed",
    "run.cancelled",
    "model.published",
    "hook.dead_lettered",
    "alert.fired",
    "alert.resolved",
];

/// One event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Notification {
    /// Unique per host process and increasing: `{start_ms}-{seq}`.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub time_ms: u64,
    pub data: serde_json::Value,
}

impl Notification {
    /// Does `filter` select this event? A filter is a type (`run.failed`), a family (`run.*`)
    /// or `*` (everything but progress).
    pub fn matches(&self, filter: &str) -> bool {
        match filter {
            "*" => self.kind != "run.step",
            f => match f.strip_suffix(".*") {
                Some(family) => {
                    self.kind.split('.').next() == Some(family) && self.kind != "run.step"
                }
                None => self.kind == f,
            },
        }
    }
}

/// Check an event filter; `Err` says why it selects nothing.
pub fn valid_filter(f: &str) -> Result<(), String> {
    let known = f == "*"
        || KINDS.contains(&f)
        || f.strip_suffix(".*")
            .is_some_and(|fam| KINDS.iter().any(|k| k.split('.').next() == Some(fam)));
    if known {
        Ok(())
    } else {
        Err(format!(
            "unknown event type {f:?} (one of {}, a family such as `run.*`, or `*`)",
            KINDS.join(", ")
        ))
    }
}

/// The bus.
pub struct Notifier {
    live: broadcast::Sender<Arc<Notification>>,
    /// Lossless subscribers (webhook delivery).
    sinks: Mutex<Vec<mpsc::UnboundedSender<Arc<Notification>>>>,
    seq: AtomicU64,
    epoch: u64,
}

/// Events an SSE reader may fall behind by before it is told it missed some.
const LIVE_BUFFER: usize = 1024;

impl Default for Notifier {
    fn default() -> Self {
        Notifier {
            live: broadcast::channel(LIVE_BUFFER).0,
            sinks: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
            epoch: now_ms(),
        }
    }
}

impl Notifier {
    /// Report an event; never blocks.
    pub fn emit(&self, kind: &str, data: serde_json::Value) -> Arc<Notification> {
        debug_assert!(KINDS.contains(&kind), "undeclared event type {kind}");
        let n = Arc::new(Notification {
            id: format!(
                "{}-{}",
                self.epoch,
                self.seq.fetch_add(1, Ordering::Relaxed) + 1
            ),
            kind: kind.to_string(),
            time_ms: now_ms(),
            data,
        });
        if kind != "run.step" {
            tracing::info!(target: "aimass::events", event = kind, id = n.id, "{}", n.data);
        }
        let _ = self.live.send(n.clone());
        self.sinks
            .lock()
            .unwrap()
            .retain(|s| s.send(n.clone()).is_ok());
        n
    }

    /// A lossy live subscription (SSE).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Notification>> {
        self.live.subscribe()
    }

    /// A lossless subscription: every event from now on.
    pub fn sink(&self) -> mpsc::UnboundedReceiver<Arc<Notification>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.sinks.lock().unwrap().push(tx);
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(kind: &str) -> Notification {
        Notification {
            id: "1-1".into(),
            kind: kind.into(),
            time_ms: 0,
            data: serde_json::Value::Null,
        }
    }

    #[test]
    fn filters_select_types_families_and_everything_but_progress() {
        assert!(n("run.failed").matches("run.failed"));
        assert!(!n("run.finished").matches("run.failed"));
        assert!(n("run.finished").matches("run.*"));
        assert!(!n("model.published").matches("run.*"));
        assert!(n("model.published").matches("*"));
        assert!(!n("run.step").matches("*"));
        assert!(!n("run.step").matches("run.*"));
        assert!(n("run.step").matches("run.step"));
        assert!(valid_filter("run.*").is_ok());
        assert!(valid_filter("alert.fired").is_ok());
        assert!(valid_filter("run.exploded").is_err());
        assert!(valid_filter("nope.*").is_err());
    }

    #[tokio::test]
    async fn sinks_get_every_event_in_order_and_ids_increase() {
        let bus = Notifier::default();
        let mut sink = bus.sink();
        let mut live = bus.subscribe();
        let a = bus.emit("run.started", serde_json::json!({"run": "a"}));
        let b = bus.emit("run.failed", serde_json::json!({"run": "a"}));
        assert_eq!(sink.recv().await.unwrap().id, a.id);
        assert_eq!(sink.recv().await.unwrap().id, b.id);
        assert_eq!(live.recv().await.unwrap().kind, "run.started");
        assert_ne!(a.id, b.id);
    }
}
