//! Reading request bodies: after authentication, within the size limit, the deadline and the
//! host's budget of body bytes in memory.
//!
//! - **Authentication first.** Upload and invoke bodies are taken as a raw `Body` so the token is
//!   checked before anything is buffered: an unauthenticated client can make the host read at
//!   most [`DRAIN_ON_REJECT`] bytes, for at most [`DRAIN_TIMEOUT`] (drained so it sees the
//!   401/403 rather than a connection reset), never `max_body_bytes`.
//! - **A deadline.** A body must arrive in full within [`BodyOptions::timeout`] of its request
//!   head, or the request gets 408: a body dripped a byte at a time holds a task and a socket for
//!   that long at most.
//! - **A budget.** Bodies being read and held by their requests share one budget of bytes
//!   ([`BodyOptions::budget_bytes`]), taken as the bytes arrive and given back when the response
//!   is produced. A read that would exceed it waits up to [`BodyOptions::budget_wait`], then gets
//!   503 with `Retry-After`, so a hundred parallel 128 MiB uploads cannot take 13 GB.
//!
//! [`guard`], a middleware on every route, gives each request its deadline and the slot its
//! budget is kept in (a task-local, so handlers need no extra parameter).

use super::error::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::EXPECT;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use bytes::BytesMut;
use http_body::Body as _;
use http_body_util::BodyExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Bytes of a rejected request's body read before answering.
pub const DRAIN_ON_REJECT: usize = 1 << 20;
/// Longest a rejected request's body is drained before the answer goes out anyway.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Host-wide limits of body reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyOptions {
    /// A body must arrive in full within this long of its request head (408 after). Default 30 s.
    pub timeout: Duration,
    /// Bytes of request bodies in memory at once, across all requests. Default 1 GiB.
    pub budget_bytes: usize,
    /// How long a read waits for budget before 503. Default 2 s.
    pub budget_wait: Duration,
}

impl Default for BodyOptions {
    fn default() -> Self {
        BodyOptions {
            timeout: Duration::from_secs(30),
            budget_bytes: 1 << 30,
            budget_wait: Duration::from_secs(2),
        }
    }
}

/// The shared budget of body bytes.
pub struct BodyBudget {
    opts: BodyOptions,
    bytes: Arc<Semaphore>,
}

impl BodyBudget {
    pub fn new(opts: BodyOptions) -> Self {
        let permits = opts.budget_bytes.min(Semaphore::MAX_PERMITS);
        BodyBudget {
            opts,
            bytes: Arc::new(Semaphore::new(permits)),
        }
    }

    /// Bytes of the budget free now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    /// `n` bytes of the budget, waiting up to `budget_wait`.
    async fn take(&self, n: usize) -> Result<OwnedSemaphorePermit, ApiError> {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        let acquire = self.bytes.clone().acquire_many_owned(n);
        match tokio::time::timeout(self.opts.budget_wait, acquire).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "the host holds its limit of {} bytes of request bodies; retry shortly",
                        self.opts.budget_bytes
                    ),
                )
            }),
        }
    }
}

/// What a request's body reads share.
struct InFlight {
    budget: Arc<BodyBudget>,
    deadline: Instant,
    /// The budget its body holds, given back when the request is answered.
    held: Mutex<Vec<OwnedSemaphorePermit>>,
}

tokio::task_local! {
    static IN_FLIGHT: InFlight;
}

/// Middleware: the request's body deadline starts now; the budget its body takes is held until
/// the response is produced.
pub async fn guard(State(budget): State<Arc<BodyBudget>>, req: Request, next: Next) -> Response {
    let in_flight = InFlight {
        deadline: Instant::now() + budget.opts.timeout,
        budget,
        held: Mutex::new(Vec::new()),
    };
    IN_FLIGHT.scope(in_flight, next.run(req)).await
}

