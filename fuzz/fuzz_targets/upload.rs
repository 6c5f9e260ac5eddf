//! `upload`: see [`aimass_fuzz::targets::upload`].
#![no_main]

use aimass_fuzz::{host, targets};
use libfuzzer_sys::fuzz_target;

// The host is built before fuzzing starts, outside the per-input timeout.
fuzz_target!(init: { host(); }, |data: &[u8]| { targets::upload(data); });
