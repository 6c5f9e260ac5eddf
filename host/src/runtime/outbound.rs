//! Outbound HTTP from plugins (`wasi:http/outgoing-handler`): denied unless granted.
//!
//! wasmtime-wasi-http routes every request a guest sends through
//! [`WasiHttpHooks::send_request`]; [`OutboundPolicy`] is the store's hooks object. It checks the
//! request's host and port against the plugin's [`Grants::outbound`] allow-list, counts requests
//! against the per-call cap, and bounds the response body, before handing the request to
//! wasmtime-wasi-http's own client. The guest sees a denied request as the standard
//! `error-code.HTTP-request-denied`, a request past the cap as `connection-limit-reached` and an
//! oversized response as `HTTP-response-body-size`.
//!
//! Raw sockets stay denied: the WASI context grants no socket addresses.

use super::grants::Grants;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Per-call state of the outbound policy.
pub struct OutboundPolicy {
    plugin: Arc<str>,
    grants: Arc<Grants>,
    max_requests: u32,
    sent: u32,
    max_response_bytes: u64,
}

impl OutboundPolicy {
    pub fn new(
        plugin: Arc<str>,
        grants: Arc<Grants>,
        max_requests: u32,
        max_response_bytes: u64,
    ) -> Self {
        OutboundPolicy {
            plugin,
            grants,
            max_requests,
            sent: 0,
            max_response_bytes,
        }
    }

    /// Requests this call has sent so far.
    pub fn sent(&self) -> u32 {
        self.sent
    }

    /// Whether the request may go out: `Err` is what the guest gets instead.
    fn admit(&mut self, uri: &http::Uri) -> Result<(), Error> {
        // The client dials the whole authority: refuse any whose host part is not exactly what
        // is checked below (userinfo, a port that is not a number).
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        if authority.contains('@') || (uri.port().is_some() && uri.port_u16().is_none()) {
            tracing::warn!(plugin = &*self.plugin, authority, "outbound request denied");
            return Err(Error::HttpRequestDenied);
        }
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let host = uri.host().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if !self.grants.allows_host(host, port) {
            tracing::warn!(
                plugin = &*self.plugin,
                host,
                port,
                "outbound request denied"
            );
            return Err(Error::HttpRequestDenied);
        }
        if self.sent >= self.max_requests {
            tracing::warn!(
                plugin = &*self.plugin,
                limit = self.max_requests,
                "outbound request cap reached"
            );
            return Err(Error::ConnectionLimitReached);
        }
        self.sent += 1;
        Ok(())
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        drop(fut);
        if let Err(e) = self.admit(request.uri()) {
            return Box::new(async move { Err(e) });
        }
        let limit = self.max_response_bytes;
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            let declared = response
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if declared.is_some_and(|n| n > limit) {
                return Err(Error::HttpResponseBodySize(declared));
            }
            let response = response.map(|body| {
                CappedBody {
                    inner: body.boxed_unsync(),
                    left: limit,
                    limit,
                }
                .boxed_unsync()
            });
            Ok((
                response,
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

/// A response body that fails once more than `limit` bytes came through.
struct CappedBody {
    inner: WasiBody,
    left: u64,
    limit: u64,
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref() {
            let n = data.len() as u64;
            if n > self.left {
                return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(self.limit)))));
            }
            self.left -= n;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
