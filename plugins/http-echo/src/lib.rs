//! A `wasi:http/proxy` test function. By path (after the host's `/fn/{name}` prefix):
//!
//! - `/trap`: panics before answering; `/trap-mid-body`: panics after sending part of the body.
//! - `/spin`: loops forever (the deadline must stop it); `/sleep?ms=N`: answers after N ms.
//! - `/alloc?mb=N`: allocates and touches N MiB before answering (memory-limit tests).
//! - `/no-response`: returns without setting a response.
//! - `/env/{NAME}`: the value of environment variable `NAME`, or 404.
//! - `/bytes?n=N`: streams `N` bytes (`0..=255` repeating) in 64 KiB writes.
//! - `/fetch?url=URL`: makes an outbound GET and answers `{status} {body}`, or 502 with the
//!   `error-code` the host returned (e.g. `HttpRequestDenied`). `&times=K` makes K requests.
//! - anything else: echoes. The response body is the request body, streamed back as it arrives;
//!   headers `x-method` and `x-path` carry the method and the path with query, and every request
//!   header comes back prefixed with `echo-`.

use std::io::{Read as _, Write as _};

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

/// The exported handler (public, so a host build that does not export it still uses it).
pub struct Echo;

impl wasip2::exports::http::incoming_handler::Guest for Echo {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let (route, query) = path.split_once('?').unwrap_or((&path, ""));
        match route {
            "/trap" => panic!("echo was asked to trap"),
            "/spin" => spin(),
            "/sleep" => {
                let ms: u64 = param(query, "ms").and_then(|n| n.parse().ok()).unwrap_or(0);
                std::thread::sleep(std::time::Duration::from_millis(ms));
                Sink::reply(out, 200, format!("slept {ms} ms").as_bytes());
            }
            "/no-response" => {}
            "/alloc" => {
                let mb: usize = param(query, "mb").and_then(|n| n.parse().ok()).unwrap_or(0);
                let block = vec![1u8; mb << 20];
                let sum: u64 = block.iter().step_by(4096).map(|&b| u64::from(b)).sum();
                Sink::reply(out, 200, format!("{sum}").as_bytes());
            }
            "/trap-mid-body" => {
                let mut sink = Sink::start(out, 200, &[]);
                sink.write(&[b'x'; 1000]);
                panic!("echo trapped after 1000 bytes of body");
            }
            "/bytes" => {
                let n: usize = param(query, "n").and_then(|n| n.parse().ok()).unwrap_or(0);
                let mut sink = Sink::start(out, 200, &[]);
                let chunk: Vec<u8> = (0..65536).map(|i| i as u8).collect();
                let mut left = n;
                while left > 0 {
                    let k = left.min(chunk.len());
                    sink.write(&chunk[..k]);
                    left -= k;
                }
                sink.finish();
            }
            "/fetch" => fetch(out, query),
            r if r.starts_with("/env/") => match std::env::var(&r[5..]) {
                Ok(v) => Sink::reply(out, 200, v.as_bytes()),
                Err(_) => Sink::reply(out, 404, b"not set"),
            },
            _ => echo(request, out, &path),
        }
    }
}

/// Never returns; the host's deadline has to interrupt it.
fn spin() {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

fn echo(request: IncomingRequest, out: ResponseOutparam, path: &str) {
    let method = match request.method() {
        Method::Get => "GET".to_string(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Patch => "PATCH".into(),
        Method::Options => "OPTIONS".into(),
        Method::Connect => "CONNECT".into(),
        Method::Trace => "TRACE".into(),
        Method::Other(m) => m,
    };
    let mut headers = vec![
        ("x-method".to_string(), method.into_bytes()),
        ("x-path".to_string(), path.as_bytes().to_vec()),
    ];
    for (name, value) in request.headers().entries() {
        headers.push((format!("echo-{name}"), value));
    }
    let body = request.consume().expect("body consumed once");
    let mut input = body.stream().expect("stream taken once");
    let mut sink = Sink::start(out, 200, &headers);
    let mut buf = vec![0u8; 65536];
    loop {
        match std::io::Read::read(&mut input, &mut buf) {
            Ok(0) => break,
            Ok(n) => sink.write(&buf[..n]),
            Err(e) => panic!("reading the request body: {e}"),
        }
    }
    drop(input);
    sink.finish();
}

fn fetch(out: ResponseOutparam, query: &str) {
    let url = param(query, "url").unwrap_or_default();
    let times: u32 = param(query, "times")
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let mut last = String::new();
    for _ in 0..times {
        match get(&url) {
            Ok(r) => last = r,
            Err(e) => return Sink::reply(out, 502, e.as_bytes()),
        }
    }
    Sink::reply(out, 200, last.as_bytes());
}

/// One outbound GET through `wasi:http/outgoing-handler`: `"{status} {body}"` or the error.
fn get(url: &str) -> Result<String, String> {
    let (scheme, rest) = url.split_once("://").ok_or("url needs a scheme")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let req = OutgoingRequest::new(Fields::new());
    req.set_scheme(Some(&if scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    }))
    .map_err(|()| "bad scheme")?;
    req.set_authority(Some(authority))
        .map_err(|()| "bad authority")?;
    req.set_path_with_query(Some(path))
        .map_err(|()| "bad path")?;
    let future = outgoing_handler::handle(req, None).map_err(|e| format!("{e:?}"))?;
    let response = loop {
        match future.get() {
            Some(r) => break r,
            None => future.subscribe().block(),
        }
    };
    let response = response
        .map_err(|()| "response taken twice".to_string())?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let body = response.consume().map_err(|()| "no body")?;
    let mut stream = body.stream().map_err(|()| "no stream")?;
    let mut bytes = Vec::new();
    stream
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading the response: {e}"))?;
    Ok(format!("{status} {}", String::from_utf8_lossy(&bytes)))
}

fn param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A response being written.
struct Sink {
    body: Option<OutgoingBody>,
    stream: Option<wasip2::io::streams::OutputStream>,
}

impl Sink {
    fn start(out: ResponseOutparam, status: u16, headers: &[(String, Vec<u8>)]) -> Sink {
        let fields = Fields::from_list(headers).expect("valid headers");
        let resp = OutgoingResponse::new(fields);
        resp.set_status_code(status).expect("valid status");
        let body = resp.body().expect("body taken once");
        ResponseOutparam::set(out, Ok(resp));
        let stream = body.write().expect("stream taken once");
        Sink {
            body: Some(body),
            stream: Some(stream),
        }
    }

    fn reply(out: ResponseOutparam, status: u16, bytes: &[u8]) {
        let mut sink = Sink::start(out, status, &[]);
        sink.write(bytes);
        sink.finish();
    }

    fn write(&mut self, bytes: &[u8]) {
        let stream = self.stream.as_mut().expect("open");
        stream.write_all(bytes).expect("write body");
    }

    fn finish(mut self) {
        let stream = self.stream.take().expect("open");
        stream.flush().expect("flush body");
        drop(stream);
        OutgoingBody::finish(self.body.take().expect("open"), None).expect("finish body");
    }
}

// Only a Wasm build exports the handler: a host build (a default workspace member, built by
// `cargo build` at the root) would hand the linker a symbol name it cannot put in a version script.
#[cfg(target_arch = "wasm32")]
wasip2::http::proxy::export!(Echo);
