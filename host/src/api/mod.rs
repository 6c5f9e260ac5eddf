//! The HTTP API (axum). Handlers are thin: they authenticate, parse, call a capability, and map
//! errors to `{"error": "..."}` with the right status (see [`error`]).
//!
//! | route | role | what |
//! |---|---|---|
//! | `GET /` | none | landing page: name, version, links, how to get a token (HTML, or JSON by `Accept`) |
//! | `GET /docs` | none | the README the binary was built with (Markdown) |
//! | `GET /healthz` | none | liveness |
//! | `GET /v1/info` | reader | host version, engine settings, default limits |
//! | `GET /metrics` | reader | Prometheus text exposition |
//! | `GET /v1/plugins` | reader | list plugins |
//! | `PUT /v1/plugins/{name}` | admin | upload a component (new version, hot swap) |
//! | `GET /v1/plugins/{name}` | reader | versions, limits, stats |
//! | `DELETE /v1/plugins/{name}` | admin | remove |
//! | `POST /v1/plugins/{name}/invoke` | invoker | run on the body |
//! | `ANY /fn/{name}[/{*rest}]` | invoker, or none if public | call an HTTP function |
//! | `POST/GET /v1/tokens`, `DELETE /v1/tokens/{id}` | admin | manage tokens |
//! | `PUT/DELETE /v1/objects/{*key}` | invoker | write/delete a user object (fires hooks) |
//! | `GET /v1/objects/{*key}`, `GET /v1/objects?prefix=` | reader | read, list |
//! | `POST /v1/events/s3` | invoker | S3/MinIO bucket notifications |
//! | `PUT/DELETE /v1/hooks/{name}` | admin | bind a plugin to a prefix / unbind |
//! | `GET /v1/hooks[/{name}]` | reader | hooks with status; `.../dead-letters` |
//! | `POST /v1/hooks/{name}/{pause,resume,redrive}` | admin | control a hook |
//! | `GET /v1/datasets[/{name}]`, `GET /v1/datasets/{name}/rows` | reader | warehouse catalog, rows |
//! | `POST /v1/datasets/{name}/parts` | invoker | add a table as a part |
//! | `DELETE /v1/datasets/{name}` | admin | delete a dataset |
//! | `POST /v1/train` | admin | start a training job → id |
//! | `GET /v1/train[/{id}]` | reader | jobs: state, progress, candidates, result |
//! | `PUT /v1/models/{name}` | admin | upload an ONNX model as a new version (`?alias=`) |
//! | `GET /v1/models[/{name}]`, `GET /v1/models/{name}/versions/{v}` | reader | registry |
//! | `PUT/DELETE /v1/models/{name}/aliases/{alias}` | admin | move / remove an alias |
//! | `PUT /v1/models/{name}/{gate,batching}` | admin | publish gate, dynamic batching |
//! | `DELETE /v1/models/{name}/versions/{v}` | admin | delete a version (not while aliased) |
//! | `PUT /v1/pipelines/{name}` | admin | apply a pipeline file (TOML, or JSON) |
//! | `GET /v1/pipelines[/{name}]`, `.../{name}/runs` | reader | pipelines, their runs |
//! | `DELETE /v1/pipelines/{name}` | admin | remove (not while a run is active) |
//! | `POST /v1/pipelines/{name}/runs` | invoker | start a run → 202 + id |
//! | `GET /v1/runs/{id}`, `GET /v1/runs/{id}/events` (SSE) | reader | a run, live progress |
//! | `POST /v1/runs/{id}/cancel` | invoker | cancel a run |
//! | `PUT/DELETE /v1/notifications/webhooks/{name}` | admin | signed webhook subscriptions |
//! | `GET /v1/notifications/webhooks[/{name}]` | admin | subscriptions, delivery stats (URLs can be credentials) |
//! | `GET /v1/events/stream` (SSE) | reader | every event, `?types=` filters |
//! | `GET /v1/alerts` | reader | alert rules and whether they are firing |
//! | `GET /v2`, `/v2/health/{live,ready}` | none | Open Inference Protocol server routes |
//! | `GET /v2/models/{name}[/versions/{v}][/ready]` | reader | OIP model metadata, readiness |
//! | `POST /v2/models/{name}[/versions/{v}]/infer` | invoker | OIP inference |

pub mod auth;
pub mod auth_limit;
pub mod body;
pub mod datasets;
pub mod error;
pub mod events;
pub mod functions;
pub mod home;
pub mod hooks;
pub mod inference;
pub mod invoke;
pub mod metrics;
pub mod models;
pub mod notifications;
pub mod objects;
pub mod oip_binary;
pub mod path;
pub mod pipelines;
pub mod plugins;
pub mod redact;
pub mod serve;
pub mod sse;
pub mod tokens;
pub mod train;

use crate::ingest::hooks::Hooks;
use crate::models::train::Jobs;
use crate::models::versions::ModelRegistry;
use crate::ops::notify::Notifier;
use crate::ops::notify::webhooks::Webhooks;
use crate::pipelines::Pipelines;
use crate::platform::storage::Storage;
use crate::platform::tokens::Tokens;
use crate::plugins::Registry;
use auth::{Authed, READER};
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{any, get, post, put};
use axum::{Json, Router};
use std::sync::Arc;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub tokens: Arc<Tokens>,
    /// Event streams open, per token and in all.
    pub streams: Arc<sse::StreamSlots>,
    /// Request bodies in memory, across requests (503 past it).
    pub body_budget: Arc<body::BodyBudget>,
    /// Failed authentications per peer address (429 past the limit).
    pub auth_failures: Arc<auth_limit::AuthFailures>,
    pub hooks: Arc<Hooks>,
    pub models: Arc<ModelRegistry>,
    pub jobs: Arc<Jobs>,
    pub pipelines: Arc<Pipelines>,
    pub webhooks: Arc<Webhooks>,
    pub alerts: Arc<crate::ops::notify::alerts::Alerts>,
    pub bus: Arc<Notifier>,
    /// Cancelled when the host begins to shut down (ends SSE streams).
    pub shutdown: tokio_util::sync::CancellationToken,
    pub storage: Storage,
    pub info: Arc<serde_json::Value>,
    /// `GET /healthz` body: liveness only (anyone may ask).
    pub health: Arc<serde_json::Value>,
    /// Largest request body; larger gets 413.
    pub max_body_bytes: usize,
}

