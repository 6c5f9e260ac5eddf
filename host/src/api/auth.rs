//! Bearer-token authentication as an axum extractor: a handler asks for `Authed<INVOKER>` and
//! gets 401 without a valid token and 403 with a token of a lesser role.

use super::AppState;
use super::error::ApiError;
use crate::platform::tokens::Role;
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

/// The token of a `Bearer` credential; the scheme is matched in any case (RFC 9110 §11.1).
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Proof that the request carries a token with at least the role `MIN`.
pub struct Authed<const MIN: u8>(pub Role);

impl<const MIN: u8> FromRequestParts<AppState> for Authed<MIN> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        if let Some(ip) = peer
            && let Err(wait) = state.auth_failures.check(ip)
        {
            return Err(ApiError {
                retry_after: Some(wait.as_secs().max(1) as u32),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many failed authentications from this address; retry later",
                )
            });
        }
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
        let token = bearer(header).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Authorization must be `Bearer <token>`",
            )
        })?;
        let Some(role) = state.tokens.role_of(token) else {
            if let Some(ip) = peer {
                state.auth_failures.fail(ip);
            }
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid token"));
        };
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
