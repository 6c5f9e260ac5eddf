//! Open Inference Protocol v2 infer requests against a registered ONNX model; the first byte
//! picks the route form (by name, by version number, by alias).
#![no_main]

use aimass_fuzz::{MODEL, host};
use http::Method;
use libfuzzer_sys::fuzz_target;

// The host is built before fuzzing starts, outside the per-input timeout.
fuzz_target!(init: { host(); }, |data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let uri = match pick % 3 {
        0 => format!("/v2/models/{MODEL}/infer"),
        1 => format!("/v2/models/{MODEL}/versions/1/infer"),
        _ => format!("/v2/models/{MODEL}/versions/latest/infer"),
    };
    host().expect_handled(Method::POST, &uri, Some("application/json"), body.to_vec());
});
