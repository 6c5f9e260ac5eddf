//! Model benchmarks, the aimass side of two comparisons made in the same run by
//! `scripts/bench-models.sh` (which also runs the Python baselines and prints the ratios):
//!
//! * `tract DIR` — in-process tract inference on the ONNX files `scripts/bench-models.py make`
//!   wrote (linear, MLP, CNN) at the same batch sizes and inputs shapes the onnxruntime run uses:
//!   one optimised plan per model, ~1 s warm-up, ~3 s of timed `run` calls.
//! * `logreg DIR MODELS_DIR` — the bundled `logistic-regression` trainer (the real Wasm component, through
//!   the host runtime with its default limits raised for the data) on `DIR/train.csv` (100k × 30
//!   from `scripts/bench-logreg.py make`), fitted 5 times; then test AUC through tract on
//!   `DIR/test.csv`; the trained model is written to `MODELS_DIR/logreg.onnx` for the inference
//!   comparison.
//!
//! The bench allocates with jemalloc, as the `aimass` binary does: under glibc malloc, tract's
//! per-call buffers for the CNN at batch 64 were served by `mmap` or from the heap depending on
//! what earlier allocations had moved glibc's dynamic mmap threshold to, and the same plan timed
//! 3.5 or 7 ms from one process to the next.
//!
//! Output: one JSON line per case, like the Python scripts.
//! Run: `cargo bench -p aimass --bench models -- tract /var/tmp/aimass-bench/models`.

use aimass::models::evaluate::evaluate;
use aimass::models::onnx::load;
use aimass::platform::formats::{Format, decode_ipc, encode_ipc, to_ipc};
use aimass::runtime::DatasetReader;
use aimass::runtime::EngineOptions;
use aimass::runtime::Limits;
use aimass::runtime::Runtime;
use aimass::runtime::{Call, Target, invoke};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tract_onnx::prelude::*;

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const CASES: &[(&str, usize)] = &[
    ("linear", 1),
    ("linear", 1024),
    ("logreg", 1),
    ("logreg", 1024),
    ("mlp", 1),
    ("mlp", 1024),
    ("mlp2", 1),
    ("mlp2", 1024),
    ("cnn", 1),
    ("cnn", 64),
];

fn stats(mut us: Vec<f64>) -> (f64, f64, f64) {
    us.sort_by(f64::total_cmp);
    let median = us[us.len() / 2];
    let mean = us.iter().sum::<f64>() / us.len() as f64;
    let p99 = us[((us.len() as f64 * 0.99) as usize).min(us.len() - 1)];
    (median, mean, p99)
}

/// The host's plan (symbolic batch), or — with `fixed` — one optimised for this batch size.
fn plan(bytes: &[u8], shape: &[usize], fixed: bool) -> Box<dyn Fn(TVec<TValue>) -> TVec<TValue>> {
    if !fixed {
        let model = load(bytes).unwrap();
        return Box::new(move |i| model.run(i).unwrap());
    }
    let plan = tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(bytes))
        .unwrap()
        .with_input_fact(0, f32::fact(shape).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    Box::new(move |i| plan.run(i).unwrap())
}

fn tract(dir: &Path) {
    // `AIMASS_BENCH_CASES=mlp:1,cnn:64` picks other cases (any [N, 30] model in DIR, or `cnn`).
    let picked: Vec<(String, usize)> = match std::env::var("AIMASS_BENCH_CASES") {
        Ok(list) => list
            .split(',')
            .map(|c| {
                let (m, b) = c.split_once(':').expect("MODEL:BATCH");
                (m.to_string(), b.parse().expect("batch"))
            })
            .collect(),
        Err(_) => CASES.iter().map(|(m, b)| (m.to_string(), *b)).collect(),
    };
    for (name, batch) in picked {
        let (name, batch) = (name.as_str(), batch);
        let Ok(bytes) = std::fs::read(dir.join(format!("{name}.onnx"))) else {
            continue; // logreg.onnx comes from the `logreg` command
        };
        for fixed in [false, true] {
            let per_row: Vec<usize> = if name == "cnn" {
                vec![1, 28, 28]
            } else {
                vec![30]
            };
            let mut shape = vec![batch];
            shape.extend(&per_row);
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n)
                .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                .collect();
            let input: TValue = Tensor::from_shape(&shape, &data).unwrap().into();
            let model = plan(&bytes, &shape, fixed);
            let until = Instant::now() + Duration::from_secs(1);
            while Instant::now() < until {
                model(tvec!(input.clone()));
            }
            let mut us = Vec::new();
            let until = Instant::now() + Duration::from_secs(3);
            while Instant::now() < until {
                let t = Instant::now();
                std::hint::black_box(model(tvec!(input.clone())));
                us.push(t.elapsed().as_secs_f64() * 1e6);
            }
            let (median, mean, p99) = stats(us.clone());
            println!(
                "{}",
                serde_json::json!({"engine": if fixed { "tract-fixed-batch" } else { "tract" }, "model": name, "batch": batch, "median_us": median,
                               "mean_us": mean, "p99_us": p99, "iters": us.len()})
            );
        }
    }
}

