//! Server-Sent Events from the notification bus, shared by `GET /v1/events/stream` and
//! `GET /v1/runs/{id}/events`. A stream's task ends when its client leaves (even while no event
//! arrives) and when the host shuts down, so open streams never hold a graceful shutdown for
//! its whole grace period.
//!
//! A stream lives on its token's authority: [`StreamAuth`] checks the token like any route, and
//! the stream ends as soon as that token is revoked. Streams are capped per token
//! ([`MAX_STREAMS_PER_TOKEN`], 429 past it) and per host ([`MAX_STREAMS`], 503).

use super::AppState;
use super::auth::Authed;
use super::error::ApiError;
use crate::ops::notify::Notification;
use crate::platform::tokens::Role;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// Event streams open at once on one token.
pub const MAX_STREAMS_PER_TOKEN: usize = 16;
/// Event streams open at once on the host.
pub const MAX_STREAMS: usize = 1024;

/// Open streams, per token and in all.
#[derive(Default)]
pub struct StreamSlots {
    open: Mutex<(usize, HashMap<String, usize>)>,
}

/// One open stream's place in [`StreamSlots`], given back on drop.
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    key: String,
}

impl StreamSlots {
    fn take(self: &Arc<Self>, key: &str) -> Result<StreamSlot, ApiError> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per) = &mut *open;
        let mine = per.get(key).copied().unwrap_or(0);
        if mine >= MAX_STREAMS_PER_TOKEN {
            return Err(ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("this token has {MAX_STREAMS_PER_TOKEN} event streams open already"),
                )
            });
        }
        if *total >= MAX_STREAMS {
            return Err(ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the host has {MAX_STREAMS} event streams open already"),
                )
            });
        }
        *total += 1;
        per.insert(key.to_string(), mine + 1);
        Ok(StreamSlot {
            slots: self.clone(),
            key: key.to_string(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per) = &mut *open;
        *total -= 1;
        if let Some(n) = per.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                per.remove(&self.key);
            }
        }
    }
}

/// An authenticated event stream: the role, a slot, and what ends it (revocation).
pub struct StreamAuth<const MIN: u8> {
    pub role: Role,
    guard: StreamGuard,
}

/// Keeps a stream's slot and ends the stream when its token is revoked.
pub struct StreamGuard {
    revoked: CancellationToken,
    _slot: StreamSlot,
}

impl<const MIN: u8> StreamAuth<MIN> {
    pub fn guard(self) -> StreamGuard {
        self.guard
    }
}

impl<const MIN: u8> FromRequestParts<AppState> for StreamAuth<MIN> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Authed(role) = Authed::<MIN>::from_request_parts(parts, state).await?;
        let token = (parts.headers.get(axum::http::header::AUTHORIZATION))
            .and_then(|v| v.to_str().ok())
            .and_then(super::auth::bearer)
            .unwrap_or_default();
        // `AIMASS_TOKEN` has no id (it cannot be revoked); its streams share one count.
        let id = state.tokens.id_of(token);
        let revoked = match &id {
            Some(id) => state.tokens.on_revoke(id),
            None => CancellationToken::new(),
        };
        let slot = state.streams.take(id.as_deref().unwrap_or("env"))?;
        Ok(StreamAuth {
            role,
            guard: StreamGuard {
                revoked,
                _slot: slot,
            },
        })
    }
}

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
    shutdown: CancellationToken,
    guard: StreamGuard,
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
            _ = guard.revoked.cancelled() => {}
        }
        drop(guard);
    });
    let events = futures::stream::unfold(out, |mut rx| async move {
        rx.recv().await.map(|ev| (Ok(ev), rx))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
