//! `/v1/plugins`: upload (with validation and hot swap), list, show, delete.

use super::AppState;
use super::auth::{ADMIN, Authed, READER};
use super::error::ApiError;
use super::path::Param;
use crate::capabilities::registry::records::valid_name;
use crate::capabilities::registry::{LoadedFrom, PluginEntry, StatsView, VersionRecord};
use crate::runtime::component::World;
use crate::runtime::inference::Grants;
use crate::runtime::limits::{LimitOverrides, Limits};
use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// Per-plugin limit overrides, as query parameters of the upload.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    pub timeout_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    pub output_mb: Option<u64>,
    pub concurrency: Option<u32>,
    /// Models the plugin may call through the `inference` import: `models=a,b` or `models=*`.
    pub models: Option<String>,
}

impl LimitQuery {
    fn grants(&self) -> Result<Grants, ApiError> {
        let models: Vec<String> = self
            .models
            .iter()
            .flat_map(|m| m.split(','))
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect();
        if let Some(bad) = models.iter().find(|m| *m != "*" && !valid_name(m)) {
            return Err(ApiError::bad_request(format!(
                "models: {bad:?} is not a model name"
            )));
        }
        Ok(Grants { models })
    }

    fn overrides(&self) -> Result<LimitOverrides, ApiError> {
        let positive = [
            self.timeout_ms,
            self.memory_mb,
            self.output_mb,
            self.concurrency.map(u64::from),
        ];
        if positive.contains(&Some(0)) {
            return Err(ApiError::bad_request("limits must be positive"));
        }
        let mib = |v: Option<u64>, what: &str| {
            v.map(|m| {
                m.checked_mul(1 << 20)
                    .ok_or_else(|| ApiError::bad_request(format!("{what} is too large")))
            })
            .transpose()
        };
        Ok(LimitOverrides {
            timeout_ms: self.timeout_ms,
            memory_bytes: mib(self.memory_mb, "memory_mb")?,
            max_output_bytes: mib(self.output_mb, "output_mb")?,
            max_concurrency: self.concurrency,
        })
    }
}

pub async fn upload(
    auth: Result<Authed<ADMIN>, ApiError>,
    State(state): State<AppState>,
    Param(name): Param,
    query: Result<Query<LimitQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let body = super::body::read_authorized(auth, &headers, body, state.max_body_bytes).await?;
    let Query(limits) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let overrides = limits.overrides()?;
    let grants = limits.grants()?;
    // Its own task: an upload that reached its commit point finishes even if the client leaves.
    let registry = state.registry.clone();
    let outcome = tokio::spawn(async move {
        registry
            .upload(&name, body.to_vec(), overrides, grants)
            .await
    })
    .await
    .map_err(ApiError::internal)??;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(outcome)).into_response())
}

/// One plugin as the list shows it.
#[derive(Serialize)]
pub struct Summary {
    pub name: String,
    pub world: World,
    pub version: u32,
    pub digest: String,
    pub size: u64,
    pub calls: u64,
}

/// One plugin in detail.
#[derive(Serialize)]
pub struct Detail {
    pub name: String,
    pub world: World,
    pub live_version: u32,
    pub digest: String,
    pub limits: Limits,
    pub loaded_from: LoadedFrom,
    pub load_ms: f64,
    pub versions: Vec<VersionRecord>,
    pub stats: StatsView,
}

fn summary(e: &PluginEntry) -> Summary {
    let live = e.live();
    let rec = e.record();
    let v = rec.versions.iter().find(|v| v.version == live.version);
    Summary {
        name: e.name.to_string(),
        world: live.prepared.world(),
        version: live.version,
        digest: live.digest.clone(),
        size: v.map(|v| v.size).unwrap_or(0),
        calls: e.stats.view().calls,
    }
}

pub async fn list(_: Authed<READER>, State(state): State<AppState>) -> Json<serde_json::Value> {
    let plugins: Vec<Summary> = state.registry.list().iter().map(|e| summary(e)).collect();
    Json(serde_json::json!({ "plugins": plugins }))
}

pub async fn show(
    _: Authed<READER>,
    State(state): State<AppState>,
    Param(name): Param,
) -> Result<Json<Detail>, ApiError> {
    let e = state
        .registry
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("no plugin named {name:?}")))?;
    let live = e.live();
    Ok(Json(Detail {
        name: e.name.to_string(),
        world: live.prepared.world(),
        live_version: live.version,
        digest: live.digest.clone(),
        limits: live.limits,
        loaded_from: live.loaded_from,
        load_ms: live.load_time.as_secs_f64() * 1e3,
        versions: e.record().versions,
        stats: e.stats.view(),
    }))
}

pub async fn delete(
    _: Authed<ADMIN>,
    State(state): State<AppState>,
    Param(name): Param,
) -> Result<StatusCode, ApiError> {
    if state
        .registry
        .delete(&name)
        .await
        .map_err(ApiError::internal)?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no plugin named {name:?}")))
    }
}
