//! The native peer of the HTTP-function benchmark: an axum handler returning the same bytes as
//! `examples/hello-fn` (`Hello, world!\n`, text/plain), on the same tokio runtime settings as the
//! host. `scripts/bench-functions.sh` runs it next to aimass and `wasmtime serve`.
//!
//! ```sh
//! cargo run --release -p aimass --example native-hello -- 127.0.0.1:18082
//! ```

use axum::Router;
use axum::http::header;
use axum::routing::any;
use axum::serve::ListenerExt;

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18082".into());
    let rt = aimass::server::runtime_builder().build().unwrap();
    rt.block_on(async move {
        let app = Router::new().fallback(any(|| async {
            (
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "Hello, world!\n",
            )
        }));
        // TCP_NODELAY as the host sets it.
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .unwrap()
            .tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
        eprintln!("native-hello listening on {addr}");
        axum::serve(listener, app).await.unwrap();
    });
}