/// Every route of the API, grouped by the centre it serves, with the fallbacks and the body
/// limits every route shares.
pub fn router(state: AppState) -> Router {
    let max_body_bytes = state.max_body_bytes;
    Router::new()
        .merge(host_routes())
        .merge(plugin_routes())
        .merge(ingest_routes())
        .merge(model_routes())
        .merge(pipeline_routes())
        .merge(ops_routes())
        .fallback(|| async { error::ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            error::ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route",
            )
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.body_budget.clone(),
            body::guard,
        ))
        .with_state(state)
}

/// The host itself: landing page, docs, health, info, metrics and tokens.
fn host_routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home::home))
        .route("/docs", get(home::docs))
        .route(
            "/healthz",
            get(|State(s): State<AppState>| async move { Json((*s.health).clone()) }),
        )
        .route("/v1/info", get(info))
        .route("/metrics", get(metrics::scrape))
        .route("/v1/tokens", post(tokens::create).get(tokens::list))
        .route("/v1/tokens/{id}", axum::routing::delete(tokens::revoke))
}

/// Plugins: upload, versions, invoke, and HTTP functions at `/fn`.
fn plugin_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/plugins", get(plugins::list))
        .route(
            "/v1/plugins/{name}",
            put(plugins::upload)
                .get(plugins::show)
                .delete(plugins::delete),
        )
        .route("/v1/plugins/{name}/invoke", post(invoke::invoke))
        .route("/fn/{name}", any(functions::call))
        .route("/fn/{name}/", any(functions::call))
        .route("/fn/{name}/{*rest}", any(functions::call))
}

/// Data collection and the warehouse: objects, S3 notifications, hooks, datasets.
fn ingest_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/objects", get(objects::list))
        .route(
            "/v1/objects/{*key}",
            put(objects::put).get(objects::get).delete(objects::delete),
        )
        .route("/v1/events/s3", post(events::s3_notification))
        .route("/v1/hooks", get(hooks::list))
        .route(
            "/v1/hooks/{name}",
            put(hooks::put).get(hooks::show).delete(hooks::delete),
        )
        .route("/v1/hooks/{name}/pause", post(hooks::pause))
        .route("/v1/hooks/{name}/resume", post(hooks::resume))
        .route("/v1/hooks/{name}/redrive", post(hooks::redrive))
        .route("/v1/hooks/{name}/dead-letters", get(hooks::dead_letters))
        .route("/v1/datasets", get(datasets::list))
        .route(
            "/v1/datasets/{name}",
            get(datasets::show).delete(datasets::delete),
        )
        .route("/v1/datasets/{name}/rows", get(datasets::rows))
        .route("/v1/datasets/{name}/parts", post(datasets::add_part))
}

/// Models: training jobs, the model registry and Open Inference Protocol v2 serving.
fn model_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/train", post(train::submit).get(train::list))
        .route("/v1/train/{id}", get(train::show))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{name}", put(models::upload).get(models::show))
        .route(
            "/v1/models/{name}/versions/{version}",
            get(models::show_version).delete(models::delete_version),
        )
        .route(
            "/v1/models/{name}/aliases/{alias}",
            put(models::put_alias).delete(models::delete_alias),
        )
        .route("/v1/models/{name}/gate", put(models::put_gate))
        .route("/v1/models/{name}/batching", put(models::put_batching))
        .route("/v2", get(inference::server_metadata))
        .route("/v2/health/live", get(inference::live))
        .route("/v2/health/ready", get(inference::ready))
        .route("/v2/models/{name}", get(inference::model_metadata))
        .route("/v2/models/{name}/ready", get(inference::model_ready))
        .route("/v2/models/{name}/infer", post(inference::model_infer))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(inference::version_metadata),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(inference::version_ready),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(inference::version_infer),
        )
}

/// Pipelines and their runs.
fn pipeline_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/pipelines", get(pipelines::list))
        .route(
            "/v1/pipelines/{name}",
            put(pipelines::put)
                .get(pipelines::show)
                .delete(pipelines::delete),
        )
        .route(
            "/v1/pipelines/{name}/runs",
            post(pipelines::start).get(pipelines::runs),
        )
        .route("/v1/runs/{id}", get(pipelines::show_run))
        .route("/v1/runs/{id}/events", get(pipelines::events))
        .route("/v1/runs/{id}/cancel", post(pipelines::cancel))
}

/// Notifications: webhooks, the event stream and alerts.
fn ops_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/notifications/webhooks",
            get(notifications::list_webhooks),
        )
        .route(
            "/v1/notifications/webhooks/{name}",
            put(notifications::put_webhook)
                .get(notifications::show_webhook)
                .delete(notifications::delete_webhook),
        )
        .route("/v1/events/stream", get(notifications::stream))
        .route("/v1/alerts", get(notifications::alerts))
}

async fn info(_: Authed<READER>, State(state): State<AppState>) -> Json<serde_json::Value> {
    Json((*state.info).clone())
}
