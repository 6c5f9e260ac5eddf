//! JSON errors: every failure is `{"error": "..."}` with the status that says whose fault it is.

use crate::plugins::{CallError, UploadError};
use crate::runtime::InvokeError;
use crate::runtime::ValidationError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds, for 503 and 507.
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, what)
    }

    pub fn bad_request(what: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, what)
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }

    /// A failed store operation: 409 for a key the store cannot hold next to another, 507 with
    /// Retry-After when the store is full (nothing was written; retry once space is freed), 500
    /// otherwise.
    pub fn storage(e: anyhow::Error) -> Self {
        use crate::platform::storage::{KeyConflict, StorageFull};
        if let Some(c) = e.downcast_ref::<KeyConflict>() {
            Self::new(StatusCode::CONFLICT, c.to_string())
        } else if let Some(full) = e.downcast_ref::<StorageFull>() {
            ApiError {
                retry_after: Some(30),
                ..Self::new(StatusCode::INSUFFICIENT_STORAGE, full.to_string())
            }
        } else {
            // The chain names host paths: log it, answer with the top context only.
            tracing::warn!(error = %format!("{e:#}"), "store operation failed");
            Self::internal(e)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = axum::Json(serde_json::json!({ "error": self.message }));
        let mut resp = (self.status, body).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        let status = match e {
            UploadError::Storage(e) => return ApiError::storage(e),
            UploadError::BadName(_) => StatusCode::BAD_REQUEST,
            UploadError::Invalid(ValidationError::Empty) => StatusCode::BAD_REQUEST,
            UploadError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        let msg = e.to_string();
        match e {
            CallError::NotFound(_) => ApiError::not_found(msg),
            CallError::Busy(_) | CallError::HostBusy(_) => ApiError {
                retry_after: Some(1),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, msg)
            },
            CallError::Limited(r) => ApiError {
                retry_after: Some(r.retry_after().as_millis().div_ceil(1000).max(1) as u32),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, msg)
            },
            CallError::Invoke(e) => e.into(),
        }
    }
}

impl From<InvokeError> for ApiError {
    fn from(e: InvokeError) -> Self {
        let status = match &e {
            InvokeError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            InvokeError::InvalidInput(_) => StatusCode::UNPROCESSABLE_ENTITY,
            InvokeError::InvalidConfig(_) | InvokeError::WrongWorld(_) => StatusCode::BAD_REQUEST,
            InvokeError::PoolExhausted => StatusCode::SERVICE_UNAVAILABLE,
            InvokeError::MemoryLimit { .. }
            | InvokeError::Trap(_)
            | InvokeError::OutputTooLarge { .. }
            | InvokeError::Plugin(_)
            | InvokeError::Host(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let retry_after = (status == StatusCode::SERVICE_UNAVAILABLE).then_some(1);
        ApiError {
            status,
            message: e.to_string(),
            retry_after,
        }
    }
}

/// The status of a create-or-replace `PUT`: 201 when it created, 200 when it replaced.
pub fn created_or_ok(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::storage::{KeyConflict, StorageFull};

    #[test]
    fn store_write_failures_say_whose_problem_they_are() {
        let full = ApiError::storage(StorageFull("k".into()).into());
        assert_eq!(full.status, StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(full.retry_after, Some(30));
        let resp = full.into_response();
        assert_eq!(resp.headers()[header::RETRY_AFTER], "30");

        let conflict = ApiError::storage(KeyConflict("a/b".into()).into());
        assert_eq!(conflict.status, StatusCode::CONFLICT);

        let io = std::io::Error::other("/srv/aimass/store/x: disk on fire");
        let other = ApiError::storage(anyhow::Error::new(io).context("writing x"));
        assert_eq!(other.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(other.message, "writing x", "host paths stay in the log");
    }
}
