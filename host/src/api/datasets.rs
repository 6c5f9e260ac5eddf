//! `/v1/datasets`: the warehouse's catalog, rows, direct part uploads, deletion.

use super::AppState;
use super::auth::{ADMIN, Authed, INVOKER, READER};
use super::body::AuthedBody;
use super::error::ApiError;
use super::path::Param;
use crate::ingest::events::{Event, EventKind, Lineage};
use crate::platform::formats::{self, Format, RowEncoder};
use crate::platform::names::digest;
use crate::warehouse::{CommitError, PartLineage, RowParts, part_key};
use arrow_array::RecordBatch;
use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1_000_000;

pub async fn list(
    _: Authed<READER>,
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let datasets = state
        .hooks
        .warehouse()
        .list()
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(serde_json::json!({ "datasets": datasets })))
}

/// A name no dataset can have (its store key would be invalid: too long, `..`, control
/// characters) is not found, rather than a store error.
fn storable(storage: &crate::platform::storage::Storage, name: &str) -> Result<(), ApiError> {
    storage
        .key_path(&format!("datasets/{name}/dataset.json"))
        .map(|_| ())
        .map_err(|_| ApiError::not_found(format!("no dataset named {name:?}")))
}

/// Parts listed per `GET /v1/datasets/{name}` unless `parts_limit` says otherwise, and the most
/// it may say: each listed part is a manifest read from the store.
const DEFAULT_PARTS: usize = 1000;
const MAX_PARTS: usize = 10_000;

#[derive(Deserialize)]
pub struct PartsQuery {
    #[serde(default)]
    parts_offset: usize,
    parts_limit: Option<usize>,
}

pub async fn show(
    _: Authed<READER>,
    State(state): State<AppState>,
    Param(name): Param,
    query: Result<Query<PartsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    storable(&state.storage, &name)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.parts_limit.unwrap_or(DEFAULT_PARTS);
    if limit > MAX_PARTS {
        return Err(ApiError::bad_request(format!(
            "parts_limit is at most {MAX_PARTS}"
        )));
    }
    let d = state
        .hooks
        .warehouse()
        .describe(&name, q.parts_offset, limit)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no dataset named {name:?}")))?;
    Ok(Json(d).into_response())
}

#[derive(Deserialize)]
pub struct RowsQuery {
    limit: Option<u64>,
    #[serde(default)]
    offset: u64,
}

/// The response format: `None` for JSON (no `Accept`, `application/json` or `*/*` first),
/// else the first table format listed; 406 if nothing listed is supported.
fn rows_format(accept: Option<&str>) -> Result<Option<Format>, ApiError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(None);
    };
    for media in accept.split(',') {
        let essence = media.split(';').next().unwrap_or("").trim();
        if essence == "application/json" || essence == "*/*" {
            return Ok(None);
        }
        if let Some(f) = Format::from_media_type(essence) {
            return Ok(Some(f));
        }
    }
    Err(ApiError::new(
        StatusCode::NOT_ACCEPTABLE,
        format!(
            "cannot answer with {accept:?}: use application/json, text/csv, \
             application/x-ndjson or {}",
            formats::ARROW_STREAM
        ),
    ))
}

pub async fn rows(
    _: Authed<READER>,
    State(state): State<AppState>,
    Param(name): Param,
    query: Result<Query<RowsQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    storable(&state.storage, &name)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit is at most {MAX_LIMIT}"
        )));
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = rows_format(accept)?;
    let (schema, mut parts) = state
        .hooks
        .warehouse()
        .row_stream(&name, q.offset, limit)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no dataset named {name:?}")))?;
    let encoder = RowEncoder::new(format, &schema).map_err(ApiError::internal)?;
    // The first part before the head, so a dataset that cannot be read at all is still a 500;
    // a failure further on breaks the streamed body.
    let first = parts.recv().await.transpose().map_err(ApiError::internal)?;
    let media = format.map_or("application/json", |f| f.media_type());
    let mut resp = Response::new(Body::from_stream(encoded(first, parts, encoder)));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    Ok(resp)
}

