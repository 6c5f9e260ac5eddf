//! Arrow IPC / CSV / NDJSON decoding on the invoke path: the first byte picks the body's media
//! type and the plugin (a cleaner, which the host decodes for, or the CSV collector, which gets
//! the raw bytes); the rest is the body.
#![no_main]

use aimass_fuzz::host;
use http::Method;
use libfuzzer_sys::fuzz_target;

const TYPES: [&str; 4] = [
    "application/vnd.apache.arrow.stream",
    "text/csv",
    "application/x-ndjson",
    "application/octet-stream",
];
const PLUGINS: [&str; 2] = ["dedup", "csv-collector"];

// The host is built before fuzzing starts, outside the per-input timeout.
fuzz_target!(init: { host(); }, |data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let media = TYPES[(pick & 3) as usize];
    let plugin = PLUGINS[((pick >> 2) & 1) as usize];
    host().expect_handled(
        Method::POST,
        &format!("/v1/plugins/{plugin}/invoke"),
        Some(media),
        body.to_vec(),
    );
    // The same bytes as a dataset part go through the same decoders into the warehouse.
    if pick & 8 != 0 {
        host().expect_handled(
            Method::POST,
            "/v1/datasets/fuzzed/parts",
            Some(media),
            body.to_vec(),
        );
    }
});
