//! S3 event notifications (the JSON AWS, MinIO and Garage-style senders post) at
//! `POST /v1/events/s3`.
#![no_main]

use aimass_fuzz::host;
use http::Method;
use libfuzzer_sys::fuzz_target;

// The host is built before fuzzing starts, outside the per-input timeout.
fuzz_target!(init: { host(); }, |data: &[u8]| {
    host().expect_handled(
        Method::POST,
        "/v1/events/s3",
        Some("application/json"),
        data.to_vec(),
    );
});
