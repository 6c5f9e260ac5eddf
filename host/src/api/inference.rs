//! The Open Inference Protocol v2 (KServe / Triton HTTP/REST), exactly its routes, so unmodified
//! OIP clients work: server metadata and health, model metadata and readiness, and inference.
//! `{name}` alone serves the `production` alias (or the latest version); `versions/{v}` takes a
//! version number or an alias.
//!
//! Health routes need no token (orchestrators probe them); metadata needs `reader`, inference
//! `invoker`. The first request for a version loads it if the host has not yet (versions created
//! here are loaded at creation); the plan is then shared and runs on the blocking pool.

use super::AppState;
use super::auth::{Authed, INVOKER, READER};
use super::body::AuthedBody;
use super::error::ApiError;
use super::oip_binary;
use super::path::{Param, Params};
use crate::models::batcher::BatchError;
use crate::models::inference::{self, InferError, InferRequest, InferResponse};
use crate::models::onnx::LoadedModel;
use crate::models::transforms::{self, TransformError};
use crate::models::versions::ModelVersion;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;
use tract_onnx::prelude::{IntoTensor, TValue, TVec};

pub async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "aimass",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": [],
    }))
}

pub async fn live() -> Json<Value> {
    Json(json!({ "live": true }))
}

pub async fn ready() -> Json<Value> {
    Json(json!({ "ready": true }))
}

async fn metadata(
    state: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<Json<Value>, ApiError> {
    let v = state.models.resolve(name, version)?;
    let (_, versions) = state.models.get(name)?;
    let sig = &v.signature;
    Ok(Json(json!({
        "name": name,
        "versions": versions.iter().map(|v| v.version.to_string()).collect::<Vec<_>>(),
        "platform": "onnx",
        "inputs": sig.inputs,
        "outputs": sig.outputs,
    })))
}

pub async fn model_metadata(
    _: Authed<READER>,
    State(state): State<AppState>,
    Param(name): Param,
) -> Result<Json<Value>, ApiError> {
    metadata(&state, &name, None).await
}

pub async fn version_metadata(
    _: Authed<READER>,
    State(state): State<AppState>,
    Params((name, version)): Params<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    metadata(&state, &name, Some(&version)).await
}

async fn readiness(
    state: &AppState,
    name: &str,
    version: Option<&str>,
) -> Result<Json<Value>, ApiError> {
    // A version that resolves was loaded and optimised when it was stored: it is ready, and
    // asking must not load it (readers could otherwise pin every version in memory).
    let v = state.models.resolve(name, version)?;
    Ok(Json(json!({
        "name": name, "version": v.version.to_string(), "ready": true,
        "loaded": state.models.is_loaded(&v),
    })))
}

pub async fn model_ready(
    _: Authed<READER>,
    State(state): State<AppState>,
    Param(name): Param,
) -> Result<Json<Value>, ApiError> {
    readiness(&state, &name, None).await
}

pub async fn version_ready(
    _: Authed<READER>,
    State(state): State<AppState>,
    Params((name, version)): Params<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    readiness(&state, &name, Some(&version)).await
}

impl From<InferError> for ApiError {
    fn from(e: InferError) -> Self {
        match e {
            InferError::BadRequest(m) => ApiError::bad_request(m),
            InferError::Failed(_) => ApiError::internal(e),
        }
    }
}

/// Bodies larger than this are parsed on the blocking pool: parsing a large JSON tensor takes
/// long enough to hold up every other request sharing an async worker.
const OFF_THREAD_BYTES: usize = 64 << 10;

/// The request's id, and its inputs converted and checked for `plan` (with the outputs asked
/// for). The body is freed once its tensors are built.
async fn decode(
    headers: &HeaderMap,
    body: bytes::Bytes,
    plan: &Arc<LoadedModel>,
) -> Result<Decoded, ApiError> {
    fn run(
        headers: &HeaderMap,
        body: bytes::Bytes,
        plan: &LoadedModel,
    ) -> Result<Decoded, ApiError> {
        let req: InferRequest = oip_binary::parse(headers, body)?;
        let (inputs, wanted) = inference::prepare(plan, &req)?;
        Ok((req.id, inputs, wanted))
    }
    if body.len() <= OFF_THREAD_BYTES {
        return run(headers, body, plan);
    }
    let (headers, plan) = (headers.clone(), plan.clone());
    tokio::task::spawn_blocking(move || run(&headers, body, &plan))
        .await
        .map_err(ApiError::internal)?
}

type Decoded = (Option<String>, TVec<TValue>, Vec<inference::Wanted>);

async fn infer(
    state: &AppState,
    v: Arc<ModelVersion>,
    headers: &HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    let plan = state.models.plan(&v).await?;
    let (id, mut inputs, wanted) = decode(headers, body, &plan).await?;
    if !v.transforms.is_empty() {
        let states = state.models.transform_states(&v).await?;
        let raw = inputs.remove(0);
        let scaled = transforms::apply(&state.registry, &v, &states, &raw)
            .await
            .map_err(|e| {
                let m = format!("applying the model's transforms: {e}");
                match e {
                    TransformError::Input(_) => ApiError::bad_request(m),
                    TransformError::Busy(_) => ApiError {
                        retry_after: Some(1),
                        ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, m)
                    },
                    TransformError::Failed(_) => ApiError::internal(m),
                }
            })?;
        inputs.insert(0, scaled.into());
    }
    let outputs = match state.models.batcher(&v, &plan) {
        Some(batcher) => {
            let tensors = inputs.into_iter().map(|t| t.into_tensor()).collect();
            let out = batcher.infer(tensors).await.map_err(|e| match e {
                BatchError::Full => ApiError {
                    retry_after: Some(1),
                    ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                },
                BatchError::Failed(m) => ApiError::internal(format!("inference failed: {m}")),
            })?;
            inference::respond(&plan, &out, &wanted)?
        }
        None => tokio::task::spawn_blocking(move || inference::run(&plan, inputs, &wanted))
            .await
            .map_err(ApiError::internal)??,
    };
    Ok(oip_binary::respond(InferResponse {
        model_name: v.model.clone(),
        model_version: v.version.to_string(),
        id: id.unwrap_or_else(|| format!("{:032x}", rand::random::<u128>())),
        outputs,
    }))
}

pub async fn model_infer(
    State(state): State<AppState>,
    Param(name): Param,
    headers: HeaderMap,
    AuthedBody { bytes: body, .. }: AuthedBody<INVOKER>,
) -> Result<Response, ApiError> {
    let v = state.models.resolve(&name, None)?;
    timed_infer(&state, v, &headers, body).await
}

/// [`infer`], counted in the metrics under the model's name.
async fn timed_infer(
    state: &AppState,
    v: Arc<ModelVersion>,
    headers: &HeaderMap,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    let t0 = std::time::Instant::now();
    let model = v.model.clone();
    let result = infer(state, v, headers, body).await;
    state
        .registry
        .metrics()
        .record_inference(&model, t0.elapsed().as_secs_f64(), result.is_ok());
    result
}

pub async fn version_infer(
    State(state): State<AppState>,
    Params((name, version)): Params<(String, String)>,
    headers: HeaderMap,
    AuthedBody { bytes: body, .. }: AuthedBody<INVOKER>,
) -> Result<Response, ApiError> {
    let v = state.models.resolve(&name, Some(&version))?;
    timed_infer(&state, v, &headers, body).await
}
