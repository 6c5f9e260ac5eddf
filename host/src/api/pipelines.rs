//! `/v1/pipelines` and `/v1/runs`: apply pipeline files, start, watch and cancel runs (see
//! `pipelines`). Applying is for admins; starting and cancelling runs for
//! invokers, like invoking a plugin; reading for readers.

use super::AppState;
use super::auth::{ADMIN, Authed, INVOKER, READER};
use super::body::AuthedBody;
use super::error::ApiError;
use super::path::Param;
use super::sse::{self, Pick};
use crate::pipelines::PipelineError;
use crate::pipelines::record::Trigger;
use crate::platform::tokens::Role;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde_json::json;
use std::convert::Infallible;

/// Largest pipeline file accepted.
const MAX_SPEC_BYTES: usize = 256 << 10;

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Malformed(m) => ApiError::bad_request(m),
            PipelineError::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            PipelineError::NotFound(m) => ApiError::not_found(m),
            PipelineError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            PipelineError::Busy(m) => ApiError {
                retry_after: Some(1),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, m)
            },
            PipelineError::Storage(e) => ApiError::storage(e),
        }
    }
}

/// A pipeline as `role` may see it: below admin, secret-looking config values are redacted and
/// the file as applied (which holds them verbatim) is left out.
fn view(state: &AppState, name: &str, role: Role) -> Option<serde_json::Value> {
    let p = state.pipelines.get(name)?;
    let runs = state.pipelines.runs_of(name);
    let mut spec = serde_json::to_value(&p.spec).ok()?;
    super::redact::configs_for(role, &mut spec);
    Some(json!({
        "name": p.name,
        "spec": spec,
        "source": (role == Role::Admin).then_some(&p.source),
        "created_ms": p.created_ms,
        "updated_ms": p.updated_ms,
        "next_cron_ms": state.pipelines.next_cron_ms(name),
        "last_run": runs.first(),
        "runs": runs.len() + state.pipelines.stored_only_runs(name),
    }))
}

/// `PUT /v1/pipelines/{name}`: a TOML file (or JSON with `Content-Type: application/json`).
pub async fn put(
    State(state): State<AppState>,
    Param(name): Param,
    headers: HeaderMap,
    AuthedBody { bytes: body, .. }: AuthedBody<ADMIN, MAX_SPEC_BYTES>,
) -> Result<Response, ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("a pipeline file is UTF-8 text"))?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let (_, created) = state.pipelines.apply(&name, text, json).await?;
    Ok((
        super::error::created_or_ok(created),
        Json(view(&state, &name, Role::Admin)),
    )
        .into_response())
}

pub async fn list(
    Authed(role): Authed<READER>,
    State(state): State<AppState>,
) -> Json<serde_json::Value> {
    let pipelines: Vec<_> = state
        .pipelines
        .list()
        .iter()
        .filter_map(|p| view(&state, &p.name, role))
        .collect();
    Json(json!({ "pipelines": pipelines }))
}

pub async fn show(
    Authed(role): Authed<READER>,
    State(state): State<AppState>,
    Param(name): Param,
) -> Result<Json<serde_json::Value>, ApiError> {
    view(&state, &name, role)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no pipeline named `{name}`")))
}

pub async fn delete(
    _: Authed<ADMIN>,
    State(state): State<AppState>,
    Param(name): Param,
) -> Result<StatusCode, ApiError> {
    match state.pipelines.delete(&name).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found(format!("no pipeline named `{name}`"))),
    }
}

/// `POST /v1/pipelines/{name}/runs` → 202 with the run (queued).
pub async fn start(
    _: Authed<INVOKER>,
    State(state): State<AppState>,
    Param(name): Param,
) -> Result<Response, ApiError> {
    let trigger = Trigger {
        kind: "manual".into(),
        detail: None,
        coalesced: 0,
    };
    let run = state.pipelines.submit(&name, trigger).await?;
    let location = format!("/v1/runs/{}", run.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(run.summary()),
    )
        .into_response())
}

#[derive(serde::Deserialize)]
pub struct RunsQuery {
    offset: Option<usize>,
    limit: Option<usize>,
}

/// Runs per page by default, and at most.
const RUNS_LIMIT: usize = 100;
const MAX_RUNS_LIMIT: usize = 1000;

/// `GET /v1/pipelines/{name}/runs?offset=&limit=`: a page of runs, newest first.
pub async fn runs(
    _: Authed<READER>,
    State(state): State<AppState>,
    Param(name): Param,
    query: Result<axum::extract::Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let axum::extract::Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(RUNS_LIMIT);
    if !(1..=MAX_RUNS_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit: 1 to {MAX_RUNS_LIMIT}"
        )));
    }
    if state.pipelines.get(&name).is_none() {
        return Err(ApiError::not_found(format!("no pipeline named `{name}`")));
    }
    let offset = q.offset.unwrap_or(0);
    let (page, total) = state.pipelines.runs_page(&name, offset, limit).await?;
    Ok(Json(
        json!({ "runs": page, "total": total, "offset": offset }),
    ))
}

/// A run as `role` may see it (the spec it ran, with configs redacted below admin).
async fn run_json(state: &AppState, id: &str, role: Role) -> Result<serde_json::Value, ApiError> {
    let (run, progress) = state
        .pipelines
        .run_anywhere(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run `{id}`")))?;
    let mut v = serde_json::to_value(&run).map_err(ApiError::internal)?;
    v["progress"] = json!(progress);
    super::redact::configs_for(role, &mut v);
    Ok(v)
}

pub async fn show_run(
    Authed(role): Authed<READER>,
    State(state): State<AppState>,
    Param(id): Param,
) -> Result<Json<serde_json::Value>, ApiError> {
    run_json(&state, &id, role).await.map(Json)
}

pub async fn cancel(
    Authed(role): Authed<INVOKER>,
    State(state): State<AppState>,
    Param(id): Param,
) -> Result<Response, ApiError> {
    state.pipelines.cancel(&id)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(run_json(&state, &id, role).await?),
    )
        .into_response())
}

/// `GET /v1/runs/{id}/events`: a `snapshot` event with the run as it is, then its `run.*`
/// events as they happen; the stream ends after the run's last event.
pub async fn events(
    auth: sse::StreamAuth<READER>,
    State(state): State<AppState>,
    Param(id): Param,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    // Subscribe before the snapshot, so nothing falls between the two.
    let rx = state.bus.subscribe();
    let snapshot = run_json(&state, &id, auth.role).await?;
    let done = snapshot["state"]
        .as_str()
        .is_some_and(|s| matches!(s, "succeeded" | "failed" | "cancelled"));
    let first = SseEvent::default()
        .event("snapshot")
        .data(snapshot.to_string());
    let (pipelines, run) = (state.pipelines.clone(), id.clone());
    let ended = move || {
        pipelines
            .run(&run)
            .is_none_or(|(r, _)| r.state.is_terminal())
    };
    Ok(sse::stream(
        state.shutdown.clone(),
        auth.guard(),
        rx,
        Some((first, done)),
        move |n| {
            if n.data["run"] != id.as_str() {
                return Pick::Skip;
            }
            match n.kind.as_str() {
                "run.finished" | "run.failed" | "run.cancelled" => Pick::SendAndEnd,
                _ => Pick::Send,
            }
        },
        // Missed events may have included the last one: go on only while the run does.
        move || !ended(),
    ))
}
