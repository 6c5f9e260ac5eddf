//! The smallest HTTP function: answers every request with `Hello, world!` (or `Hello, $NAME!` when
//! the function was uploaded with `env=NAME=...`).
//!
//! It is a standard `wasi:http/proxy` component with no aimass-specific imports, so the same
//! file runs under `wasmtime serve`; the benchmark in BENCHMARKS.md serves it from both.
//!
//! ```sh
//! cargo build -p hello-fn --target wasm32-wasip2 --profile plugin
//! aimass plugin push hello target/wasm32-wasip2/plugin/hello_fn.wasm
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/fn/hello/
//! ```

use std::io::Write as _;
use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// The exported handler (public, so a host build that does not export it still uses it).
pub struct Hello;

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let name = std::env::var("NAME").unwrap_or_else(|_| "world".to_string());
        let message = format!("Hello, {name}!\n");
        let headers = Fields::from_list(&[(
            "content-type".to_string(),
            b"text/plain; charset=utf-8".to_vec(),
        )])
        .expect("valid header");
        let resp = OutgoingResponse::new(headers);
        let body = resp.body().expect("body taken once");
        ResponseOutparam::set(out, Ok(resp));
        let mut stream = body.write().expect("stream taken once");
        stream
            .write_all(message.as_bytes())
            .and_then(|()| std::io::Write::flush(&mut stream))
            .expect("write body");
        drop(stream);
        OutgoingBody::finish(body, None).expect("finish body");
    }
}

// Only a Wasm build exports the handler: a host build (a default workspace member, built by
// `cargo build` at the root) would hand the linker a symbol name it cannot put in a version script.
#[cfg(target_arch = "wasm32")]
wasip2::http::proxy::export!(Hello);
