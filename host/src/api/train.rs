//! `/v1/train`: training jobs. `POST` validates the request (400 naming the field) and answers
//! 202 with the queued job; `GET /v1/train/{id}` shows its state, progress and result.

use super::AppState;
use super::auth::{ADMIN, Authed, READER};
use super::body::AuthedBody;
use super::error::ApiError;
use super::path::Param;
use crate::models::train::spec::TrainRequest;
use crate::models::train::{Job, SubmitError};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

pub async fn submit(
    State(state): State<AppState>,
    AuthedBody { bytes: body, .. }: AuthedBody<ADMIN, { 1 << 20 }>,
) -> Result<Response, ApiError> {
    let request: TrainRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid training request: {e}")))?;
    let job = state.jobs.submit(request).await.map_err(|e| match e {
        SubmitError::Invalid(m) => ApiError::bad_request(m),
        SubmitError::Storage(_) => ApiError::internal(e),
    })?;
    let location = format!("/v1/train/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(job),
    )
        .into_response())
}

pub async fn list(_: Authed<READER>, State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "jobs": state.jobs.list() }))
}

pub async fn show(
    _: Authed<READER>,
    State(state): State<AppState>,
    Param(id): Param,
) -> Result<Json<Job>, ApiError> {
    state
        .jobs
        .get(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no training job `{id}`")))
}
