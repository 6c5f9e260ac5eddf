//! A JSON scoring endpoint as an HTTP function: `POST {"rows": [[f32, ...], ...]}` runs the model
//! named by the `MODEL` environment variable (set at upload) on the rows through aimass's
//! `inference` import, and answers every model output by name:
//! `{"model": "iris", "outputs": {"label": [0, 2], "probabilities": [[0.9, ...], ...]}}`.
//!
//! The component exports the standard `wasi:http/proxy` world and imports one aimass interface,
//! so it needs a model grant at upload:
//!
//! ```sh
//! aimass plugin push score target/wasm32-wasip2/plugin/score_fn.wasm --env MODEL=iris --model iris
//! curl -H "Authorization: Bearer $TOKEN" -d '{"rows": [[5.1, 3.5, 1.4, 0.2]]}' \
//!      http://127.0.0.1:8080/fn/score/
//! ```
//!
//! The rows go to the model as one FP32 `[rows, features]` input named by `INPUT` (default
//! `features`, the name the bundled trainers give it; skl2onnx models call it `X`). Errors are JSON too: 400
//! for a body that is not `{"rows": [[...]]}` of equal-length rows, 502 when the model call fails
//! (unknown model, not granted, wrong width), 405 for other methods than POST.

use serde::Deserialize;
use std::io::{Read as _, Write as _};
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wit_bindgen::generate!({
    inline: "package aimass:score-fn; world imports { import aimass:plugin/inference@0.1.0; }",
    path: "../../wit",
    world: "aimass:score-fn/imports",
    generate_all,
});

use aimass::plugin::inference::{Tensor, infer};

#[derive(Deserialize)]
struct Request {
    rows: Vec<Vec<f32>>,
}

/// The exported handler (public, so a host build that does not export it still uses it).
pub struct Score;

impl wasip2::exports::http::incoming_handler::Guest for Score {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let (status, body) = match score(request) {
            Ok(v) => (200, v),
            Err((status, message)) => (status, serde_json::json!({ "error": message })),
        };
        respond(out, status, &serde_json::to_vec(&body).expect("JSON"));
    }
}

fn score(request: IncomingRequest) -> Result<serde_json::Value, (u16, String)> {
    if !matches!(request.method(), Method::Post) {
        return Err((405, "POST a JSON body {\"rows\": [[...], ...]}".into()));
    }
    let model = std::env::var("MODEL").map_err(|_| (500, "MODEL is not set".to_string()))?;
    let body = request
        .consume()
        .map_err(|()| (400, "no body".to_string()))?;
    let mut bytes = Vec::new();
    {
        let mut stream = body.stream().map_err(|()| (400, "no body".to_string()))?;
        stream
            .read_to_end(&mut bytes)
            .map_err(|e| (400, format!("reading the body: {e}")))?;
    }
    let req: Request =
        serde_json::from_slice(&bytes).map_err(|e| (400, format!("invalid JSON: {e}")))?;
    let width = req.rows.first().map_or(0, Vec::len);
    if width == 0 || req.rows.iter().any(|r| r.len() != width) {
        return Err((400, "rows must be non-empty and of equal length".into()));
    }
    let data: Vec<u8> = req
        .rows
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let input = Tensor {
        name: std::env::var("INPUT").unwrap_or_else(|_| "features".into()),
        datatype: "FP32".into(),
        shape: vec![req.rows.len() as u64, width as u64],
        data,
    };
    let outputs = infer(&model, &[input]).map_err(|e| (502, e))?;
    let mut map = serde_json::Map::new();
    for t in outputs {
        map.insert(t.name.clone(), to_json(&t));
    }
    Ok(serde_json::json!({ "model": model, "outputs": map }))
}

/// A tensor's values as JSON, nested by its first dimension when it has two.
fn to_json(t: &Tensor) -> serde_json::Value {
    let flat: Vec<serde_json::Value> = match t.datatype.as_str() {
        "FP32" => t
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()).into())
            .collect(),
        "FP64" => t
            .data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()).into())
            .collect(),
        "INT64" => t
            .data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()).into())
            .collect(),
        "INT32" => t
            .data
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()).into())
            .collect(),
        "BOOL" => t.data.iter().map(|b| (*b != 0).into()).collect(),
        other => return serde_json::json!({ "datatype": other, "bytes": t.data.len() }),
    };
    match t.shape.as_slice() {
        [_, cols] if *cols > 0 => flat
            .chunks(*cols as usize)
            .map(|r| serde_json::Value::Array(r.to_vec()))
            .collect(),
        _ => flat.into(),
    }
}

fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::from_list(&[("content-type".to_string(), b"application/json".to_vec())])
        .expect("valid header");
    let resp = OutgoingResponse::new(headers);
    resp.set_status_code(status).expect("valid status");
    let outgoing = resp.body().expect("body taken once");
    ResponseOutparam::set(out, Ok(resp));
    let mut stream = outgoing.write().expect("stream taken once");
    stream.write_all(body).expect("write body");
    std::io::Write::flush(&mut stream).expect("flush body");
    drop(stream);
    OutgoingBody::finish(outgoing, None).expect("finish body");
}

// Only a Wasm build exports the handler: a host build (a default workspace member, built by
// `cargo build` at the root) would hand the linker a symbol name it cannot put in a version script.
#[cfg(target_arch = "wasm32")]
wasip2::http::proxy::export!(Score);
