//! The Open Inference Protocol's binary tensor data extension (Triton's, used by default by
//! `tritonclient`): a request or response body is a JSON header of
//! `Inference-Header-Content-Length` bytes followed by raw tensor bytes. A binary input carries
//! `parameters.binary_data_size` instead of `data`; its bytes follow the header in input order.
//! Outputs come back binary when asked (`outputs[i].parameters.binary_data`, or the request's
//! `parameters.binary_data_output`), with their sizes in `parameters.binary_data_size`.
//! Without the header, bodies are plain JSON.

use super::error::ApiError;
use crate::models::inference::{InferRequest, InferResponse};
use axum::Json;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// Header naming the length of the JSON part of a body.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// Parse a request body, attaching each binary input's bytes to it.
pub fn parse(headers: &HeaderMap, body: Bytes) -> Result<InferRequest, ApiError> {
    let bad = ApiError::bad_request;
    let json_len = match headers.get(HEADER_LENGTH) {
        None => body.len(),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n <= body.len())
            .ok_or_else(|| {
                bad(format!(
                    "{HEADER_LENGTH} must be a byte count within the body"
                ))
            })?,
    };
    let mut req: InferRequest = serde_json::from_slice(&body[..json_len])
        .map_err(|e| bad(format!("invalid inference request: {e}")))?;
    let mut offset = json_len;
    for t in &mut req.inputs {
        let size = t
            .parameters
            .as_ref()
            .and_then(|p| p.get("binary_data_size"));
        match size {
            Some(size) => {
                let end = size
                    .as_u64()
                    .and_then(|s| offset.checked_add(s as usize))
                    .filter(|end| *end <= body.len())
                    .ok_or_else(|| {
                        bad(format!(
                            "input `{}`: binary_data_size {size} runs past the end of the body",
                            t.name
                        ))
                    })?;
                t.raw = Some(body.slice(offset..end));
                offset = end;
            }
            None if t.json.is_none() && t.data.is_none() => {
                return Err(bad(format!(
                    "input `{}` has neither `data` nor parameters.binary_data_size",
                    t.name
                )));
            }
            None => {}
        }
    }
    if offset != body.len() {
        return Err(bad(format!(
            "{} bytes after the JSON header belong to no input",
            body.len() - offset
        )));
    }
    Ok(req)
}

/// The response: plain JSON, or the JSON header followed by the binary outputs' bytes.
pub fn respond(mut resp: InferResponse) -> Response {
    let blobs: Vec<Bytes> = resp
        .outputs
        .iter_mut()
        .filter_map(|o| o.raw.take())
        .collect();
    if blobs.is_empty() {
        return Json(resp).into_response();
    }
    let json = match serde_json::to_vec(&resp) {
        Ok(j) => j,
        Err(e) => return ApiError::internal(e).into_response(),
    };
    let mut body = Vec::with_capacity(json.len() + blobs.iter().map(Bytes::len).sum::<usize>());
    body.extend_from_slice(&json);
    blobs.iter().for_each(|b| body.extend_from_slice(b));
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(HEADER_LENGTH, HeaderValue::from(json.len()));
    r
}
