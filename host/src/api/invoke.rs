//! `POST /v1/plugins/{name}/invoke`: run a collector, cleaner or transform on the request body.
//!
//! Input format per `Content-Type` (Arrow IPC stream, CSV, NDJSON; a collector takes any bytes and
//! sees the content type itself), output per `Accept` (default: the input's format, Arrow for
//! collectors given something else). Query parameters are the plugin's config, in order.

use super::AppState;
use super::auth::INVOKER;
use super::body::AuthedBody;
use super::error::ApiError;
use super::path::Param;
use crate::platform::formats::{self, Format};
use crate::runtime::Call;
use crate::runtime::Source;
use crate::runtime::World;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

pub async fn invoke(
    State(state): State<AppState>,
    Param(name): Param,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    AuthedBody { bytes: body, .. }: AuthedBody<INVOKER>,
) -> Result<Response, ApiError> {
    let config: Vec<(String, String)> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let entry = state
        .registry
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("no plugin named {name:?}")))?;
    // The version looked at here is the one called, even if a swap lands in between.
    let live = entry.live();
    let world = live.prepared.world();
    let (call, default_out) = plugin_call(world, &name, &headers, body).await?;
    let out_format = formats::negotiate(header_str(&headers, header::ACCEPT), default_out)
        .map_err(|e| ApiError::new(StatusCode::NOT_ACCEPTABLE, e))?;

    let outcome = state
        .registry
        .call_version(&entry, live.clone(), call, config)
        .await?;
    let stats = outcome.stats;
    let state_len = outcome.state.as_ref().map(|s| s.len());
    let output = outcome.output;
    let bytes = tokio::task::spawn_blocking(move || formats::from_ipc(out_format, &output))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(format!("plugin output: {e}")))?;

    let mut resp = Response::new(Body::from(bytes));
    call_headers(
        resp.headers_mut(),
        out_format,
        live.version,
        &stats,
        state_len,
    );
    Ok(resp)
}

/// The call `world` takes for a request body, and the output format when `Accept` names none:
/// collectors get the bytes with their content type, cleaners and transforms a table.
async fn plugin_call(
    world: World,
    name: &str,
    headers: &HeaderMap,
    body: bytes::Bytes,
) -> Result<(Call, Format), ApiError> {
    let content_type = header_str(headers, header::CONTENT_TYPE);
    let input_format = content_type.and_then(Format::from_media_type);
    match world {
        World::Collector => {
            let source = Source {
                content_type: content_type
                    .unwrap_or("application/octet-stream")
                    .to_string(),
                name: header_str(headers, header::HeaderName::from_static("x-aimass-source"))
                    .map(str::to_string),
                data: body.to_vec(),
            };
            Ok((
                Call::Collect(source),
                input_format.unwrap_or(Format::ArrowStream),
            ))
        }
        World::Cleaner | World::Transform => {
            let fmt = input_format.ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!(
                        "Content-Type {:?} is not a table format: send {}, text/csv or application/x-ndjson",
                        content_type.unwrap_or("(none)"),
                        formats::ARROW_STREAM
                    ),
                )
            })?;
            let ipc = tokio::task::spawn_blocking(move || formats::to_ipc(fmt, &body))
                .await
                .map_err(ApiError::internal)?
                .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e))?;
            let call = if world == World::Cleaner {
                Call::Clean(ipc)
            } else {
                Call::FitApply(ipc)
            };
            Ok((call, fmt))
        }
        World::Trainer => Err(ApiError::bad_request(format!(
            "{name} is a trainer: trainers run as training jobs, not through invoke"
        ))),
        World::Http => Err(ApiError::bad_request(format!(
            "{name} is an HTTP function: call it at /fn/{name}/"
        ))),
    }
}

/// What a call cost, for the caller: version, fuel, instantiate and total time, state size.
fn call_headers(
    h: &mut HeaderMap,
    format: Format,
    version: u32,
    stats: &crate::runtime::CallStats,
    state_len: Option<usize>,
) {
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.media_type()),
    );
    h.insert("x-aimass-plugin-version", HeaderValue::from(version));
    h.insert("x-aimass-fuel", HeaderValue::from(stats.fuel));
    h.insert(
        "x-aimass-instantiate-us",
        HeaderValue::from(stats.instantiate.as_micros() as u64),
    );
    h.insert(
        "x-aimass-duration-us",
        HeaderValue::from(stats.total.as_micros() as u64),
    );
    if let Some(n) = state_len {
        h.insert("x-aimass-state-bytes", HeaderValue::from(n as u64));
    }
}
