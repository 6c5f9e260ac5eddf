//! Invocation overhead and cold-start benchmarks (see BENCHMARKS.md for figures and commands).
//!
//! - `invoke/noop-pooling`: what every call pays — new store + WASI context + limiter, instantiate
//!   from the `InstancePre`, call `clean` on a one-row Arrow batch — with the pooling allocator.
//! - `invoke/noop-on-demand`: the same with on-demand allocation (hosts where pooling is off).
//! - `invoke/noop-bare-wasmtime`: the floor — the same pooled `InstancePre` called straight
//!   through wasmtime without the host's fuel metering, memory limiter and deadline callback.
//! - `invoke/noop-naive`: the peer baseline in the same run — what a host that rebuilds per-request
//!   state does (new `Linker`, WASI linked, instantiate without a pre-resolved `InstancePre`), the
//!   pattern wasmCloud measured as 5x slower than `wasmtime serve`.
//! - `cold/compile` vs `cold/load-cached` and `cold/first-invoke-cached`: a restart with the
//!   compiled cache against a fresh Cranelift compile of the csv-collector component.

use aimass::platform::formats::{Format, to_ipc};
use aimass::runtime::EngineOptions;
use aimass::runtime::Limits;
use aimass::runtime::Prepared;
use aimass::runtime::Runtime;
use aimass::runtime::raw::Cleaner;
use aimass::runtime::raw::HostState;
use aimass::runtime::{Call, Target, invoke};
use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Linker};

fn read(name: &str) -> Vec<u8> {
    std::fs::read(aimass::bundled::wasm_path(name)).unwrap()
}

fn bench_invoke(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let input = to_ipc(Format::Csv, b"a,b\n1,2\n").unwrap();
    let noop = read("noop");
    let name: Arc<str> = "noop".into();
    let mut group = c.benchmark_group("invoke");
    for (label, pooling) in [("noop-pooling", true), ("noop-on-demand", false)] {
        let runtime = Runtime::new(&EngineOptions {
            pooling,
            ..Default::default()
        })
        .unwrap();
        if pooling {
            assert!(
                runtime.engine.pooling,
                "pooling unavailable on this machine"
            );
        }
        let compiled = runtime.compile(&noop).unwrap();
        group.bench_function(label, |b| {
            b.to_async(&rt).iter(|| async {
                let target = Target {
                    name: &name,
                    version: 1,
                    prepared: &compiled.prepared,
                    limits: Limits::default(),
                    caps: Default::default(),
                };
                let (r, _) = invoke(
                    runtime.engine(),
                    runtime.engine.consume_fuel,
                    target,
                    Call::Clean(input.clone()),
                    Vec::new(),
                )
                .await;
                assert_eq!(r.unwrap().output.len(), input.len());
            })
        });
    }

    // The floor: the same pooled InstancePre driven straight through wasmtime, with none of the
    // host's per-call bookkeeping (no fuel, no memory limiter, no deadline callback, no stats).
    let runtime = Runtime::new(&EngineOptions {
        consume_fuel: false,
        ..Default::default()
    })
    .unwrap();
    let compiled = runtime.compile(&noop).unwrap();
    let Prepared::Cleaner(pre) = &compiled.prepared else {
        panic!("noop is a cleaner")
    };
    let engine = runtime.engine().clone();
    let unlimited = Limits {
        memory_bytes: u64::MAX,
        ..Limits::default()
    };
    group.bench_function("noop-bare-wasmtime", |b| {
        b.to_async(&rt).iter(|| async {
            let state = HostState::new(
                name.clone(),
                1,
                &unlimited,
                Instant::now(),
                Default::default(),
            );
            let mut store = Store::new(&engine, state);
            store.set_epoch_deadline(1 << 40);
            let inst = pre.instantiate_async(&mut store).await.unwrap();
            let out = inst
                .call_clean(&mut store, &input, &Vec::new())
                .await
                .unwrap();
            assert_eq!(out.unwrap().len(), input.len());
        })
    });

    // The naive peer: per-call linker and instantiate, no InstancePre, no pooling.
    let runtime = Runtime::new(&EngineOptions {
        pooling: false,
        consume_fuel: false,
        ..Default::default()
    })
    .unwrap();
    let engine = runtime.engine().clone();
    let component = Component::new(&engine, &noop).unwrap();
    group.bench_function("noop-naive", |b| {
        b.to_async(&rt).iter(|| async {
            let mut linker = Linker::<HostState>::new(&engine);
            wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
            aimass::runtime::raw::Trainer::add_to_linker::<_, HasSelf<HostState>>(
                &mut linker,
                |s| s,
            )
            .unwrap();
            let state = HostState::new(
                name.clone(),
                1,
                &unlimited,
                Instant::now(),
                Default::default(),
            );
            let mut store = Store::new(&engine, state);
            store.set_epoch_deadline(1 << 40);
            let inst = Cleaner::instantiate_async(&mut store, &component, &linker)
                .await
                .unwrap();
            let out = inst
                .call_clean(&mut store, &input, &Vec::new())
                .await
                .unwrap();
            assert_eq!(out.unwrap().len(), input.len());
        })
    });
    group.finish();
}

/// One csv-collector call on a prepared component.
async fn collect_csv(runtime: &Runtime, name: &Arc<str>, prepared: &Prepared, input: &[u8]) {
    let target = Target {
        name,
        version: 1,
        prepared,
        limits: Limits::default(),
        caps: Default::default(),
    };
    let source = aimass::runtime::Source {
        content_type: "text/csv".into(),
        name: None,
        data: input.to_vec(),
    };
    let (r, _) = invoke(
        runtime.engine(),
        true,
        target,
        Call::Collect(source),
        Vec::new(),
    )
    .await;
    r.unwrap();
}

fn bench_cold(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = Runtime::new(&EngineOptions::default()).unwrap();
    let bytes = read("csv-collector");
    let artifact = runtime
        .compile(&bytes)
        .unwrap()
        .component
        .serialize()
        .unwrap();
    let input = b"id,name\n1,a\n".to_vec();
    let name: Arc<str> = "csv-collector".into();
    let mut group = c.benchmark_group("cold");
    group.sample_size(10);
    group.bench_function("compile", |b| b.iter(|| runtime.compile(&bytes).unwrap()));
    group.sample_size(50);
    group.bench_function("load-cached", |b| {
        b.iter(|| runtime.load_compiled(&artifact).unwrap())
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("csv-collector.cwasm");
    std::fs::write(&file, &artifact).unwrap();
    group.bench_function("load-cached-file", |b| {
        b.iter(|| runtime.load_compiled_file(&file).unwrap())
    });
    group.bench_function("first-invoke-cached", |b| {
        b.to_async(&rt).iter(|| async {
            let compiled = runtime.load_compiled_file(&file).unwrap();
            collect_csv(&runtime, &name, &compiled.prepared, &input).await;
        })
    });
    // The same call on an already loaded component: what the plugin itself costs, so
    // `first-invoke-cached` minus this is the cold-start overhead.
    let loaded = runtime.load_compiled_file(&file).unwrap();
    group.bench_function("warm-invoke", |b| {
        b.to_async(&rt)
            .iter(|| collect_csv(&runtime, &name, &loaded.prepared, &input))
    });
    group.finish();
}

criterion_group!(benches, bench_invoke, bench_cold);
criterion_main!(benches);
