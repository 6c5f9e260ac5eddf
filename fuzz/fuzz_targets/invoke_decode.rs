//! `invoke_decode`: see [`aimass_fuzz::targets::invoke_decode`].
#![no_main]

use aimass_fuzz::{host, targets};
use libfuzzer_sys::fuzz_target;

// The host is built before fuzzing starts, outside the per-input timeout.
fuzz_target!(init: { host(); }, |data: &[u8]| { targets::invoke_decode(data); });
