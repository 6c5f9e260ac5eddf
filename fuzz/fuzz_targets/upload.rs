//! Plugin upload validation: arbitrary bytes (and, from the seed corpus, mutated real
//! components) as the body of `PUT /v1/plugins/{name}`.
#![no_main]

use aimass_fuzz::host;
use http::Method;
use libfuzzer_sys::fuzz_target;

// The host is built before fuzzing starts, outside the per-input timeout.
fuzz_target!(init: { host(); }, |data: &[u8]| {
    host().expect_handled(Method::PUT, "/v1/plugins/fuzzed", None, data.to_vec());
});
