//! Short runs of the cargo-fuzz (libFuzzer) targets in `fuzz/`, so the normal test command
//! fuzzes every input surface a little on each run: plugin upload, Arrow IPC / CSV / NDJSON
//! decoding, S3 event JSON, OIP infer requests, pipeline files and object keys. Each target
//! must end with no crash (a panic, a hang past `-timeout`, or a 5xx, which the harness turns
//! into a panic).
//!
//! `cargo-fuzz` is installed next to Garage (`/var/tmp/aimass-tools`) when missing, and the
//! instrumented build goes to its own persistent target dir so only the first run pays for it.
//! Longer runs: `scripts/fuzz.sh TARGET SECONDS` (see RELIABILITY.md).
//!
//! `AIMASS_FUZZ_SECONDS` sets the time per target (default 20).

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGETS: &[&str] = &[
    "upload",
    "invoke_decode",
    "s3_event",
    "oip_infer",
    "pipeline_spec",
    "object_key",
];

const TOOLS: &str = "/var/tmp/aimass-tools";
const CARGO_FUZZ_VERSION: &str = "0.13.2";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fuzz_target_dir() -> PathBuf {
    std::env::var_os("AIMASS_FUZZ_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/aimass-fuzz-target"))
}

/// What the nested cargo keeps of this process's environment. The rest (what `cargo test` sets
/// for tests, the caller's `CARGO_TARGET_DIR` or `RUSTFLAGS`) would change the instrumented
/// build's fingerprints and rebuild it.
const KEEP: &[&str] = &[
    "PATH",
    "HOME",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "TMPDIR",
    "LANG",
];

fn cargo_fuzz() -> Command {
    let bin = Path::new(TOOLS).join("bin/cargo-fuzz");
    let ok = Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_FUZZ_VERSION));
    if !ok {
        let status = Command::new(env!("CARGO"))
            .args(["install", "--locked", "cargo-fuzz", "--version"])
            .arg(CARGO_FUZZ_VERSION)
            .args(["--root", TOOLS])
            .status()
            .expect("running cargo install");
        assert!(status.success(), "installing cargo-fuzz failed");
    }
    // `cargo fuzz` runs `cargo`; the toolchain file in the repository picks the version.
    let mut cmd = Command::new(bin);
    cmd.arg("fuzz").current_dir(root()).env_clear();
    for (k, v) in std::env::vars_os() {
        if KEEP.iter().any(|keep| k == *keep) {
            cmd.env(k, v);
        }
    }
    // The Wasm plugins the host embeds are already built for this test run; reuse them.
    cmd.env("AIMASS_PREBUILT_PLUGINS", aimass::bundled::WASM_DIR);
    // The harness keeps its compiled-plugin cache and template store here between runs.
    cmd.env("AIMASS_FUZZ_DATA_DIR", "/var/tmp/aimass-fuzz-data");
    cmd
}

/// A fresh corpus for `target`: the seeds in `fuzz/seeds/`, plus real components (upload) and
/// a real Arrow IPC stream (invoke decoding) made here.
fn corpus(target: &str, dir: &Path) -> PathBuf {
    let out = dir.join(target);
    std::fs::create_dir_all(&out).unwrap();
    let seeds = root().join("fuzz/seeds").join(target);
    for entry in std::fs::read_dir(&seeds).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, out.join(path.file_name().unwrap())).unwrap();
    }
    match target {
        "upload" => {
            for name in ["noop", "hostile", "hello_fn"] {
                let file = Path::new(aimass::bundled::WASM_DIR).join(format!("{name}.wasm"));
                std::fs::copy(&file, out.join(name)).unwrap();
            }
        }
        "invoke_decode" => {
            let batch = arrow_array::RecordBatch::try_from_iter([
                (
                    "k",
                    std::sync::Arc::new(arrow_array::Int64Array::from(vec![1, 1, 2])) as _,
                ),
                (
                    "v",
                    std::sync::Arc::new(arrow_array::StringArray::from(vec!["a", "a", "b"])) as _,
                ),
            ])
            .unwrap();
            let ipc = aimass::capabilities::formats::encode_ipc(&batch.schema(), &[batch]).unwrap();
            // First byte 0: Arrow stream into the `dedup` cleaner; 8: also as a dataset part.
            for (name, pick) in [("ipc", 0u8), ("ipc-part", 8u8)] {
                let mut data = vec![pick];
                data.extend_from_slice(&ipc);
                std::fs::write(out.join(name), data).unwrap();
            }
        }
        _ => {}
    }
    out
}

/// `Done N runs` / `stat::number_of_executed_units: N` from libFuzzer's output.
fn executions(output: &str) -> Option<u64> {
    output
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|n| n.trim().parse().ok())
}

#[test]
fn every_fuzz_target_runs_without_a_crash() {
    let seconds: u64 = std::env::var("AIMASS_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let target_dir = fuzz_target_dir();
    let status = cargo_fuzz()
        .args(["build", "--sanitizer", "none", "--target-dir"])
        .arg(&target_dir)
        .status()
        .expect("running cargo fuzz build");
    assert!(status.success(), "cargo fuzz build failed");

    let dir = tempfile::tempdir().unwrap();
    // Once per change of the bundled plugins the harness compiles them into its template store
    // (minutes under instrumentation); do that here, outside the timed runs.
    let empty = dir.path().join("warm-up");
    std::fs::create_dir_all(&empty).unwrap();
    let status = cargo_fuzz()
        .args(["run", "--sanitizer", "none", "--target-dir"])
        .arg(&target_dir)
        .args(["s3_event"])
        .arg(&empty)
        .args(["--", "-runs=1"])
        .status()
        .expect("running cargo fuzz run");
    assert!(status.success(), "warming the fuzz harness up failed");

    let mut report = Vec::new();
    for target in TARGETS {
        let corpus = corpus(target, dir.path());
        let artifacts = dir.path().join(format!("{target}-artifacts/"));
        std::fs::create_dir_all(&artifacts).unwrap();
        let output = cargo_fuzz()
            .args(["run", "--sanitizer", "none", "--target-dir"])
            .arg(&target_dir)
            .arg(target)
            .arg(&corpus)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            // A fixed seed keeps the short run repeatable; scripts/fuzz.sh explores with
            // random ones.
            .arg("-seed=1")
            .arg("-timeout=30")
            .arg("-rss_limit_mb=6144")
            .arg("-print_final_stats=1")
            .arg(format!("-artifact_prefix={}", artifacts.display()))
            .output()
            .expect("running cargo fuzz run");
        let text = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        assert!(
            output.status.success(),
            "fuzz target {target} failed:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
        let runs = executions(&text).unwrap_or_else(|| panic!("{target}: no stats in\n{text}"));
        assert!(runs > 0, "{target} ran no input");
        report.push(format!(
            "{target}: {runs} executions in {seconds} s, 0 crashes"
        ));
    }
    eprintln!("{}", report.join("\n"));
}
