//! `/v1/models`: the model registry — upload ONNX as a new version, list and show models with
//! their versions, metrics, aliases and signatures, move aliases, set the publish gate, delete
//! versions that no alias points at.

use super::AppState;
use super::auth::{ADMIN, Authed, READER};
use super::body::AuthedBody;
use super::error::ApiError;
use super::path::{Param, Params};
use crate::models::batcher::Batching;
use crate::models::versions::{
    Gate, ModelError, ModelRecord, ModelVersion, Provenance, check_alias, check_name,
};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

impl From<ModelError> for ApiError {
    fn from(e: ModelError) -> Self {
        let status = match &e {
            ModelError::BadName(_) | ModelError::Invalid(_) => StatusCode::BAD_REQUEST,
            ModelError::NotFound(_) => StatusCode::NOT_FOUND,
            ModelError::Load(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ModelError::Conflict(_) => StatusCode::CONFLICT,
            ModelError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

fn model_json(record: &ModelRecord, versions: &[Arc<ModelVersion>]) -> Value {
    json!({
        "name": record.name,
        "latest_version": versions.last().map(|v| v.version),
        "aliases": record.aliases,
        "gate": record.gate,
        "batching": record.batching,
        "versions": versions,
    })
}

pub async fn list(_: Authed<READER>, State(state): State<AppState>) -> Json<Value> {
    let models: Vec<Value> = state
        .models
        .list()
        .iter()
        .map(|(record, versions)| {
            json!({
                "name": record.name,
                "latest_version": versions.last().map(|v| v.version),
                "versions": versions.len(),
                "aliases": record.aliases,
            })
        })
        .collect();
    Json(json!({ "models": models }))
}

pub async fn show(
    _: Authed<READER>,
    State(state): State<AppState>,
    Param(name): Param,
) -> Result<Json<Value>, ApiError> {
    let (record, versions) = state.models.get(&name)?;
    let mut v = model_json(&record, &versions);
    v["batching_stats"] = serde_json::to_value(state.models.batch_stats(&name)).unwrap_or_default();
    Ok(Json(v))
}

pub async fn show_version(
    _: Authed<READER>,
    State(state): State<AppState>,
    Params((name, version)): Params<(String, String)>,
) -> Result<Json<Arc<ModelVersion>>, ApiError> {
    Ok(Json(state.models.resolve(&name, Some(&version))?))
}

/// Query of an upload.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// Point this alias at the new version.
    pub alias: Option<String>,
}

pub async fn upload(
    State(state): State<AppState>,
    Param(name): Param,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    AuthedBody { bytes: body, .. }: AuthedBody<ADMIN>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if body.is_empty() {
        return Err(ApiError::bad_request("empty body: send the .onnx file"));
    }
    // Everything that can be refused is refused before a version is stored.
    check_name("model name", &name)?;
    if let Some(alias) = &query.alias {
        check_alias(alias)?;
    }
    let models = state.models.clone();
    // Its own task: once validated, the version is stored even if the client goes away.
    let version = tokio::spawn(async move {
        let source = Provenance {
            kind: "upload".into(),
            ..Default::default()
        };
        let v = models
            .create_version(&name, body, source, None, BTreeMap::new(), vec![])
            .await?;
        if let Some(alias) = query.alias {
            models.set_alias(&name, &alias, v.version).await?;
        }
        Ok::<_, ModelError>(v)
    })
    .await
    .map_err(ApiError::internal)??;
    Ok((StatusCode::CREATED, Json(version)).into_response())
}

/// Settings bodies are small JSON objects.
type SmallBody = AuthedBody<ADMIN, { 64 << 10 }>;

/// A settings body as `T`; a 400 shows `expected` when it does not parse.
fn small_json<T: serde::de::DeserializeOwned>(body: &[u8], expected: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("body must be {expected}: {e}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasBody {
    pub version: u32,
}

pub async fn put_alias(
    State(state): State<AppState>,
    Params((name, alias)): Params<(String, String)>,
    AuthedBody { bytes: body, .. }: SmallBody,
) -> Result<Json<ModelRecord>, ApiError> {
    let AliasBody { version } = small_json(&body, r#"{"version": N}"#)?;
    Ok(Json(state.models.set_alias(&name, &alias, version).await?))
}

pub async fn delete_alias(
    _: Authed<ADMIN>,
    State(state): State<AppState>,
    Params((name, alias)): Params<(String, String)>,
) -> Result<Json<ModelRecord>, ApiError> {
    Ok(Json(state.models.delete_alias(&name, &alias).await?))
}

pub async fn put_gate(
    State(state): State<AppState>,
    Param(name): Param,
    AuthedBody { bytes: body, .. }: SmallBody,
) -> Result<Json<ModelRecord>, ApiError> {
    let gate: Gate = small_json(&body, r#"an object like {"min_auc": 0.9}"#)?;
    Ok(Json(state.models.set_gate(&name, gate).await?))
}

/// `PUT /v1/models/{name}/batching`: `{"max_batch_size": 32, "max_queue_delay_us": 500}` turns
/// dynamic batching on, `null` turns it off.
pub async fn put_batching(
    State(state): State<AppState>,
    Param(name): Param,
    AuthedBody { bytes: body, .. }: SmallBody,
) -> Result<Json<ModelRecord>, ApiError> {
    let expected = r#"{"max_batch_size": N, "max_queue_delay_us": N} or null"#;
    let batching: Option<Batching> = small_json(&body, expected)?;
    Ok(Json(state.models.set_batching(&name, batching).await?))
}

pub async fn delete_version(
    _: Authed<ADMIN>,
    State(state): State<AppState>,
    Params((name, version)): Params<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let version: u32 = version
        .parse()
        .map_err(|_| ApiError::bad_request(format!("version {version:?} is not a number")))?;
    state.models.delete_version(&name, version).await?;
    Ok(StatusCode::NO_CONTENT)
}
