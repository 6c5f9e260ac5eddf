//! Event latency: object write → plugin output committed, at a sustained rate on the local store.
//!
//! Starts a real host (local file store in a temp dir, no poller), binds a hook, then PUTs small
//! CSV objects through the HTTP API at a fixed rate and reads the hook's latency percentiles
//! (measured by the host from the start of each object write to the commit of the plugin's
//! output part). Run: `cargo bench -p aimass --bench events -- [RATE] [SECONDS]`
//! (defaults 200 events/s for 10 s). Figures are in BENCHMARKS.md.

use aimass::client::Client;
use aimass::config::HostConfig;
use aimass::ingest::hooks::HookOptions;
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-admin-token-of-at-least-32-chars";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

async fn run(c: &Client, hook: &str, plugin: &str, rate: u64, secs: u64) {
    let spec = serde_json::json!({"plugin": plugin, "prefix": format!("{hook}/"), "output": hook});
    c.put_hook(hook, &spec).await.unwrap();
    let total = rate * secs;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut puts = Vec::with_capacity(total as usize);
    let started = Instant::now();
    for i in 0..total {
        tick.tick().await;
        let (c, key) = (c.clone(), format!("{hook}/{i:06}.csv"));
        puts.push(tokio::spawn(async move {
            let t = Instant::now();
            let body = format!("id,amount\n{i},{}\n{},{}\n", i * 3, i + 1, i * 7);
            c.put_object(&key, body).await.unwrap();
            t.elapsed().as_secs_f64() * 1000.0
        }));
    }
    let mut put_ms = Vec::new();
    for p in puts {
        put_ms.push(p.await.unwrap());
    }
    let sent_in = started.elapsed();
    let status = loop {
        let v = c.hook(hook).await.unwrap();
        if v["processed"] == total && v["pending"] == 0 {
            break v;
        }
        assert_eq!(v["dead_lettered"], 0, "{v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    put_ms.sort_by(f64::total_cmp);
    let l = &status["latency"];
    println!(
        "{hook:<10} {plugin:<14} {total:>6} events in {:>5.1} s ({:>5.0}/s offered {rate}/s): \
         event p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms | PUT p50 {:.2} ms p99 {:.2} ms",
        sent_in.as_secs_f64(),
        total as f64 / sent_in.as_secs_f64(),
        l["p50_ms"].as_f64().unwrap(),
        l["p90_ms"].as_f64().unwrap(),
        l["p99_ms"].as_f64().unwrap(),
        l["max_ms"].as_f64().unwrap(),
        percentile(&put_ms, 0.5),
        percentile(&put_ms, 0.99),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; positional numbers are ours.
    let nums: Vec<u64> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let rate = nums.first().copied().unwrap_or(200);
    let secs = nums.get(1).copied().unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let rt = aimass::server::runtime_builder().build().unwrap();
    rt.block_on(async {
        let running = aimass::server::start(HostConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            store_url: format!("file://{}", dir.path().join("store").display()),
            data_dir: dir.path().join("data"),
            admin_token: Some(TOKEN.into()),
            hooks: HookOptions {
                poll_interval: None,
                ..Default::default()
            },
            engine: aimass::runtime::EngineOptions {
                keep_resident_bytes: std::env::var("AIMASS_BENCH_KEEP_RESIDENT_MB")
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .map_or(
                        aimass::runtime::EngineOptions::default().keep_resident_bytes,
                        |mb| mb << 20,
                    ),
                ..Default::default()
            },
            ..HostConfig::default()
        })
        .await
        .unwrap();
        let base = format!("http://{}", running.addr);
        let c = Client::new(&base, Some(TOKEN.to_string())).unwrap();
        let noop = std::fs::read(aimass::bundled::wasm_path("noop")).unwrap();
        c.send(
            c.request(reqwest::Method::PUT, "/v1/plugins/noop")
                .body(noop),
        )
        .await
        .unwrap();
        println!("event latency, local store, {rate} events/s for {secs} s per hook:");
        // Host overhead alone: the pass-through cleaner on the CSV parsed by the host.
        run(&c, "ev-noop", "noop", rate, secs).await;
        // A real collector: csv-collector parses the object itself.
        run(&c, "ev-csv", "csv-collector", rate, secs).await;
    });
}
