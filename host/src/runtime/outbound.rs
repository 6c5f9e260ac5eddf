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
//! A granted *name* is not trusted to stay where it points: before a request goes out its host is
//! resolved, and loopback, private, link-local, shared (CGNAT), unspecified and multicast
//! addresses are refused (`destination-IP-prohibited`) unless a grant names that IP literal —
//! so a name whose DNS an attacker controls cannot reach the host's own API or a cloud metadata
//! endpoint. A plain `http` request is then sent to the address that was checked (its `Host`
//! header keeps the name), so no second lookup can slip another address in; an `https` request
//! keeps the name, which TLS verifies against the certificate, so a rebound address can take a
//! TCP connection but never the request.
//!
//! Raw sockets stay denied: the WASI context grants no socket addresses.

use super::grants::Grants;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::net::{IpAddr, SocketAddr};
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
        let (plugin, grants) = (self.plugin.clone(), self.grants.clone());
        Box::new(async move {
            let request = pin_destination(&plugin, &grants, request).await?;
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

/// Resolves the request's host, refuses restricted addresses the grants do not name, and sends
/// a plain `http` request to the checked address (see the module docs).
async fn pin_destination(
    plugin: &str,
    grants: &Grants,
    mut request: http::Request<WasiBody>,
) -> Result<http::Request<WasiBody>, Error> {
    let uri = request.uri().clone();
    let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    let host = uri.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| Error::DnsError {
                rcode: Some(e.to_string()),
                info_code: None,
            })?
            .collect(),
    };
    let Some(first) = addrs.first().copied() else {
        return Err(Error::DestinationNotFound);
    };
    if let Some(bad) = addrs
        .iter()
        .find(|a| restricted(a.ip()) && !grants.names_ip(a.ip()))
    {
        tracing::warn!(plugin, host, address = %bad.ip(), "outbound request to a restricted address denied");
        return Err(Error::DestinationIpProhibited);
    }
    if !https && host.parse::<IpAddr>().is_err() {
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        let mut parts = uri.into_parts();
        parts.authority = Some(
            first
                .to_string()
                .parse()
                .map_err(|_| Error::HttpRequestUriInvalid)?,
        );
        *request.uri_mut() =
            http::Uri::from_parts(parts).map_err(|_| Error::HttpRequestUriInvalid)?;
        let host_header =
            http::HeaderValue::from_str(&authority).map_err(|_| Error::HttpRequestUriInvalid)?;
        request
            .headers_mut()
            .insert(http::header::HOST, host_header);
    }
    Ok(request)
}

/// Addresses a plugin reaches only through a grant naming them: loopback, private (RFC 1918,
/// IPv6 unique local), link-local (cloud metadata lives at 169.254.169.254), shared (RFC 6598),
/// "this network", unspecified, broadcast and multicast; IPv4-mapped IPv6 like its IPv4.
pub fn restricted(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| restricted(IpAddr::V4(v4)))
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restricted_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(restricted(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!restricted(ip.parse().unwrap()), "{ip}");
        }
    }
}
