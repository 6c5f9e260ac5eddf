//! `/v1/tokens`: create (secret shown once), list, revoke. Admin only.

use super::AppState;
use super::auth::{ADMIN, Authed};
use super::error::ApiError;
use super::path::Param;
use crate::platform::tokens::Role;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    pub role: String,
}

pub async fn create(
    _: Authed<ADMIN>,
    State(state): State<AppState>,
    body: Result<Json<NewToken>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(req) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let role: Role = req.role.parse().map_err(ApiError::bad_request)?;
    if req.name.trim().is_empty() || req.name.len() > 100 {
        return Err(ApiError::bad_request("name must be 1-100 characters"));
    }
    let (token, rec) = state
        .tokens
        .create(&req.name, role)
        .await
        .map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        Json(
            serde_json::json!({ "id": rec.id, "name": rec.name, "role": rec.role, "token": token }),
        ),
    ))
}

pub async fn list(_: Authed<ADMIN>, State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "tokens": state.tokens.list() }))
}

pub async fn revoke(
    _: Authed<ADMIN>,
    State(state): State<AppState>,
    Param(id): Param,
) -> Result<StatusCode, ApiError> {
    if state.tokens.revoke(&id).await.map_err(ApiError::internal)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no token with id {id:?}")))
    }
}
