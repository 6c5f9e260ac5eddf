//! `/v1/plugins`: upload (with validation and hot swap), list, show, delete.
//!
//! Upload settings are query parameters: limits (`timeout_ms`, `memory_mb`, `output_mb`,
//! `concurrency`, `outbound_requests`, `outbound_mb`), governance (`rate` calls/s, `burst`,
//! `quota` calls per `quota_window_s`), the same for anonymous calls of a public HTTP function,
//! counted apart from token holders' (`public_concurrency`, `public_rate`, `public_quota`), grants (`models=a,b`,
//! `outbound=host,host:port,*.domain`, `storage=raw/,lookups/`), environment (`env=KEY=VALUE`, repeatable) and, for HTTP
//! functions, `public=true` (callable without a token).

use super::AppState;
use super::auth::{ADMIN, Authed, READER};
use super::body::AuthedBody;
use super::error::ApiError;
use super::path::Param;
use crate::platform::names::valid_name;
use crate::platform::storage::is_reserved;
use crate::plugins::governor::{GovernanceOverrides, Overrides, PluginLimits};
use crate::plugins::{LoadedFrom, PluginEntry, Settings, StatsView, VersionRecord};
use crate::runtime::LimitOverrides;
use crate::runtime::World;
use crate::runtime::{Grants, valid_host_pattern, valid_storage_prefix};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// Upload settings, as query parameters (all but the repeatable `env`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    pub timeout_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    pub output_mb: Option<u64>,
    pub concurrency: Option<u32>,
    pub outbound_requests: Option<u32>,
    pub outbound_mb: Option<u64>,
    /// Calls per second (token bucket) and its burst.
    pub rate: Option<u32>,
    pub burst: Option<u32>,
    /// Calls per quota window, and the window in seconds (default a day).
    pub quota: Option<u64>,
    pub quota_window_s: Option<u64>,
    /// Public HTTP functions: anonymous calls at once, per second, and per quota window.
    pub public_concurrency: Option<u32>,
    pub public_rate: Option<u32>,
    pub public_quota: Option<u64>,
    /// Models the plugin may call through the `inference` import: `models=a,b` or `models=*`.
    pub models: Option<String>,
    /// Hosts the plugin may reach with outbound HTTP: `outbound=api.example.com,10.0.0.5:8080`.
    pub outbound: Option<String>,
    /// Store prefixes the plugin may read through the `storage` import: `storage=raw/,lookups/`.
    pub storage: Option<String>,
    /// HTTP functions: serve without a token.
    pub public: Option<bool>,
}

/// Most environment variables one plugin may be given, and the longest value.
const MAX_ENV: usize = 64;
const MAX_ENV_VALUE: usize = 4096;

/// Header carrying one environment variable of an upload, `KEY=VALUE` with the value
/// percent-encoded (repeatable): unlike the query string, headers stay out of access logs.
pub const ENV_HEADER: &str = "x-aimass-env";

/// The `x-aimass-env` headers as (`env`, `KEY=VALUE`) pairs, values percent-decoded.
fn env_headers(headers: &HeaderMap) -> Result<Vec<(String, String)>, ApiError> {
    headers
        .get_all(ENV_HEADER)
        .iter()
        .map(|v| {
            let v = v
                .to_str()
                .map_err(|_| ApiError::bad_request(format!("{ENV_HEADER}: not visible ASCII")))?;
            let decoded = percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .map_err(|_| ApiError::bad_request(format!("{ENV_HEADER}: not UTF-8")))?;
            Ok(("env".to_string(), decoded.into_owned()))
        })
        .collect()
}

/// Parse the upload's settings: `x-aimass-env` headers, and the query string's `env=KEY=VALUE`
/// pairs (both repeatable; the query form is kept for older clients) and the rest.
fn parse_settings(raw: Option<&str>, headers: &HeaderMap) -> Result<Settings, ApiError> {
    let mut env = Vec::new();
    let mut rest = Vec::new();
    let query = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()));
    for (k, v) in query.chain(env_headers(headers)?) {
        if k == "env" {
            let (key, value) = v
                .split_once('=')
                .ok_or_else(|| ApiError::bad_request(format!("env: {v:?} is not KEY=VALUE")))?;
            let key_ok = !key.is_empty()
                && key.len() <= 128
                && key.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
                && !key.as_bytes()[0].is_ascii_digit();
            if !key_ok {
                return Err(ApiError::bad_request(format!(
                    "env: {key:?} is not a variable name (letters, digits, '_')"
                )));
            }
            if value.len() > MAX_ENV_VALUE {
                return Err(ApiError::bad_request(format!(
                    "env: the value of {key} is longer than {MAX_ENV_VALUE} bytes"
                )));
            }
            env.retain(|(k, _): &(String, String)| k != key);
            env.push((key.to_string(), value.to_string()));
        } else {
            rest.push((k, v));
        }
    }
    if env.len() > MAX_ENV {
        return Err(ApiError::bad_request(format!(
            "env: at most {MAX_ENV} variables"
        )));
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&rest)
        .finish();
    let q: LimitQuery = serde_urlencoded::from_str(&query)
        .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
    Ok(Settings {
        overrides: q.overrides()?,
        grants: q.grants()?,
        env,
        public: q.public.unwrap_or(false),
    })
}