/// The whole body: 413 past `limit`, 408 past the request's deadline, 503 when the host's body
/// budget stays full.
pub async fn read(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let Ok((budget, deadline)) = IN_FLIGHT.try_with(|f| (f.budget.clone(), f.deadline)) else {
        // Outside the middleware (the router always has it): size limit only.
        return collect(body, limit, None).await;
    };
    match tokio::time::timeout_at(deadline, collect(body, limit, Some(&budget))).await {
        Ok(read) => read,
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} s",
                budget.opts.timeout.as_secs_f64()
            ),
        )),
    }
}

async fn collect(
    mut body: Body,
    limit: usize,
    budget: Option<&BodyBudget>,
) -> Result<Bytes, ApiError> {
    // A declared length within the limit is taken from the budget at once (and buffered in one
    // allocation); bytes beyond what was taken are taken as they arrive.
    let declared = (body.size_hint().exact())
        .map(|n| n as usize)
        .filter(|&n| n <= limit)
        .unwrap_or(0);
    let mut taken = 0;
    if let Some(budget) = budget
        && declared > 0
    {
        if let Err(e) = hold(budget, declared).await {
            drain_frames(body, DRAIN_ON_REJECT).await;
            return Err(e);
        }
        taken = declared;
    }
    let mut buf = BytesMut::with_capacity(declared);
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let len = buf.len() + data.len();
        if len > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body exceeds the host's body size limit of {limit} bytes"),
            ));
        }
        if let Some(budget) = budget
            && len > taken
        {
            if let Err(e) = hold(budget, len - taken).await {
                // Read on (bounded) so the client sees the 503, not a reset.
                drop((buf, data));
                drain_frames(body, DRAIN_ON_REJECT).await;
                return Err(e);
            }
            taken = len;
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.freeze())
}

/// Takes `n` bytes of the budget for the rest of the request.
async fn hold(budget: &BodyBudget, n: usize) -> Result<(), ApiError> {
    let permit = budget.take(n).await?;
    IN_FLIGHT.with(|f| {
        f.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(permit)
    });
    Ok(())
}

/// Before answering a request with an error without reading its body: read and drop up to
/// `min(limit, DRAIN_ON_REJECT)` bytes of it for at most [`DRAIN_TIMEOUT`], so a client still
/// sending sees the answer rather than a connection reset; nothing when it sent
/// `Expect: 100-continue` (it has not sent the body).
pub async fn drain(headers: &HeaderMap, body: Body, limit: usize) {
    let expects_continue = headers
        .get(EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        return;
    }
    drain_frames(body, limit.min(DRAIN_ON_REJECT)).await;
}

/// Reads and drops up to `max` bytes of `body`, for at most [`DRAIN_TIMEOUT`].
async fn drain_frames(mut body: Body, max: usize) {
    let drain = async {
        let mut drained = 0;
        while drained <= max {
            match body.frame().await {
                Some(Ok(frame)) => drained += frame.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
}

/// An authenticated request body: the caller's token is checked for the role `MIN`, then the
/// body is read up to `LIMIT` bytes (0: the host's `max_body_bytes`). On an auth failure the body
/// is drained before the error is answered (see [`drain`]), so a client still sending reads the
/// answer rather than a reset. Being the body extractor, it goes last among a handler's
/// arguments.
pub struct AuthedBody<const MIN: u8, const LIMIT: usize = 0> {
    pub role: crate::platform::tokens::Role,
    pub bytes: Bytes,
}

impl<const MIN: u8, const LIMIT: usize> axum::extract::FromRequest<super::AppState>
    for AuthedBody<MIN, LIMIT>
{
    type Rejection = ApiError;

    async fn from_request(
        req: axum::extract::Request,
        state: &super::AppState,
    ) -> Result<Self, ApiError> {
        use axum::extract::FromRequestParts;
        let (mut parts, body) = req.into_parts();
        let auth = super::auth::Authed::<MIN>::from_request_parts(&mut parts, state).await;
        let limit = if LIMIT == 0 {
            state.max_body_bytes
        } else {
            LIMIT
        };
        let role = match auth {
            Ok(super::auth::Authed(role)) => role,
            Err(e) => {
                drain(&parts.headers, body, limit).await;
                return Err(e);
            }
        };
        let bytes = read(body, limit).await?;
        Ok(AuthedBody { role, bytes })
    }
}
