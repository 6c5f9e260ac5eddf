//! The soak in short, in the test command: `host/examples/soak.rs` (what `scripts/soak.sh` runs
//! for 10 minutes; RELIABILITY.md, Load and soak) against the real binary for a 5 s probe and
//! three 5 s windows at 80% of the probed rate of invoke, `/fn`, infer and hook traffic at once,
//! once with a new object per hook put and once with keys in rotation. No request may fail, the
//! instance pool must drain to 0, and the hook must have processed every object it was given.
//! It runs alone in the test process (`common::serial::alone`), so no other test competes with it
//! for the machine.

use crate::common;

use common::binary::{admin_token, up};
use std::process::Command;

/// The soak's `summary-json:` line.
fn summary(out: &str) -> serde_json::Value {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("summary-json: "))
        .unwrap_or_else(|| panic!("no summary-json line in:\n{out}"));
    serde_json::from_str(line).unwrap()
}

/// A summary field that must be a number.
fn number(s: &serde_json::Value, field: &str) -> f64 {
    s[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is not a number in {s}"))
}

#[cfg(target_os = "linux")]
#[test]
fn a_short_soak_fails_no_request_and_loses_no_event() {
    let _turn = crate::common::serial::alone_blocking();
    // Examples are built by `cargo test`, next to the directory of the test executables.
    let exe = std::env::current_exe().unwrap();
    let soak = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/soak");
    assert!(soak.exists(), "{} is built by cargo test", soak.display());
    for keys in ["0", "40"] {
        let dir = tempfile::tempdir().unwrap();
        let host = up(dir.path());
        let token = admin_token(&dir.path().join("data"));
        let pid = host.child.id().to_string();
        let out = Command::new(&soak)
            .args([&host.url, &token, &pid, "15", "0.8", "5", "5"])
            .env("AIMASS_SOAK_KEYS", keys)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        eprintln!("AIMASS_SOAK_KEYS={keys}\n{text}");
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s = summary(&text);
        assert!(number(&s, "requests_ok") > 100.0, "a load ran: {s}");
        assert_eq!(number(&s, "requests_failed"), 0.0, "failed requests: {s}");
        assert_eq!(
            number(&s, "pool_idle"),
            0.0,
            "pool slots held when idle: {s}"
        );
        assert_eq!(number(&s, "pending"), 0.0, "events left unprocessed: {s}");
        assert_eq!(number(&s, "dead_letters"), 0.0, "dead letters: {s}");
        let puts = number(&s, "hook_puts");
        assert!(puts > 0.0, "objects were put: {s}");
        let rows = number(&s, "rows");
        let want = if keys == "0" { puts } else { puts.min(40.0) };
        assert_eq!(rows, want, "one row per object (per key in rotation)");
    }
}
