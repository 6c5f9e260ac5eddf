//! Object keys and dataset names in URLs: traversal (`../`), absolute paths, NUL, very long
//! keys, invalid UTF-8 (percent-encoded, as a client must send it). The first byte picks the
//! method and route; the rest is the key, with `/` and `.` left as they are so traversal
//! reaches the router unencoded.
#![no_main]

use aimass_fuzz::host;
use http::Method;
use libfuzzer_sys::fuzz_target;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};

/// Everything but `/`, `.`, `-` and `_` is encoded.
const KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'.')
    .remove(b'-')
    .remove(b'_');

// The host is built before fuzzing starts, outside the per-input timeout.
fuzz_target!(init: { host(); }, |data: &[u8]| {
    let Some((&pick, key)) = data.split_first() else {
        return;
    };
    let key = percent_encode(key, KEY).to_string();
    let (method, uri, body) = match pick % 6 {
        0 => (
            Method::PUT,
            format!("/v1/objects/{key}"),
            b"a,b\n1,2\n".to_vec(),
        ),
        1 => (Method::GET, format!("/v1/objects/{key}"), Vec::new()),
        2 => (Method::DELETE, format!("/v1/objects/{key}"), Vec::new()),
        3 => (Method::GET, format!("/v1/objects?prefix={key}"), Vec::new()),
        4 => (Method::GET, format!("/v1/datasets/{key}/rows"), Vec::new()),
        _ => (Method::GET, format!("/v1/models/{key}"), Vec::new()),
    };
    if uri.parse::<http::Uri>().is_err() {
        return; // not a request a client could send
    }
    host().expect_handled(method, &uri, Some("text/csv"), body);
});
