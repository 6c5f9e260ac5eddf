//! `/fn/{name}/{*rest}`: HTTP functions (standard `wasi:http/proxy` components) at their routes.
//!
//! Any method. The function sees the request as if it were served at `/`: the path after the
//! prefix, the query, the headers and a streaming body; its response streams back. Invoking needs
//! the `invoker` role unless the live version was uploaded with `public=true`; a bearer token of
//! the host is removed before the request reaches any function. Calls to a public function
//! without an invoker token are admitted through its anonymous slots, rate and quota. Every request is logged on the
//! `aimass::access` target and counted in the function's statistics.

use super::AppState;
use super::auth::{Authed, INVOKER};
use super::error::ApiError;
use crate::platform::tokens::Role;
use crate::plugins::{Caller, PluginEntry};
use crate::runtime::World;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::sync::Arc;
use std::time::Instant;
use wasmtime_wasi_http::Error as HttpError;

pub async fn call(State(state): State<AppState>, req: Request) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (name, _) = split(&path);
    let name = name.to_string();
    let entry = state.registry.get(&name);
    let response = match serve(&state, entry.as_ref(), req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    let status = response.status();
    let elapsed = start.elapsed();
    // Only HTTP functions get HTTP statistics (a probe of `/fn/<cleaner>` is not one).
    if let Some(entry) = entry
        .as_ref()
        .filter(|e| e.live().prepared.world() == World::Http)
    {
        entry.stats.record_response(status.as_u16(), elapsed);
        state
            .registry
            .metrics()
            .record_http(&entry.name, status.as_u16());
    }
    tracing::info!(
        target: "aimass::access",
        function = name,
        %method,
        path,
        status = status.as_u16(),
        ms = elapsed.as_secs_f64() * 1e3,
    );
    response
}

/// Removes every `Authorization` value that holds a token of this host, whatever the scheme's
/// letter case or the value's position among several; other credentials are the function's own.
fn strip_host_tokens(headers: &mut axum::http::HeaderMap, state: &AppState) {
    let is_host_token = |v: &HeaderValue| {
        v.to_str()
            .ok()
            .and_then(super::auth::bearer)
            .is_some_and(|t| state.tokens.role_of(t).is_some())
    };
    if !headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .any(is_host_token)
    {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter(|v| !is_host_token(v))
        .cloned()
        .collect();
    headers.remove(header::AUTHORIZATION);
    for v in kept {
        headers.append(header::AUTHORIZATION, v);
    }
}

/// Whether the request carries a host token that may invoke (a public function's caller with
/// one is served as a token holder, not as an anonymous caller).
fn invoker_token(headers: &axum::http::HeaderMap, state: &AppState) -> bool {
    headers.get_all(header::AUTHORIZATION).iter().any(|v| {
        v.to_str()
            .ok()
            .and_then(super::auth::bearer)
            .and_then(|t| state.tokens.role_of(t))
            .is_some_and(|r| r >= Role::Invoker)
    })
}

/// `/fn/{name}/{rest}` → (`name`, `/rest`).
fn split(path: &str) -> (&str, &str) {
    let after = path.strip_prefix("/fn/").unwrap_or_default();
    match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, "/"),
    }
}

async fn serve(
    state: &AppState,
    entry: Option<&Arc<PluginEntry>>,
    req: Request,
) -> Result<Response, ApiError> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let (name, rest) = split(&path);
    let max = state.max_body_bytes;
    let live = entry.map(|e| e.live());
    // Only a public HTTP function answers without a token; anything else authenticates first,
    // so an anonymous caller learns nothing about which plugins exist.
    let public = live
        .as_ref()
        .is_some_and(|l| l.public && l.prepared.world() == World::Http);
    if !public && let Err(e) = Authed::<INVOKER>::from_request_parts(&mut parts, state).await {
        super::body::drain(&parts.headers, body, max).await;
        return Err(e);
    }
    // Anonymous calls of a public function get slots, a rate and a quota of their own.
    let caller = if !public || invoker_token(&parts.headers, state) {
        Caller::Token
    } else {
        Caller::Anonymous
    };
    // A host token never reaches a function, public or not; other credentials are its own.
    strip_host_tokens(&mut parts.headers, state);
    let (Some(entry), Some(live)) = (entry, live) else {
        return Err(ApiError::not_found(format!("no function named {name:?}")));
    };
    if live.prepared.world() != World::Http {
        return Err(ApiError::not_found(format!(
            "no function named {name:?} ({name} is a {}, not an HTTP function)",
            live.prepared.world()
        )));
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        super::body::drain(&parts.headers, body, max).await;
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {max} bytes"),
        ));
    }

    // The function sees `/rest?query`, and an authority from `Host` (HTTP/1.0 may lack one).
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    parts.uri = Uri::builder()
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| ApiError::bad_request(format!("invalid request target: {e}")))?;
    if !parts.headers.contains_key(header::HOST) {
        parts
            .headers
            .insert(header::HOST, HeaderValue::from_static("localhost"));
    }
    let body = Limited::new(body, max).map_err(move |e| {
        if e.is::<LengthLimitError>() {
            HttpError::HttpRequestBodySize(Some(max as u64))
        } else {
            HttpError::InternalError(Some(e.to_string()))
        }
    });
    let req = hyper::Request::from_parts(parts, body);
    let response = state.registry.call_http(entry, live, req, caller).await?;
    Ok(response.map(Body::new))
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn paths() {
        assert_eq!(split("/fn/hello"), ("hello", "/"));
        assert_eq!(split("/fn/hello/"), ("hello", "/"));
        assert_eq!(split("/fn/hello/a/b"), ("hello", "/a/b"));
    }
}
