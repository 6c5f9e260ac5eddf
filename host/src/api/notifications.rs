//! `/v1/notifications/webhooks/{name}` (signed webhook subscriptions), the global
//! Server-Sent Events stream `GET /v1/events/stream?types=run.*,model.published`, and the
//! alert rules' state (`GET /v1/alerts`).

use super::AppState;
use super::auth::{ADMIN, Authed, READER};
use super::body::AuthedBody;
use super::error::ApiError;
use super::path::Param;
use super::sse::{self, Pick};
use crate::ops::notify::valid_filter;
use crate::ops::notify::webhooks::WebhookSpec;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Deserialize;
use std::convert::Infallible;

pub async fn put_webhook(
    State(state): State<AppState>,
    Param(name): Param,
    AuthedBody { bytes: body, .. }: AuthedBody<ADMIN, { 64 << 10 }>,
) -> Result<Response, ApiError> {
    let spec: WebhookSpec = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("webhook: {e}")))?;
    let created = state
        .webhooks
        .put(&name, spec)
        .await
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    Ok((
        super::error::created_or_ok(created),
        Json(state.webhooks.get(&name)),
    )
        .into_response())
}

pub async fn list_webhooks(
    _: Authed<ADMIN>,
    State(state): State<AppState>,
) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "webhooks": state.webhooks.list() }))
}

pub async fn show_webhook(
    _: Authed<ADMIN>,
    State(state): State<AppState>,
    Param(name): Param,
) -> Result<Response, ApiError> {
    state
        .webhooks
        .get(&name)
        .map(|w| Json(w).into_response())
        .ok_or_else(|| ApiError::not_found(format!("no webhook named `{name}`")))
}

pub async fn delete_webhook(
    _: Authed<ADMIN>,
    State(state): State<AppState>,
    Param(name): Param,
) -> Result<StatusCode, ApiError> {
    match state.webhooks.delete(&name).await {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(ApiError::not_found(format!("no webhook named `{name}`"))),
        Err(e) => Err(ApiError::storage(e)),
    }
}

pub async fn alerts(_: Authed<READER>, State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "alerts": state.alerts.list() }))
}

#[derive(Deserialize)]
pub struct StreamQuery {
    /// Comma-separated filters; default `*` (everything but `run.step`).
    types: Option<String>,
}

/// `GET /v1/events/stream`: every event from now on that matches `types`.
pub async fn stream(
    auth: super::sse::StreamAuth<READER>,
    State(state): State<AppState>,
    Query(q): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let filters: Vec<String> = q
        .types
        .as_deref()
        .unwrap_or("*")
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    for f in &filters {
        valid_filter(f).map_err(|e| ApiError::bad_request(format!("types: {e}")))?;
    }
    // An opening comment, so clients see the stream is live before the first event.
    let hello = SseEvent::default().comment("subscribed");
    Ok(sse::stream(
        state.shutdown.clone(),
        auth.guard(),
        state.bus.subscribe(),
        Some((hello, false)),
        move |n| match filters.iter().any(|f| n.matches(f)) {
            true => Pick::Send,
            false => Pick::Skip,
        },
        || true,
    ))
}
