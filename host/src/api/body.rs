//! Reading request bodies with the size limit, after authentication.
//!
//! Upload and invoke bodies are taken as a raw `Body` so the token is checked before anything is
//! buffered: an unauthenticated client can make the host read at most [`DRAIN_ON_REJECT`] bytes
//! (drained so it sees the 401/403 rather than a connection reset), never `max_body_bytes`.

use super::error::ApiError;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;

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

/// Authenticate, then read the body: on an auth failure drain a little of the body and return
/// the auth error.
pub async fn read_authorized<A>(
    auth: Result<A, ApiError>,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    match auth {
        Ok(_) => read(body, limit).await,
        Err(e) => {
            let _ = axum::body::to_bytes(body, DRAIN_ON_REJECT).await;
            Err(e)
        }
    }
}
