//! Soak load for a running host (`scripts/soak.sh` starts one and runs this against it).
//!
//! Four kinds of traffic at once — a plugin invoke (`dedup` on CSV), an HTTP function
//! (`/fn/hello`), an OIP infer (the iris model) and object puts under a hook's prefix — first
//! as fast as they go (closed loop) to measure the maximum rate of the mix (for the hook: the
//! events it processed meanwhile), then open loop at a fraction of each kind's measured rate for
//! the soak. Every window it reports per-kind counts, errors and p50/p99, the host's RSS and the
//! allocator's share of it (live bytes against resident ones: a leak grows the first), the
//! client connections open to it, and the instance-pool slots in use; at the end it checks that
//! the pool is back to 0 slots when idle and that every hook event was processed. Connections
//! are reported because each open one holds ~27 KiB of host memory: a latency spike makes the
//! load's client open hundreds more, which it then keeps open, and RSS steps up with them
//! (CHANGELOG.md, load and soak).
//!
//! Usage: soak URL TOKEN HOST_PID [SECONDS=600] [FRACTION=0.8] [WINDOW_S=60] [PROBE_S=15]
//!
//! `AIMASS_SOAK_KEYS=N` puts the hook objects under N keys in rotation (each put a new version
//! that replaces the parts of the one before) instead of a new key each time: the host's state
//! then stays bounded, so RSS growth measures leaks rather than the per-object index.

use aimass::client::Client;
use hdrhistogram::Histogram;
use reqwest::Method;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KINDS: [&str; 4] = ["invoke", "fn", "infer", "hook"];
const CSV: &str = "k,v\n1,a\n1,a\n2,b\n";
const INFER: &str =
    r#"{"inputs":[{"name":"X","shape":[1,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2]}]}"#;
/// Closed-loop workers per kind while measuring the maximum rate.
const PROBE_WORKERS: usize = 8;
/// Most requests of one kind in flight in the open loop; beyond it a tick counts as an error.
const MAX_IN_FLIGHT: usize = 512;

struct Load {
    client: Client,
    seq: AtomicU64,
    /// Hook objects rotate over this many keys (0: a new key per put).
    keys: u64,
}

impl Load {
    /// One request of `kind`; Ok(latency) on a 2xx.
    async fn one(&self, kind: usize) -> Result<Duration, String> {
        let t0 = Instant::now();
        let r = match KINDS[kind] {
            "invoke" => self
                .client
                .request(Method::POST, "/v1/plugins/dedup/invoke")
                .header("content-type", "text/csv")
                .body(CSV),
            "fn" => self.client.request(Method::GET, "/fn/hello/"),
            "infer" => self
                .client
                .request(Method::POST, "/v2/models/iris/infer")
                .header("content-type", "application/json")
                .body(INFER),
            _ => {
                let n = self.seq.fetch_add(1, Ordering::Relaxed);
                let key = if self.keys > 0 { n % self.keys } else { n };
                self.client
                    .request(Method::PUT, &format!("/v1/objects/soak/{key:09}.csv"))
                    .body(format!("n,v\n{n},1\n"))
            }
        };
        // Sent as is: the load counts every status itself.
        let resp = r.send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(t0.elapsed())
        } else {
            Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
        }
    }

    async fn metric(&self, name: &str) -> f64 {
        let body = (self.client)
            .send_bytes(self.client.request(Method::GET, "/metrics"))
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&body);
        // The sum over the series' labels; a series that is not exported is an error, never 0.
        let values: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .collect();
        assert!(!values.is_empty(), "no series {name} in /metrics");
        values.iter().sum()
    }

    async fn put(&self, path: &str, body: Vec<u8>) {
        let put = self.client.request(Method::PUT, path).body(body);
        if let Err(e) = self.client.send(put).await {
            panic!("PUT {path}: {e}");
        }
    }
}

/// Per-kind results of one window.
#[derive(Clone)]
struct Window {
    ok: [u64; 4],
    errors: [u64; 4],
    hist: Vec<Histogram<u64>>,
}

impl Window {
    fn new() -> Window {
        Window {
            ok: [0; 4],
            errors: [0; 4],
            hist: (0..4)
                .map(|_| Histogram::new_with_bounds(1, 60_000_000, 3).unwrap())
                .collect(),
        }
    }

    fn record(&mut self, kind: usize, r: &Result<Duration, String>) {
        match r {
            Ok(d) => {
                self.ok[kind] += 1;
                let _ = self.hist[kind].record(d.as_micros().max(1) as u64);
            }
            Err(e) => {
                if self.errors[kind] < 3 {
                    eprintln!("{} error: {e}", KINDS[kind]);
                }
                self.errors[kind] += 1;
            }
        }
    }
}

fn rss_mib(pid: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<f64>()
        .unwrap()
        / 1024.0
}

