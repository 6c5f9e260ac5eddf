//! Reading request bodies with the size limit, after authentication.
//!
//! Upload and invoke bodies are taken as a raw `Body` so the token is checked before anything is
//! buffered: an unauthenticated client can make the host read at most [`DRAIN_ON_REJECT`] bytes
//! (drained so it sees the 401/403 rather than a connection reset), never `max_body_bytes`.

use super::error::ApiError;
use axum::body::{Body, Bytes};
use axum::http::header::EXPECT;
use axum::http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;

/// Bytes of a rejected request's body read before answering.
pub const DRAIN_ON_REJECT: usize = 1 << 20;

/// The whole body, or 413 past `limit`.
pub async fn read(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body exceeds the host's body size limit of {limit} bytes"),
            )
        } else {
            ApiError::bad_request(format!("reading the request body: {e}"))
        }
    })
}

/// Authenticate, then read the body. On an auth failure the body is drained (read and thrown
/// away, never buffered) up to `min(limit, DRAIN_ON_REJECT)` bytes, unless the client sent
/// `Expect: 100-continue`: then it has not sent the body yet and gets the error straight away.
pub async fn read_authorized<A>(
    auth: Result<A, ApiError>,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    match auth {
        Ok(_) => read(body, limit).await,
        Err(e) => {
            drain(headers, body, limit).await;
            Err(e)
        }
    }
}

/// Before answering a request with an error without reading its body: read and drop up to
/// `min(limit, DRAIN_ON_REJECT)` bytes of it, so a client still sending sees the answer rather
/// than a connection reset; nothing when it sent `Expect: 100-continue` (it has not sent the body).
pub async fn drain(headers: &HeaderMap, body: Body, limit: usize) {
    let expects_continue = headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        return;
    }
    let budget = limit.min(DRAIN_ON_REJECT);
    let mut drained = 0;
    let mut body = body;
    while drained <= budget {
        match body.frame().await {
            Some(Ok(frame)) => drained += frame.data_ref().map_or(0, |d| d.len()),
            _ => break,
        }
    }
}
