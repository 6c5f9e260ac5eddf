//! Accepting connections: hyper's HTTP/1.1 server under the host's own accept loop.
//!
//! `axum::serve` would do, but exposes none of hyper's knobs, and one matters: a **header-read
//! timeout**. Without it a connection that never completes a request head (slowloris) is held
//! forever, each with its socket and ~27 KiB of heap, and so is a keep-alive connection a client
//! forgot: hyper's timer runs whenever the connection waits for a request head, so the same
//! timeout closes idle keep-alive connections. It never cuts a request in progress: bodies and
//! responses (a long plugin call, an event stream) have their own limits. The default, 75 s, is
//! nginx's `keepalive_timeout` (its `client_header_timeout` is 60 s), longer than hyper's 30 s
//! so that a client pool's idle connections rarely race a close (reqwest's and Go's pools keep
//! idle connections 90 s: now and then one is reused just as the host closes it, which those
//! clients retry when nothing was sent yet).
//!
//! HTTP/1.1 only, as every route and OIP client needs. `axum::serve` also took HTTP/2 with prior
//! knowledge (h2c) when a dependency enabled hyper's HTTP/2; its protocol sniffing has no
//! timeout, which is the hole this module closes.
//!
//! A **connection cap**: past `max_connections` open at once, a new connection is answered 503
//! with `Retry-After` and closed, so sockets and per-connection heap stay bounded.
//!
//! The rest is what `axum::serve` did: `TCP_NODELAY` on every connection (a streamed response
//! written in two parts must not wait for the client's delayed ACK), transient accept errors
//! (a connection reset before it was accepted) skipped, others (out of file descriptors) logged
//! and retried after a second, and a graceful shutdown: the listener closes at once and every
//! connection finishes its request in flight, then closes.
//!
//! A **lingering close**, as nginx's `lingering_close`: when hyper is done with a connection
//! whose client may still be sending (a request answered 401 or 408 before its body arrived),
//! closing the socket with unread bytes would make the kernel send a reset, and a reset makes
//! the client's kernel drop the answer it has not read yet. So the write side is shut first and
//! the socket is read and discarded until the client's FIN, as long as bytes keep coming at
//! least every [`LINGER_TIMEOUT`] and for at most [`LINGER_TIME`] in all (nginx's
//! `lingering_timeout` and `lingering_time`, with its defaults) before it closes; the
//! connection keeps its slot meanwhile. A client that keeps sending after its answer, slowed
//! by a loaded machine, still reads the answer before the socket closes under it.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt as _;

/// Default for `--header-timeout-secs`.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(75);
/// Default for `--max-connections`.
pub const MAX_CONNECTIONS: usize = 4096;
/// Longest a closed connection is read and discarded so its client sees the last answer.
pub const LINGER_TIME: Duration = Duration::from_secs(30);
/// Longest a lingering connection waits for its client's next bytes before it closes.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(5);

/// What a connection past `max_connections` is told before it is closed.
const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 58\r\n\r\n\
{\"error\":\"the host has too many open connections; retry\"}\n";

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// See the module docs.
    pub header_timeout: Duration,
    /// Connections open at once; one more is answered 503 and closed at once.
    pub max_connections: usize,
}

/// Serves `app` on `listener` until `shutdown` resolves, then waits for the connections to
/// finish their requests in flight (the caller bounds that wait with its grace period).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout);
    let slots = Arc::new(Semaphore::new(opts.max_connections));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_transient(&e) => continue,
                Err(e) => {
                    tracing::warn!("accepting a connection failed, retrying in 1 s: {e}");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse(tcp));
            continue;
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY not set on a connection: {e}");
        }
        // The router is shared (an `Arc` clone), never rebuilt per connection. Requests carry
        // their peer address (`ConnectInfo`), which auth failures are counted against.
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                req
            },
        ));
        let io = TokioIo::new(Lingering::new(tcp, slot));
        let conn = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            match conn.await {
                Err(e) if !e.is_timeout() => {
                    tracing::debug!("connection ended with an error: {e}");
                }
                _ => {}
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Accept errors about one connection that went away before it was accepted.
fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// Tells a connection past the cap why it is closed (best effort, bounded by a second).
async fn refuse(mut tcp: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), tcp.write_all(TOO_MANY)).await;
    let _ = tcp.shutdown().await;
}

/// A connection that lingers when dropped (see the module docs), then gives back its slot.
struct Lingering {
    tcp: Option<TcpStream>,
    slot: Option<OwnedSemaphorePermit>,
}

impl Lingering {
    fn new(tcp: TcpStream, slot: OwnedSemaphorePermit) -> Self {
        Self {
            tcp: Some(tcp),
            slot: Some(slot),
        }
    }

    fn tcp(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(self.tcp.as_mut().expect("the stream is taken only on drop"))
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let (Some(tcp), slot) = (self.tcp.take(), self.slot.take()) else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                linger(tcp).await;
                drop(slot);
            });
        }
    }
}

/// Shuts the write side, then reads and discards until the client's FIN, a silence of
/// [`LINGER_TIMEOUT`] or [`LINGER_TIME`] in all.
async fn linger(mut tcp: TcpStream) {
    if tcp.shutdown().await.is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while let Ok(Ok(n)) = tokio::time::timeout(LINGER_TIMEOUT, tcp.read(&mut sink)).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

impl AsyncRead for Lingering {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.tcp().poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.tcp().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.tcp().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.as_ref().is_some_and(|t| t.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_shutdown(cx)
    }
}
