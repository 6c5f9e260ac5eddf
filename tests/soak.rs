//! The soak in short, in the test command: `host/examples/soak.rs` (what `scripts/soak.sh` runs
//! for 10 minutes; RELIABILITY.md, Load and soak) against the real binary for a 5 s probe and
//! three 5 s windows at 80% of the probed rate of invoke, `/fn`, infer and hook traffic at once,
//! once with a new object per hook put and once with keys in rotation. No request may fail, the
//! instance pool must drain to 0, and the hook must have processed every object it was given.
//! Its own binary, so nothing else competes with it for the machine.

mod common;

use common::binary::{admin_token, up};
use std::process::Command;

/// The numbers on the soak's summary line that starts with `label`, in order.
fn numbers(out: &str, label: &str) -> Vec<f64> {
    let line = out
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{out}"));
    line.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|t| t.trim_matches('.').parse().ok())
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
fn a_short_soak_fails_no_request_and_loses_no_event() {
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
        let requests = numbers(&text, "requests:");
        assert!(requests[0] > 100.0, "a load ran: {requests:?}");
        assert_eq!(requests[1], 0.0, "failed requests");
        let pool = numbers(&text, "instance pool:");
        assert_eq!(pool[1], 0.0, "pool slots held when idle");
        // hook: PUTS objects put (...), ROWS rows in soak-raw, PENDING events pending.
        let hook = numbers(&text, "hook:");
        let (puts, rows, pending) = (hook[0], hook[hook.len() - 2], hook[hook.len() - 1]);
        assert_eq!(pending, 0.0, "events left unprocessed");
        let want = if keys == "0" { puts } else { puts.min(40.0) };
        assert_eq!(rows, want, "one row per object (per key in rotation)");
    }
}