/// Established TCP connections to the host's `port` (from `/proc/net/tcp{,6}`).
fn connections(port: u16) -> usize {
    let local = format!(":{port:04X}");
    let established = |table: String| {
        table
            .lines()
            .skip(1)
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && f[1].ends_with(&local) && f[3] == "01"
            })
            .count()
    };
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .map(established)
        .sum()
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or(default.into());
    let (url, token, pid) = (arg(1, ""), arg(2, ""), arg(3, ""));
    assert!(
        !pid.is_empty(),
        "usage: soak URL TOKEN HOST_PID [SECONDS] [FRACTION] [WINDOW_S] [PROBE_S]"
    );
    let seconds: u64 = arg(4, "600").parse().unwrap();
    let fraction: f64 = arg(5, "0.8").parse().unwrap();
    let window_s: u64 = arg(6, "60").parse().unwrap();
    let probe_s: u64 = arg(7, "15").parse().unwrap();
    let port = url::Url::parse(&url)
        .expect("URL")
        .port_or_known_default()
        .unwrap();
    let load = Arc::new(Load {
        client: Client::with_http(
            reqwest::Client::builder()
                .pool_max_idle_per_host(1024)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            &url,
            Some(token),
        ),
        seq: AtomicU64::new(0),
        keys: std::env::var("AIMASS_SOAK_KEYS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    });

    // Set-up: the function, the model, the hook.
    let hello = std::fs::read(aimass::bundled::wasm_path("hello-fn")).unwrap();
    load.put("/v1/plugins/hello", hello).await;
    let iris = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/sklearn-iris-logreg.onnx"
    ))
    .unwrap();
    load.put("/v1/models/iris", iris).await;
    let hook = r#"{"plugin": "csv-collector", "prefix": "soak/", "output": "soak-raw"}"#;
    load.put("/v1/hooks/soak", hook.as_bytes().to_vec()).await;

    // Maximum rate of the mix: every kind as fast as it goes, at the same time. The hook's rate
    // is what it processed meanwhile, not how many puts were answered: its work runs behind the
    // puts, and a soak above its processing rate only grows a backlog.
    let processed0 = load.metric("aimass_hook_processed_events").await;
    let done: Arc<[AtomicU64; 4]> = Arc::new(Default::default());
    let until = Instant::now() + Duration::from_secs(probe_s);
    let mut workers = Vec::new();
    for kind in 0..4 {
        for _ in 0..PROBE_WORKERS {
            let (load, done) = (load.clone(), done.clone());
            workers.push(tokio::spawn(async move {
                while Instant::now() < until {
                    if load.one(kind).await.is_ok() {
                        done[kind].fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    for w in workers {
        w.await.unwrap();
    }
    let processed = load.metric("aimass_hook_processed_events").await - processed0;
    let mut max: Vec<f64> = (0..4)
        .map(|k| done[k].load(Ordering::Relaxed) as f64 / probe_s as f64)
        .collect();
    max[3] = max[3].min(processed / probe_s as f64);
    // Start the soak from an empty backlog.
    let t_drain = Instant::now();
    while load.metric("aimass_hook_pending_events").await > 0.0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "max rate of the mix (closed loop, {PROBE_WORKERS} workers per kind, {probe_s} s; the \
         hook as processed meanwhile, its backlog then drained in {:.1} s): {}",
        t_drain.elapsed().as_secs_f64(),
        fmt_rates(&max)
    );
    let rate: Vec<f64> = max.iter().map(|m| m * fraction).collect();
    println!(
        "soak at {:.0}%: {} for {seconds} s",
        fraction * 100.0,
        fmt_rates(&rate)
    );

    // The soak: open loop per kind, results collected per window.
    let current = Arc::new(Mutex::new(Window::new()));
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut tickers = Vec::new();
    for (kind, &r) in rate.iter().enumerate() {
        let (load, current) = (load.clone(), current.clone());
        let gate = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
        tickers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / r.max(0.1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut tasks = tokio::task::JoinSet::new();
            while Instant::now() < end {
                tick.tick().await;
                let Ok(permit) = gate.clone().try_acquire_owned() else {
                    current
                        .lock()
                        .unwrap()
                        .record(kind, &Err("over capacity".into()));
                    continue;
                };
                let (load, current) = (load.clone(), current.clone());
                tasks.spawn(async move {
                    let r = load.one(kind).await;
                    current.lock().unwrap().record(kind, &r);
                    drop(permit);
                });
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        }));
    }
    let mut windows: Vec<(Window, f64, f64, usize)> = Vec::new();
    let mut pool_max = 0.0f64;
    let (mut total_ok, mut total_err) = (0u64, 0u64);
    println!(
        "window | rps invoke/fn/infer/hook | errors | p99 ms invoke/fn/infer/hook | RSS MiB | heap MiB allocated/resident | connections | pool slots in use"
    );
    while Instant::now() < end {
        let next = Instant::now() + Duration::from_secs(window_s).min(end - Instant::now());
        // Sample pool occupancy through the window.
        while Instant::now() < next {
            pool_max = pool_max.max(load.metric("aimass_instance_pool_in_use").await);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let w = std::mem::replace(&mut *current.lock().unwrap(), Window::new());
        let rss = rss_mib(&pid);
        let conns = connections(port);
        let pool = load.metric("aimass_instance_pool_in_use").await;
        let heap = |kind: &'static str| {
            let load = load.clone();
            async move {
                let name = format!("aimass_allocator_bytes{{kind=\"{kind}\"}}");
                load.metric(&name).await / f64::from(1 << 20)
            }
        };
        let (allocated, resident) = (heap("allocated").await, heap("resident").await);
        let secs = window_s as f64;
        total_ok += w.ok.iter().sum::<u64>();
        total_err += w.errors.iter().sum::<u64>();
        println!(
            "{:>6} | {} | {} | {} | {rss:.0} | {allocated:.0}/{resident:.0} | {conns} | {pool}",
            windows.len() + 1,
            (0..4)
                .map(|k| format!("{:.0}", w.ok[k] as f64 / secs))
                .collect::<Vec<_>>()
                .join("/"),
            w.errors.iter().sum::<u64>(),
            (0..4)
                .map(|k| format!("{:.2}", ms(w.hist[k].value_at_quantile(0.99))))
                .collect::<Vec<_>>()
                .join("/"),
        );
        windows.push((w, rss, pool, conns));
    }
    for t in tickers {
        t.await.unwrap();
    }
    let w = std::mem::replace(&mut *current.lock().unwrap(), Window::new());
    total_ok += w.ok.iter().sum::<u64>();
    total_err += w.errors.iter().sum::<u64>();
    let hooked = done[3].load(Ordering::Relaxed)
        + w.ok[3]
        + windows.iter().map(|(w, ..)| w.ok[3]).sum::<u64>();

    // Idle: the pool drains to 0 and the hook processes everything it was given.
    let drain = Instant::now();
    let (pending, pool_idle) = loop {
        let pending = load.metric("aimass_hook_pending_events").await;
        let pool = load.metric("aimass_instance_pool_in_use").await;
        if (pending == 0.0 && pool == 0.0) || drain.elapsed() > Duration::from_secs(120) {
            break (pending, pool);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let dead_letters = load.metric("aimass_hook_dead_letters").await;
    let rows: serde_json::Value = load.client.dataset("soak-raw").await.unwrap();

    let (first, last) = (windows.first().unwrap(), windows.last().unwrap());
    let rss_growth = (last.1 / first.1 - 1.0) * 100.0;
    println!("\nsummary");
    println!(
        "requests: {} ok, {total_err} failed (error rate {:.4}%)",
        total_ok,
        total_err as f64 * 100.0 / (total_ok + total_err).max(1) as f64
    );
    println!(
        "RSS: {:.0} MiB after window 1, {:.0} MiB after the last ({rss_growth:+.1}%), with {} \
         and {} client connections open",
        first.1, last.1, first.3, last.3
    );
    for (k, kind) in KINDS.iter().enumerate() {
        let (a, b) = (
            ms(first.0.hist[k].value_at_quantile(0.99)),
            ms(last.0.hist[k].value_at_quantile(0.99)),
        );
        println!(
            "p99 {kind}: window 1 {a:.2} ms, last {b:.2} ms (drift {:+.2} ms); p50 last {:.2} ms",
            b - a,
            ms(last.0.hist[k].value_at_quantile(0.5))
        );
    }
    println!(
        "instance pool: at most {pool_max} slots in use during the soak, {pool_idle} when idle"
    );
    let keys = match load.keys {
        0 => "a new key each".to_string(),
        k => format!("{k} keys in rotation"),
    };
    println!(
        "hook: {hooked} objects put ({keys}), {} rows in soak-raw, {pending} events pending after \
         the drain, {dead_letters} dead letters",
        rows["rows"]
    );
    // The same figures for scripts and tests, by name.
    let summary = serde_json::json!({
        "requests_ok": total_ok, "requests_failed": total_err,
        "pool_max": pool_max, "pool_idle": pool_idle,
        "hook_puts": hooked, "keys": load.keys, "rows": rows["rows"],
        "pending": pending, "dead_letters": dead_letters, "rss_growth_percent": rss_growth,
    });
    println!("summary-json: {summary}");
}

fn fmt_rates(r: &[f64]) -> String {
    (0..4)
        .map(|k| format!("{} {:.0}/s", KINDS[k], r[k]))
        .collect::<Vec<_>>()
        .join(", ")
}
