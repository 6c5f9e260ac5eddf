//! `POST /v1/events/s3`: the receiver for S3 bucket notifications (AWS `Records[]` JSON as
//! forwarded by SNS/EventBridge webhooks, MinIO's webhook target). Configure the sender with an
//! invoker token as its bearer token (MinIO: `auth_token`).
//!
//! 200 means every event in the body is durably queued for its hooks; the sender may then drop it.
//! On an `s3://` store, records naming another bucket are ignored (counted in the answer).

use super::AppState;
use super::auth::INVOKER;
use super::body::AuthedBody;
use super::error::ApiError;
use crate::ingest::events::s3;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

/// Largest notification body (AWS batches are well under 256 KiB).
const MAX_NOTIFICATION_BYTES: usize = 4 << 20;

pub async fn s3_notification(
    State(state): State<AppState>,
    AuthedBody { bytes: body, .. }: AuthedBody<INVOKER, MAX_NOTIFICATION_BYTES>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let parsed = s3::parse(&body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    let our_bucket = state
        .storage
        .url()
        .strip_prefix("s3://")
        .map(|b| b.trim_end_matches('/'));
    let (mut accepted, mut deliveries, mut ignored) = (0, 0, parsed.ignored);
    for (bucket, ev) in parsed.events {
        if our_bucket.is_some_and(|b| b != bucket) {
            ignored += 1;
            continue;
        }
        if crate::platform::storage::is_reserved(&ev.key) {
            ignored += 1;
            continue;
        }
        deliveries += state.hooks.publish(&ev).await.map_err(ApiError::internal)?;
        accepted += 1;
    }
    Ok(Json(serde_json::json!({
        "accepted": accepted, "deliveries": deliveries, "ignored": ignored
    })))
}
