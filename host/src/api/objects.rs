//! `/v1/objects/{*key}`: the user's part of the store, read and written through the host.
//!
//! Writes and deletes publish an object event to the hooks watching the key before they answer,
//! so a 201 means the hooks' work is durably queued. Keys under the host's own prefixes (see
//! [`storage::RESERVED_PREFIXES`]) are refused with 403 for every method.

use super::AppState;
use super::auth::{Authed, INVOKER, READER};
use super::body::AuthedBody;
use super::error::ApiError;
use crate::platform::storage::{self, is_reserved};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;

/// The key from the path, checked: 400 if malformed, 403 if it is the host's.
fn checked_key(
    storage: &storage::Storage,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<String, ApiError> {
    let Path(key) =
        path.map_err(|e| ApiError::bad_request(format!("object key: {}", e.body_text())))?;
    use crate::platform::storage::MAX_KEY_BYTES;
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(ApiError::bad_request(format!(
            "object keys are 1 to {MAX_KEY_BYTES} bytes"
        )));
    }
    if key.ends_with('/') {
        return Err(ApiError::bad_request("object keys do not end with '/'"));
    }
    storage
        .key_path(&key)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if is_reserved(&key) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "{key:?} is in the host's own namespace; user objects live outside {:?}",
                storage::RESERVED_PREFIXES
            ),
        ));
    }
    Ok(key)
}

pub async fn put(
    State(state): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    AuthedBody { bytes: body, .. }: AuthedBody<INVOKER>,
) -> Result<Response, ApiError> {
    let key = checked_key(&state.storage, path)?;
    let started = crate::platform::clock::now_us();
    let info = state
        .storage
        .put_info(&key, body)
        .await
        .map_err(ApiError::storage)?;
    let hooks = state
        .hooks
        .object_written(&info, started)
        .await
        .map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "key": info.key, "size": info.size, "etag": info.etag,
            "version": info.version, "hooks": hooks,
        })),
    )
        .into_response())
}

pub async fn get(
    _: Authed<READER>,
    State(state): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let key = checked_key(&state.storage, path)?;
    // Streamed: an object is never whole in memory on its way out.
    let (info, stream) = state
        .storage
        .get_stream(&key)
        .await
        .map_err(ApiError::storage)?
        .ok_or_else(|| ApiError::not_found(format!("no object {key:?}")))?;
    let mut resp = Response::new(Body::from_stream(stream.map_err(|e| {
        tracing::warn!(error = %format!("{e:#}"), "object read failed mid-stream");
        std::io::Error::other("object read failed")
    })));
    if let Ok(len) = HeaderValue::from_str(&info.size.to_string()) {
        resp.headers_mut().insert(header::CONTENT_LENGTH, len);
    }
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(etag) = info
        .etag
        .and_then(|e| HeaderValue::from_str(&format!("\"{}\"", e.trim_matches('"'))).ok())
    {
        resp.headers_mut().insert(header::ETAG, etag);
    }
    Ok(resp)
}

pub async fn delete(
    _: Authed<INVOKER>,
    State(state): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Response, ApiError> {
    let key = checked_key(&state.storage, path)?;
    let Some(last) = state.storage.head(&key).await.map_err(ApiError::internal)? else {
        return Err(ApiError::not_found(format!("no object {key:?}")));
    };
    state
        .storage
        .delete(&key)
        .await
        .map_err(ApiError::internal)?;
    let hooks = state
        .hooks
        .object_deleted(Some(&last), &key)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(serde_json::json!({"deleted": key, "hooks": hooks})).into_response())
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    prefix: String,
    /// Keys after this one (the previous page's `next_start_after`).
    start_after: Option<String>,
    limit: Option<usize>,
}

/// Objects per listing page by default, and at most.
const LIST_LIMIT: usize = 1000;
const MAX_LIST_LIMIT: usize = 10_000;

pub async fn list(
    _: Authed<READER>,
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if !q.prefix.is_empty() && is_reserved(&q.prefix) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{:?} is in the host's own namespace", q.prefix),
        ));
    }
    if !q.prefix.is_empty() {
        state
            .storage
            .key_path(&q.prefix)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    if let Some(after) = &q.start_after {
        state
            .storage
            .key_path(after)
            .map_err(|e| ApiError::bad_request(format!("start_after: {e}")))?;
    }
    let limit = q.limit.unwrap_or(LIST_LIMIT);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit: 1 to {MAX_LIST_LIMIT}"
        )));
    }
    let (objects, next) = page(&state.storage, &q.prefix, q.start_after.as_deref(), limit)
        .await
        .map_err(ApiError::storage)?;
    Ok(Json(
        serde_json::json!({ "objects": objects, "next_start_after": next }),
    ))
}

/// The first `limit` user objects under `prefix` after `after`, in key order, and the key to
/// start the next page after (if there is one). Memory holds one page: a store that lists in
/// key order (S3) is read only that far; the local file store (directory order) is read whole,
/// keeping the smallest keys.
async fn page(
    storage: &storage::Storage,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> anyhow::Result<(Vec<storage::ObjectInfo>, Option<String>)> {
    let mut listing = storage.list_info_stream_after(prefix, after)?;
    let sorted = storage.lists_sorted();
    let mut kept = std::collections::BTreeMap::new();
    while let Some(o) = listing.next().await {
        let o = o?;
        let wanted = !is_reserved(&o.key)
            && o.key.starts_with(prefix)
            && after.is_none_or(|a| o.key.as_str() > a);
        if !wanted {
            continue;
        }
        kept.insert(o.key.clone(), o);
        if kept.len() > limit + 1 {
            kept.pop_last();
        }
        if sorted && kept.len() > limit {
            break;
        }
    }
    let more = kept.len() > limit;
    if more {
        kept.pop_last();
    }
    let next = more.then(|| kept.keys().next_back().cloned()).flatten();
    Ok((kept.into_values().collect(), next))
}
