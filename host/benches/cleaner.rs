//! Cleaner throughput on a 1M-row table: the bundled cleaners run as Wasm components through the
//! host's invoke path, against the same crates compiled natively and called through the same
//! SDK adapter (Arrow IPC decode → clean → encode), in one run. See BENCHMARKS.md.
//!
//! The table: 1,048,576 rows in 64 Ki-row batches of `id: Int64, amount: Float64 (5% null),
//! qty: Int64, region: Utf8` — a sales-like shape.

use aimass::runtime::EngineOptions;
use aimass::runtime::Limits;
use aimass::runtime::Runtime;
use aimass::runtime::{Call, Target, invoke};
use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;

const ROWS: usize = 1 << 20;
const BATCH: usize = 64 * 1024;

fn table() -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("amount", DataType::Float64, true),
        Field::new("qty", DataType::Int64, false),
        Field::new("region", DataType::Utf8, false),
    ]));
    let regions = ["north", "south", "east", "west"];
    let batches: Vec<RecordBatch> = (0..ROWS / BATCH)
        .map(|b| {
            let ids: Vec<i64> = (0..BATCH).map(|i| (b * BATCH + i) as i64).collect();
            let amount: Float64Array = ids
                .iter()
                .map(|&i| {
                    // Deterministic pseudo-random spread with a few far outliers and 5% nulls.
                    let x = ((i as u64).wrapping_mul(2654435761) % 10_000) as f64 / 100.0;
                    (i % 20 != 0).then_some(if i % 997 == 0 { x * 1e4 } else { x })
                })
                .collect();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(ids.clone())),
                    Arc::new(amount),
                    Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| i % 17))),
                    Arc::new(StringArray::from_iter_values(
                        ids.iter().map(|i| regions[*i as usize % 4]),
                    )),
                ],
            )
            .unwrap()
        })
        .collect();
    aimass::platform::formats::encode_ipc(&schema, &batches).unwrap()
}

type Config = Vec<(String, String)>;
type Native = fn(Vec<u8>, Config) -> aimass_plugin_sdk::Result<Vec<u8>>;

fn bench_cleaners(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let input = table();
    // `AIMASS_BENCH_KEEP_RESIDENT_MB` sizes the pool's resident memory per slot (default: the
    // host's default), to measure what fresh-memory page faults cost a 1M-row call.
    let keep_resident_bytes = std::env::var("AIMASS_BENCH_KEEP_RESIDENT_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(EngineOptions::default().keep_resident_bytes, |mb| mb << 20);
    let runtime = Runtime::new(&EngineOptions {
        keep_resident_bytes,
        ..Default::default()
    })
    .unwrap();
    let limits = Limits {
        timeout_ms: 120_000,
        memory_bytes: 2 << 30,
        max_output_bytes: 1 << 30,
        max_concurrency: 1,
        ..Limits::default()
    };
    let cases: [(&str, Config, Native); 2] = [
        (
            "outliers",
            vec![("columns".into(), "amount".into())],
            aimass_plugin_sdk::__private::clean::<outliers::Outliers>,
        ),
        (
            "drop-nulls",
            Vec::new(),
            aimass_plugin_sdk::__private::clean::<drop_nulls::DropNulls>,
        ),
    ];
    let mut group = c.benchmark_group("cleaner-1M");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ROWS as u64));
    for (name, config, native) in cases {
        let compiled = runtime
            .compile(&std::fs::read(aimass::bundled::wasm_path(name)).unwrap())
            .unwrap();
        let plugin: Arc<str> = name.into();
        // Same output both ways, or the comparison means nothing.
        let native_out = native(input.clone(), config.clone()).unwrap();
        let run_wasm = || async {
            let target = Target {
                name: &plugin,
                version: 1,
                prepared: &compiled.prepared,
                limits,
                caps: Default::default(),
            };
            let (r, _) = invoke(
                runtime.engine(),
                runtime.engine.consume_fuel,
                target,
                Call::Clean(input.clone()),
                config.clone(),
            )
            .await;
            r.unwrap().output
        };
        let wasm_out = rt.block_on(run_wasm());
        let rows = |ipc: &[u8]| {
            let (_, b) = aimass::platform::formats::decode_ipc(ipc).unwrap();
            b.iter().map(|b| b.num_rows()).sum::<usize>()
        };
        assert_eq!(rows(&native_out), rows(&wasm_out), "{name}: same rows kept");
        assert!(rows(&native_out) < ROWS, "{name} removed something");

        group.bench_function(format!("{name}-wasm"), |b| b.to_async(&rt).iter(run_wasm));
        group.bench_function(format!("{name}-native"), |b| {
            b.iter(|| native(input.clone(), config.clone()).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_cleaners);
criterion_main!(benches);
