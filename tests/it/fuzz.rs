//! The fuzz targets of `fuzz/` replayed as an ordinary test, uninstrumented: every input
//! surface (plugin upload, Arrow IPC / CSV / NDJSON decoding, S3 event JSON, OIP infer requests,
//! pipeline files and object keys) gets its seeds, the crash inputs kept in `fuzz/artifacts/`,
//! and a fixed sequence of mutations of them on every run. Each input must end with no panic and
//! no 5xx (the harness turns a 5xx into a panic); a failing input is written out to be replayed.
//!
//! Coverage-guided fuzzing needs an instrumented build (~35 minutes on 2 cores the first time),
//! so it is not part of the test command: `scripts/fuzz.sh` runs it (see RELIABILITY.md for the
//! schedule), and what it finds is committed to `fuzz/artifacts/` and replayed here.
//!
//! `AIMASS_FUZZ_MUTATIONS` sets the mutations per target (default 20,000, within 20 s).

#[path = "../../fuzz/src/lib.rs"]
mod harness;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Most time mutations of one target may take; past it the rest are skipped and the report
/// says how many ran (the seeds and artifacts always run).
const BUDGET: std::time::Duration = std::time::Duration::from_secs(20);

/// The inputs `target` starts from: the seeds in `fuzz/seeds/`, the crash inputs in
/// `fuzz/artifacts/`, plus real components (upload) and a real Arrow IPC stream (invoke
/// decoding) made here.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["fuzz/seeds", "fuzz/artifacts"] {
        let Ok(entries) = std::fs::read_dir(root().join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_file() && !name.starts_with('.') {
                out.push((
                    format!("{dir}/{target}/{name}"),
                    std::fs::read(&path).unwrap(),
                ));
            }
        }
    }
    match target {
        "upload" => {
            for name in ["noop", "hostile", "hello_fn"] {
                let file = Path::new(aimass::bundled::WASM_DIR).join(format!("{name}.wasm"));
                out.push((format!("component {name}"), std::fs::read(&file).unwrap()));
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
            let ipc = aimass::platform::formats::encode_ipc(&batch.schema(), &[batch]).unwrap();
            // First byte 0: Arrow stream into the `dedup` cleaner; 8: also as a dataset part.
            for (name, pick) in [("ipc", 0u8), ("ipc-part", 8u8)] {
                let mut data = vec![pick];
                data.extend_from_slice(&ipc);
                out.push((name.to_string(), data));
            }
        }
        _ => {}
    }
    out.sort();
    out
}

/// One mutation of `input`, or a splice with `other`: what libFuzzer's default mutators do,
/// without its coverage feedback.
fn mutate(rng: &mut StdRng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    if v.is_empty() {
        return (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
    }
    let at = rng.random_range(0..v.len());
    match rng.random_range(0..7) {
        0 => v[at] ^= 1 << rng.random_range(0..8),
        1 => v[at] = [0x00, 0xff, 0x7f, 0x80, b'"', b'{', b'\n'][rng.random_range(0..7)],
        2 => v.truncate(at),
        3 => {
            let end = rng.random_range(at..=v.len().min(at + 64));
            let copy = v[at..end].to_vec();
            let to = rng.random_range(0..=v.len());
            v.splice(to..to, copy);
        }
        4 => {
            let n = rng.random_range(1..16);
            v.splice(at..at, (0..n).map(|_| rng.random::<u8>()));
        }
        5 => {
            let end = rng.random_range(at..=v.len());
            v.drain(at..end);
        }
        _ => {
            let cut = rng.random_range(0..=other.len());
            v.truncate(at);
            v.extend_from_slice(&other[cut..]);
        }
    }
    v
}

/// Run `input` through `target`; on a panic, write the input out and fail naming it.
fn check(name: &str, target: fn(&[u8]), what: &str, input: &[u8]) {
    let run = std::panic::catch_unwind(|| target(input));
    if let Err(panic) = run {
        let file = std::env::temp_dir().join(format!(
            "aimass-fuzz-{name}-{:016x}",
            std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), input)
        ));
        std::fs::write(&file, input).unwrap();
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        panic!(
            "{name}: {what} failed: {message}\ninput written to {} (copy it to fuzz/artifacts/{name}/ \
             to keep it as a regression)",
            file.display()
        );
    }
}

#[test]
fn every_fuzz_target_handles_its_seeds_artifacts_and_their_mutations() {
    let _turn = crate::common::serial::together_blocking();
    let mutations: usize = std::env::var("AIMASS_FUZZ_MUTATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    harness::host();
    let mut report = Vec::new();
    for &(name, target) in harness::targets::ALL {
        let corpus = corpus(name);
        assert!(!corpus.is_empty(), "{name} has no seeds");
        for (what, input) in &corpus {
            check(name, target, what, input);
        }
        // A fixed seed per target: the same mutations every run.
        let mut rng = StdRng::seed_from_u64(name.len() as u64 * 7919 + name.as_bytes()[0] as u64);
        let started = std::time::Instant::now();
        let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        let (sent, accepted) = (count(&harness::SENT), count(&harness::ACCEPTED));
        let mut ran = 0;
        while ran < mutations && started.elapsed() < BUDGET {
            let (_, input) = &corpus[rng.random_range(0..corpus.len())];
            let (_, other) = &corpus[rng.random_range(0..corpus.len())];
            let mut mutant = mutate(&mut rng, input, other);
            for _ in 0..rng.random_range(0..4) {
                mutant = mutate(&mut rng, &mutant, other);
            }
            check(name, target, &format!("mutation {ran}"), &mutant);
            ran += 1;
        }
        let (sent, accepted) = (
            count(&harness::SENT) - sent,
            count(&harness::ACCEPTED) - accepted,
        );
        // The mutations reach the host, and some get past its checks.
        assert!(
            sent >= ran as u64 / 2 && accepted > 0,
            "{name}: {sent} sent, {accepted} accepted"
        );
        report.push(format!(
            "{name}: {} corpus inputs, then {ran} mutations in {:.2} s: {sent} requests, \
             {accepted} accepted, the rest refused with a 4xx; 0 failures",
            corpus.len(),
            started.elapsed().as_secs_f64()
        ));
    }
    eprintln!("{}", report.join("\n"));
}