/// A comma-separated list, trimmed, without empty items.
fn split_list(v: &Option<String>) -> Vec<String> {
    v.iter()
        .flat_map(|m| m.split(','))
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

impl LimitQuery {
    fn grants(&self) -> Result<Grants, ApiError> {
        let models = split_list(&self.models);
        if let Some(bad) = models.iter().find(|m| *m != "*" && !valid_name(m)) {
            return Err(ApiError::bad_request(format!(
                "models: {bad:?} is not a model name"
            )));
        }
        let outbound: Vec<String> = split_list(&self.outbound)
            .into_iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        if let Some(bad) = outbound.iter().find(|h| !valid_host_pattern(h)) {
            return Err(ApiError::bad_request(format!(
                "outbound: {bad:?} is not a host, host:port or *.domain"
            )));
        }
        let storage = split_list(&self.storage);
        if let Some(bad) = storage.iter().find(|p| !valid_storage_prefix(p)) {
            return Err(ApiError::bad_request(format!(
                "storage: {bad:?} is not a key prefix ending with '/' (no '.', '..' or empty \
                 segments, no leading '/')"
            )));
        }
        if let Some(bad) = storage.iter().find(|p| is_reserved(p)) {
            return Err(ApiError::bad_request(format!(
                "storage: {bad:?} is in the host's own namespace"
            )));
        }
        Ok(Grants {
            models,
            outbound,
            storage,
        })
    }

    fn overrides(&self) -> Result<Overrides, ApiError> {
        let positive = [
            self.timeout_ms,
            self.memory_mb,
            self.output_mb,
            self.concurrency.map(u64::from),
            self.outbound_mb,
            self.rate.map(u64::from),
            self.burst.map(u64::from),
            self.quota_window_s,
            self.public_concurrency.map(u64::from),
            self.public_rate.map(u64::from),
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
        let call = LimitOverrides {
            timeout_ms: self.timeout_ms,
            memory_bytes: mib(self.memory_mb, "memory_mb")?,
            max_output_bytes: mib(self.output_mb, "output_mb")?,
            max_concurrency: self.concurrency,
            max_outbound_requests: self.outbound_requests,
            max_outbound_response_bytes: mib(self.outbound_mb, "outbound_mb")?,
        };
        let governance = GovernanceOverrides {
            rate_per_sec: self.rate,
            burst: self.burst,
            quota_calls: self.quota,
            quota_window_s: self.quota_window_s,
            public_concurrency: self.public_concurrency,
            public_rate_per_sec: self.public_rate,
            public_quota_calls: self.public_quota,
        };
        Ok(Overrides { call, governance })
    }
}

pub async fn upload(
    State(state): State<AppState>,
    Param(name): Param,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    AuthedBody { bytes: body, .. }: AuthedBody<ADMIN>,
) -> Result<Response, ApiError> {
    let settings = parse_settings(query.as_deref(), &headers)?;
    // Its own task: an upload that reached its commit point finishes even if the client leaves.
    let registry = state.registry.clone();
    let outcome =
        tokio::spawn(async move { registry.upload(&name, body.to_vec(), settings).await })
            .await
            .map_err(ApiError::internal)??;
    Ok((super::error::created_or_ok(outcome.created), Json(outcome)).into_response())
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
    pub limits: PluginLimits,
    pub loaded_from: LoadedFrom,
    pub load_ms: f64,
    pub versions: Vec<VersionRecord>,
    pub stats: StatsView,
    /// Usage against the rate limit and quota.
    pub governance: crate::plugins::governor::Usage,
    /// Public HTTP functions: anonymous calls' usage against their own rate limit and quota.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_governance: Option<crate::plugins::governor::Usage>,
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

/// Environment values may be secrets: the API shows only their names.
fn redact(mut v: VersionRecord) -> VersionRecord {
    for (_, value) in &mut v.env {
        *value = "<redacted>".into();
    }
    v
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
        versions: e.record().versions.into_iter().map(redact).collect(),
        stats: e.stats.view(),
        governance: e.governor.usage(&live.limits.governance),
        public_governance: live
            .public
            .then(|| e.public_governor.usage(&live.limits.anonymous().governance)),
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
