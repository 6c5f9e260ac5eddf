//! Server-Sent Events from the notification bus, shared by `GET /v1/events/stream` and
//! `GET /v1/runs/{id}/events`. A stream's task ends when its client leaves (even while no event
//! arrives) and when the host shuts down, so open streams never hold a graceful shutdown for
//! its whole grace period.

use crate::capabilities::notify::Notification;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// What to do with a bus event.
pub enum Pick {
    Skip,
    Send,
    /// Send it, then end the stream.
    SendAndEnd,
}

pub fn event(n: &Notification) -> SseEvent {
    SseEvent::default()
        .event(n.kind.clone())
        .id(n.id.clone())
        .data(serde_json::to_string(n).unwrap_or_default())
}

/// An SSE response: `first` (if any; the stream ends after it when its flag says so), then the
/// bus events `pick` selects. After a lag (the
/// client fell more than the bus buffer behind) a `lagged` event says how many were missed and
/// `after_lag` decides whether to go on.
pub fn stream(
    shutdown: tokio_util::sync::CancellationToken,
    mut rx: broadcast::Receiver<Arc<Notification>>,
    first: Option<(SseEvent, bool)>,
    mut pick: impl FnMut(&Notification) -> Pick + Send + 'static,
    mut after_lag: impl FnMut() -> bool + Send + 'static,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let (tx, out) = mpsc::channel::<SseEvent>(64);
    let body = async move {
        if let Some((f, end)) = first
            && (tx.send(f).await.is_err() || end)
        {
            return;
        }
        loop {
            let n = tokio::select! {
                n = rx.recv() => n,
                _ = tx.closed() => return,
            };
            let (ev, end) = match n {
                Ok(n) => match pick(&n) {
                    Pick::Skip => continue,
                    Pick::Send => (event(&n), false),
                    Pick::SendAndEnd => (event(&n), true),
                },
                Err(broadcast::error::RecvError::Lagged(k)) => (
                    SseEvent::default().event("lagged").data(k.to_string()),
                    !after_lag(),
                ),
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if tx.send(ev).await.is_err() || end {
                return;
            }
        }
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = body => {}
            _ = shutdown.cancelled() => {}
        }
    });
    let events = futures::stream::unfold(out, |mut rx| async move {
        rx.recv().await.map(|ev| (Ok(ev), rx))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
