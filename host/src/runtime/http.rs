//! One request to an HTTP function: a standard `wasi:http/proxy` component.
//!
//! The per-request path is kept as thin as `wasmtime serve`'s (and shaped like wasmtime's
//! `crates/wasi-http/src/handler.rs`): the component was compiled and its imports resolved once at
//! upload (`ProxyPre`, an `InstancePre`), so a request only builds the store data WASI requires, takes
//! a pooled instance slot, and calls `incoming-handler.handle`.
//!
//! The guest runs in its own task because the response streams: `handle` hands back the response
//! head through `response-outparam.set` and may keep writing the body afterwards. The caller gets
//! the response as soon as the head is set; the task keeps the store (and the caller's admission
//! permits) until the guest returns or its deadline fires. Errors before the head map to statuses
//! (deadline → 504, trap → 500, ...); a trap or deadline after it aborts the body, so the client
//! sees a broken response instead of a truncated one that looks complete.

use super::caps::Capabilities;
use super::invoke::{
    CallStats, InvokeError, classify, measure, new_store, timer_budget, timer_expired,
};
use super::limits::Limits;
use super::state::HostState;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use wasmtime::Engine;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// The function version serving one request.
pub struct HttpTarget {
    pub name: Arc<str>,
    pub version: u32,
    pub pre: ProxyPre<HostState>,
    pub limits: Limits,
    pub caps: Capabilities,
}

/// Called once when the guest's call has ended (after the body, for a streamed response), with
/// its measurements and whether it failed: where the caller releases its admission permits and
/// records statistics.
pub type Finish = Box<dyn FnOnce(CallStats, Result<(), &InvokeError>) + Send>;

/// Serve `req` with the function. Returns when the guest has set the response head (or failed
/// before doing so); the body streams from the guest task afterwards.
pub async fn handle<B>(
    engine: &Engine,
    consume_fuel: bool,
    target: HttpTarget,
    req: hyper::Request<B>,
    finish: Finish,
) -> Result<hyper::Response<HyperOutgoingBody>, InvokeError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let start = Instant::now();
    let limits = target.limits;
    let state = HostState::new(
        target.name,
        target.version,
        &limits,
        start + limits.timeout(),
        target.caps,
    );
    let mut store = new_store(engine, consume_fuel, state);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let resources = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, req)
        .and_then(|req| Ok((req, store.data_mut().http().new_response_outparam(tx)?)));
    let (req, out) = match resources {
        Ok(r) => r,
        Err(e) => {
            // The call ends before it began; `finish` still runs once.
            let e = InvokeError::Host(format!("{e:#}"));
            finish(CallStats::default(), Err(&e));
            return Err(e);
        }
    };
    let pre = target.pre;
    // Whether the call ended well, for the response body (see `GuardedBody`).
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel::<bool>();
    let budget = timer_budget(&limits);

    let task = tokio::spawn(async move {
        let mut stats = CallStats::default();
        let call = async {
            let t0 = Instant::now();
            let proxy = pre.instantiate_async(&mut store).await?;
            stats.instantiate = t0.elapsed();
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
        };
        let result = match tokio::time::timeout(budget, call).await {
            Ok(r) => r,
            Err(_) => Err(timer_expired(&mut store)),
        };
        measure(&store, &mut stats, start, consume_fuel);
        let result = result.map_err(|e| classify(e, store.data(), limits, stats.total));
        // Before the store goes: dropping it ends an unfinished body, and the body must already
        // know then that the end is a failure.
        let _ = ended_tx.send(result.is_ok());
        drop(store);
        finish(stats, result.as_ref().map(|_| ()));
        result
    });

    response(rx.await, ended_rx, task).await
}

/// The response head the function set, its body guarded by how the call ends; or why there is
/// none.
async fn response<E: std::fmt::Debug>(
    set: Result<
        Result<hyper::Response<HyperOutgoingBody>, E>,
        tokio::sync::oneshot::error::RecvError,
    >,
    ended: tokio::sync::oneshot::Receiver<bool>,
    task: tokio::task::JoinHandle<Result<(), InvokeError>>,
) -> Result<hyper::Response<HyperOutgoingBody>, InvokeError> {
    match set {
        Ok(Ok(response)) => Ok(response.map(|inner| GuardedBody { inner, ended }.boxed_unsync())),
        Ok(Err(code)) => Err(InvokeError::Plugin(format!(
            "the function answered with error code {code:?}"
        ))),
        // The outparam was dropped unset: the call is over; its result says why.
        Err(_) => match task.await {
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => Err(InvokeError::Plugin(
                "the function returned without setting a response".into(),
            )),
            Err(e) => Err(InvokeError::Host(format!("function task failed: {e}"))),
        },
    }
}

/// The function's response body, made to fail if the function failed before finishing it.
///
/// wasmtime-wasi-http ends the body cleanly both when the guest calls `outgoing-body.finish` and
/// when the body is dropped unfinished because the guest trapped or ran out of time; a client
/// would take the truncated body for the whole response. The guest task reports how the call
/// ended *before* it drops the store, so when the body ends: no report yet means the store is
/// alive and the guest finished the body; a failed call (or a task that vanished) means it did
/// not, and the body ends with an error, which makes hyper abort the response.
struct GuardedBody {
    inner: HyperOutgoingBody,
    ended: tokio::sync::oneshot::Receiver<bool>,
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                use tokio::sync::oneshot::error::TryRecvError;
                match self.ended.try_recv() {
                    Ok(true) | Err(TryRecvError::Empty) => Poll::Ready(None),
                    Ok(false) | Err(TryRecvError::Closed) => {
                        Poll::Ready(Some(Err(wasmtime_wasi_http::Error::InternalError(Some(
                            "the function failed before finishing the response body".into(),
                        )))))
                    }
                }
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        false
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
