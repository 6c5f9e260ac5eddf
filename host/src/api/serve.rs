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
//! The rest is what `axum::serve` did: `TCP_NODELAY` on every connection (a streamed response
//! written in two parts must not wait for the client's delayed ACK), transient accept errors
//! (a connection reset before it was accepted) skipped, others (out of file descriptors) logged
//! and retried after a second, and a graceful shutdown: the listener closes at once and every
//! connection finishes its request in flight, then closes.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::time::Duration;
use tokio::net::TcpListener;

/// Default for `--header-timeout-secs`.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(75);

/// Serves `app` on `listener` until `shutdown` resolves, then waits for the connections to
/// finish their requests in flight (the caller bounds that wait with its grace period).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
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
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY not set on a connection: {e}");
        }
        // The router is shared (an `Arc` clone), never rebuilt per connection.
        let service = TowerToHyperService::new(app.clone());
        let conn = graceful.watch(http.serve_connection(TokioIo::new(tcp), service));
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