/// The rows of `first` and then of every part from `parts`, encoded on the blocking pool, and
/// the encoder's closing bytes.
fn encoded(
    first: Option<Vec<RecordBatch>>,
    parts: RowParts,
    encoder: RowEncoder,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    let failed = |e: String| {
        tracing::warn!("streaming dataset rows: {e}");
        std::io::Error::other(e)
    };
    futures::stream::unfold(Some((first, parts, encoder)), move |state| async move {
        let (first, mut parts, mut enc) = state?;
        let next = match first {
            Some(batches) => Some(Ok(batches)),
            None => parts.recv().await,
        };
        let batches = match next {
            None => return Some((enc.finish().map(Into::into).map_err(failed), None)),
            Some(Err(e)) => return Some((Err(failed(format!("{e:#}"))), None)),
            Some(Ok(b)) => b,
        };
        let encoded = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for b in &batches {
                out.extend(enc.batch(b)?);
            }
            Ok::<_, String>((out, enc))
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        Some(match encoded {
            Ok((out, enc)) => (Ok(out.into()), Some((None, parts, enc))),
            Err(e) => (Err(failed(e)), None),
        })
    })
}

/// `POST /v1/datasets/{name}/parts`: add a table (Arrow IPC, CSV, NDJSON or Parquet body) as a
/// part, as a collector's output would be; hooks on the dataset fire.
pub async fn add_part(
    State(state): State<AppState>,
    Param(name): Param,
    headers: HeaderMap,
    AuthedBody { bytes: body, .. }: AuthedBody<INVOKER>,
) -> Result<Response, ApiError> {
    if !crate::platform::names::valid_name(&name) {
        return Err(ApiError::bad_request(format!(
            "{name:?} is not a dataset name"
        )));
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let is_parquet = ct.starts_with("application/vnd.apache.parquet");
    let fmt = Format::from_media_type(&ct);
    if fmt.is_none() && !is_parquet {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type {ct:?}: send {}, text/csv, application/x-ndjson or application/vnd.apache.parquet",
                formats::ARROW_STREAM
            ),
        ));
    }
    // Content-addressed: uploading the same table twice is one part.
    let id = digest(&[
        "upload",
        &hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body)),
    ]);
    let ipc = tokio::task::spawn_blocking(move || match fmt {
        Some(f) => formats::to_ipc(f, &body),
        None => crate::warehouse::parquet::decode(body)
            .map_err(|e| format!("{e:#}"))
            .and_then(|(s, b)| formats::encode_ipc(&s, &b)),
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    let manifest = state
        .hooks
        .warehouse()
        .commit(&name, &id, ipc, PartLineage::default())
        .await
        .map_err(|e| match e {
            CommitError::SchemaMismatch { .. } => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            CommitError::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            CommitError::Storage(e) => ApiError::storage(e),
        })?;
    let ev = Event::part(
        state.storage.url(),
        &part_key(&name, &id),
        EventKind::Created,
        Some(manifest.bytes),
        Lineage::default(),
    );
    let hooks = state.hooks.publish(&ev).await.map_err(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "part": manifest, "hooks": hooks })),
    )
        .into_response())
}

pub async fn delete(
    _: Authed<ADMIN>,
    State(state): State<AppState>,
    Param(name): Param,
) -> Result<Response, ApiError> {
    storable(&state.storage, &name)?;
    let warehouse = state.hooks.warehouse();
    let Some(ids) = warehouse
        .part_ids(&name)
        .await
        .map_err(ApiError::internal)?
    else {
        return Err(ApiError::not_found(format!("no dataset named {name:?}")));
    };
    // Hooks on this dataset retract what they derived from its parts: announced first, so a
    // failure part-way leaves the dataset to delete again rather than orphaned derived rows.
    for id in &ids {
        let ev = Event::part(
            state.storage.url(),
            &part_key(&name, id),
            EventKind::Deleted,
            None,
            Lineage::default(),
        );
        state.hooks.publish(&ev).await.map_err(ApiError::internal)?;
    }
    warehouse.delete(&name).await.map_err(ApiError::internal)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
