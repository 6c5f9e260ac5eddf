//! Pipeline files: TOML (or JSON when the first byte is odd) at `PUT /v1/pipelines/{name}`. A
//! file that applies is deleted again so the next input starts from the same state.
#![no_main]

use aimass_fuzz::host;
use http::Method;
use libfuzzer_sys::fuzz_target;

// The host is built before fuzzing starts, outside the per-input timeout.
fuzz_target!(init: { host(); }, |data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let media = if pick & 1 == 1 {
        "application/json"
    } else {
        "application/toml"
    };
    let (status, _) = host().expect_handled(
        Method::PUT,
        "/v1/pipelines/fuzzed",
        Some(media),
        body.to_vec(),
    );
    if status.is_success() {
        host().expect_handled(Method::DELETE, "/v1/pipelines/fuzzed", None, Vec::new());
    }
});