fn logreg(dir: &Path, models: &Path) {
    let csv = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let (schema, batches) = decode_ipc(&to_ipc(Format::Csv, &csv("train.csv")).unwrap()).unwrap();
    let train = arrow_select::concat::concat_batches(&schema, &batches).unwrap();
    let mut parts = Vec::new();
    let mut offset = 0;
    while offset < train.num_rows() {
        let len = 8192.min(train.num_rows() - offset);
        parts.push(encode_ipc(&schema, &[train.slice(offset, len)]).unwrap());
        offset += len;
    }
    let parts = Arc::new(parts);
    let features: Vec<String> = (0..30).map(|i| format!("f{i}")).collect();
    let config: Vec<(String, String)> = vec![
        ("label".into(), "label".into()),
        ("features".into(), features.join(",")),
        ("c".into(), "1.0".into()),
        ("max_iter".into(), "100".into()),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = Runtime::new(&EngineOptions::default()).unwrap();
    let compiled = runtime
        .compile(&std::fs::read(aimass::bundled::wasm_path("logistic-regression")).unwrap())
        .unwrap();
    let name: Arc<str> = "logistic-regression".into();
    let limits = Limits {
        timeout_ms: 600_000,
        memory_bytes: 2 << 30,
        ..Limits::default()
    };
    let mut fits = Vec::new();
    let mut model = None;
    for _ in 0..5 {
        let reader = DatasetReader {
            schema: encode_ipc(&schema, &[]).unwrap(),
            batches: parts.clone(),
            rows: train.num_rows() as u64,
            cursor: 0,
            watch: None,
        };
        let target = Target {
            name: &name,
            version: 1,
            prepared: &compiled.prepared,
            limits,
            caps: Default::default(),
        };
        let t = Instant::now();
        let (out, _) = rt.block_on(invoke(
            runtime.engine(),
            runtime.engine.consume_fuel,
            target,
            Call::Train(reader),
            config.clone(),
        ));
        fits.push(t.elapsed().as_secs_f64());
        model = Some(out.unwrap());
    }
    let out = model.unwrap();
    let iterations = out
        .metadata
        .iter()
        .find(|(k, _)| k == "iterations")
        .map(|(_, v)| v.clone());
    let loaded = load(&out.output).unwrap();
    std::fs::create_dir_all(models).unwrap();
    std::fs::write(models.join("logreg.onnx"), &out.output).unwrap();
    let (schema, batches) = decode_ipc(&to_ipc(Format::Csv, &csv("test.csv")).unwrap()).unwrap();
    let test = arrow_select::concat::concat_batches(&schema, &batches).unwrap();
    let eval = evaluate(&loaded, &test, &features, "label", Some(&[0, 1])).unwrap();
    let mut sorted = fits.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({"engine": "aimass", "fit_s_median": sorted[2], "fits": fits,
                           "n_iter": iterations, "test_auc": eval.scores["auc"]})
    );
}

fn main() {
    // `cargo bench` passes `--bench`; take the other arguments.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match args.as_slice() {
        [cmd, dir, ..] if cmd == "tract" => tract(Path::new(dir)),
        [cmd, dir, models, ..] if cmd == "logreg" => logreg(Path::new(dir), Path::new(models)),
        _ => eprintln!(
            "usage: cargo bench -p aimass --bench models -- (tract MODELS_DIR | logreg DATA_DIR MODELS_DIR)"
        ),
    }
}
