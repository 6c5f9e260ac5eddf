//! The HTTP API (axum). Handlers are thin: they authenticate, parse, call a capability, and map
//! errors to `{"error": "..."}` with the right status (see [`error`]).
//!
//! | route | role | what |
//! |---|---|---|
//! | `GET /healthz` | none | liveness |
//! | `GET /v1/info` | reader | host version, engine settings, default limits |
//! | `GET /v1/plugins` | reader | list plugins |
//! | `PUT /v1/plugins/{name}` | admin | upload a component (new version, hot swap) |
//! | `GET /v1/plugins/{name}` | reader | versions, limits, stats |
//! | `DELETE /v1/plugins/{name}` | admin | remove |
//! | `POST /v1/plugins/{name}/invoke` | invoker | run on the body |
//! | `POST/GET /v1/tokens`, `DELETE /v1/tokens/{id}` | admin | manage tokens |

pub mod auth;
pub mod body;
pub mod error;
pub mod invoke;
pub mod path;
pub mod plugins;
pub mod tokens;

use crate::capabilities::registry::Registry;
use crate::capabilities::tokens::Tokens;
use auth::{Authed, READER};
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use std::sync::Arc;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub tokens: Arc<Tokens>,
    pub info: Arc<serde_json::Value>,
    /// Largest request body; larger gets 413.
    pub max_body_bytes: usize,
}

pub fn router(state: AppState) -> Router {
    let max_body_bytes = state.max_body_bytes;
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/v1/info", get(info))
        .route("/v1/plugins", get(plugins::list))
        .route(
            "/v1/plugins/{name}",
            put(plugins::upload)
                .get(plugins::show)
                .delete(plugins::delete),
        )
        .route("/v1/plugins/{name}/invoke", post(invoke::invoke))
        .route("/v1/tokens", post(tokens::create).get(tokens::list))
        .route("/v1/tokens/{id}", axum::routing::delete(tokens::revoke))
        .fallback(|| async { error::ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            error::ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route",
            )
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

async fn info(_: Authed<READER>, State(state): State<AppState>) -> Json<serde_json::Value> {
    Json((*state.info).clone())
}
