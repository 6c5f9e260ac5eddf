//! `/v1/hooks`: bind plugins to key prefixes (see `ingest::hooks`).

use super::AppState;
use super::auth::{ADMIN, Authed, READER};
use super::body::AuthedBody;
use super::error::ApiError;
use super::path::Param;
use crate::ingest::hooks::HookError;
use crate::ingest::hooks::spec::HookSpec;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Largest hook spec accepted.
const MAX_SPEC_BYTES: usize = 64 << 10;

impl From<HookError> for ApiError {
    fn from(e: HookError) -> Self {
        match e {
            HookError::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            HookError::NotFound(_) => ApiError::not_found(e.to_string()),
            HookError::Storage(e) => ApiError::storage(e),
        }
    }
}

pub async fn put(
    State(state): State<AppState>,
    Param(name): Param,
    AuthedBody { bytes: body, .. }: AuthedBody<ADMIN, MAX_SPEC_BYTES>,
) -> Result<Response, ApiError> {
    let spec: HookSpec = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("hook spec: {e}")))?;
    let created = state.hooks.put(&name, spec).await?;
    let status = state
        .hooks
        .status(&name)
        .ok_or_else(|| ApiError::not_found(&name))?;
    Ok((super::error::created_or_ok(created), Json(status)).into_response())
}

pub async fn list(
    Authed(role): Authed<READER>,
    State(state): State<AppState>,
) -> Json<serde_json::Value> {
    let hooks: Vec<_> = state
        .hooks
        .list()
        .iter()
        .filter_map(|r| state.hooks.status(&r.name))
        .collect();
    let mut v = serde_json::json!({ "hooks": hooks });
    super::redact::configs_for(role, &mut v);
    Json(v)
}

pub async fn show(
    Authed(role): Authed<READER>,
    State(state): State<AppState>,
    Param(name): Param,
) -> Result<Response, ApiError> {
    let status = state
        .hooks
        .status(&name)
        .ok_or_else(|| ApiError::from(HookError::NotFound(name)))?;
    let mut v = serde_json::to_value(status).map_err(ApiError::internal)?;
    super::redact::configs_for(role, &mut v);
    Ok(Json(v).into_response())
}

pub async fn delete(
    _: Authed<ADMIN>,
    State(state): State<AppState>,
    Param(name): Param,
) -> Result<Response, ApiError> {
    if !state.hooks.delete(&name).await? {
        return Err(HookError::NotFound(name).into());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn pause(
    _: Authed<ADMIN>,
    State(state): State<AppState>,
    Param(name): Param,
) -> Result<Response, ApiError> {
    Ok(Json(state.hooks.set_paused(&name, true).await?).into_response())
}

pub async fn resume(
    _: Authed<ADMIN>,
    State(state): State<AppState>,
    Param(name): Param,
) -> Result<Response, ApiError> {
    Ok(Json(state.hooks.set_paused(&name, false).await?).into_response())
}

pub async fn redrive(
    _: Authed<ADMIN>,
    State(state): State<AppState>,
    Param(name): Param,
) -> Result<Response, ApiError> {
    let n = state.hooks.redrive(&name).await?;
    Ok(Json(serde_json::json!({ "redriven": n })).into_response())
}

pub async fn dead_letters(
    _: Authed<READER>,
    State(state): State<AppState>,
    Param(name): Param,
) -> Result<Response, ApiError> {
    let letters = state.hooks.dead_letters(&name).await?;
    Ok(Json(serde_json::json!({ "dead_letters": letters })).into_response())
}
