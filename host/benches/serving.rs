//! Open Inference Protocol serving over HTTP: the breast-cancer logistic-regression model (trained
//! by the bundled trainer on the shipped CSV, through a real training job) answers batch-1
//! `POST /v2/models/breast-cancer/infer` requests from `C` concurrent keep-alive clients for a
//! few seconds, with dynamic batching off and then on. Reports rps and latency p50/p99 per
//! concurrency. The load generator runs in the same process on its own runtime (2 threads), so
//! on a 2-core machine client and server share the CPUs, as they would with any local load tool.
//!
//! Run: `cargo bench -p aimass --bench serving -- [SECONDS]` (default 5 per case).

use aimass::client::Client;
use aimass::config::HostConfig;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-admin-token-of-at-least-32-chars";
const CSV: &str = include_str!("../../examples/data/breast-cancer.csv");

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

async fn prepare(base: &str) {
    let c = Client::new(base, Some(TOKEN.to_string())).unwrap();
    let part = c
        .request(reqwest::Method::POST, "/v1/datasets/bc/parts")
        .header("content-type", "text/csv")
        .body(CSV);
    c.send(part).await.unwrap();
    let req = json!({"model": "breast-cancer", "trainer": "logistic-regression", "dataset": "bc", "label": "label"});
    let job = c.train(&req).await.unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    loop {
        let job = c.job(&id).await.unwrap();
        match job["state"].as_str().unwrap() {
            "succeeded" => return,
            "failed" => panic!("{job}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// `concurrency` clients for `secs`: (rps, p50 ms, p99 ms, errors).
async fn load(
    url: &str,
    body: Arc<String>,
    concurrency: usize,
    secs: u64,
) -> (f64, f64, f64, usize) {
    let until = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (url, body) = (url.to_string(), body.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let (mut ms, mut errors) = (Vec::new(), 0usize);
                while Instant::now() < until {
                    let t = Instant::now();
                    let r = http
                        .post(&url)
                        .bearer_auth(TOKEN)
                        .header("content-type", "application/json")
                        .body(body.as_bytes().to_vec())
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status().is_success() => {
                            r.bytes().await.unwrap();
                            ms.push(t.elapsed().as_secs_f64() * 1e3);
                        }
                        _ => errors += 1,
                    }
                }
                (ms, errors)
            })
        })
        .collect();
    let started = Instant::now();
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (ms, e) = t.await.unwrap();
        all.extend(ms);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    (
        all.len() as f64 / elapsed,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        errors,
    )
}

fn main() {
    let secs: u64 = std::env::args()
        .filter_map(|a| a.parse().ok())
        .next()
        .unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let server = aimass::server::runtime_builder().build().unwrap();
    let running = server
        .block_on(aimass::server::start(HostConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            store_url: format!("file://{}", dir.path().join("store").display()),
            data_dir: dir.path().join("data"),
            admin_token: Some(TOKEN.into()),
            ..HostConfig::default()
        }))
        .unwrap();
    let base = format!("http://{}", running.addr);
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    client.block_on(async {
        let http = reqwest::Client::new();
        prepare(&base).await;
        let row: Vec<f64> = CSV.lines().nth(1).unwrap().split(',').take(30).map(|v| v.parse().unwrap()).collect();
        let body = Arc::new(json!({"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32", "data": row}]}).to_string());
        let url = format!("{base}/v2/models/breast-cancer/infer");
        load(&url, body.clone(), 4, 1).await; // warm-up
        println!("OIP infer, breast-cancer logistic regression, batch 1, {secs} s per case:");
        for batching in [Value::Null, json!({"max_batch_size": 64, "max_queue_delay_us": 200})] {
            let r = http
                .put(format!("{base}/v1/models/breast-cancer/batching"))
                .bearer_auth(TOKEN)
                .body(batching.to_string())
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            for c in [1, 16, 64] {
                let (rps, p50, p99, errors) = load(&url, body.clone(), c, secs).await;
                let mode = if batching.is_null() { "batching off".to_string() } else { format!("batching {batching}") };
                println!(
                    "{{\"concurrency\":{c},\"batching\":{},\"rps\":{rps:.0},\"p50_ms\":{p50:.3},\"p99_ms\":{p99:.3},\"errors\":{errors}}}  # {mode}",
                    !batching.is_null()
                );
            }
        }
        let stats: Value =
            http.get(format!("{base}/v1/models/breast-cancer")).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
        println!("batching counters: {}", stats["batching_stats"]);
    });
}
