//! `/v1/train`: training jobs. `POST` validates the request (400 naming the field) and answers
//! 202 with the queued job; `GET /v1/train/{id}` shows its state, progress and result.

use super::AppState;
use super::auth::{ADMIN, Authed, READER};
use super::error::ApiError;
use super::path::Param;
use crate::models::train::spec::TrainRequest;
use crate::models::train::{Job, SubmitError};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub async fn submit(
    auth: Result<Authed<ADMIN>, ApiError>,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = super::body::read_authorized(auth, &headers, body, 1 << 20).await?;
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
