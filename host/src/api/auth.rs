//! Bearer-token authentication as an axum extractor: a handler asks for `Authed<INVOKER>` and
//! gets 401 without a valid token and 403 with a token of a lesser role.

use super::AppState;
use super::error::ApiError;
use crate::capabilities::tokens::Role;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;

pub const READER: u8 = 0;
pub const INVOKER: u8 = 1;
pub const ADMIN: u8 = 2;

fn role_for(min: u8) -> Role {
    match min {
        READER => Role::Reader,
        INVOKER => Role::Invoker,
        _ => Role::Admin,
    }
}

/// Proof that the request carries a token with at least the role `MIN`.
pub struct Authed<const MIN: u8>(pub Role);

impl<const MIN: u8> FromRequestParts<AppState> for Authed<MIN> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "missing bearer token: send `Authorization: Bearer <token>`",
                )
            })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "Authorization must be `Bearer <token>`",
                )
            })?;
        let role = state
            .tokens
            .role_of(token)
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "invalid token"))?;
        let needed = role_for(MIN);
        if role < needed {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("this needs the {needed:?} role; the token has {role:?}").to_lowercase(),
            ));
        }
        Ok(Authed(role))
    }
}
