//! The single path parameter of a route (`{name}`, `{id}`), with a JSON 400 instead of axum's
//! plain-text rejection when it is not valid UTF-8 after percent-decoding.

use super::error::ApiError;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

pub struct Param(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Param {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| Param(p))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// Several path parameters (`{name}/aliases/{alias}`) as a tuple, with the same JSON 400.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| Params(p))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}
