//! Exhaustion attacks on a running host while legitimate traffic goes on
//! (`scripts/attack.sh` starts a host and runs this against it).
//!
//! For `SECONDS`, three things at once:
//! - **slow drip**: `DRIPS` connections from 127.0.0.2, each sending a request head with a wrong token and a
//!   1 MB `Content-Length`, then one body byte every 100 ms; a connection the host answers or
//!   closes is replaced by a new one;
//! - **upload flood**: `FLOODERS` tasks with a valid token, each PUTting 16 MiB objects in a loop
//!   as fast as the host takes them;
//! - **legitimate traffic**: 4 tasks alternating an authenticated `GET /v1/info` (a health
//!   check with a token) and an invoke of `dedup` on a small CSV, one request at a time.
//!
//! It prints one JSON object: per legitimate kind, requests, failures and p50/p99/max latency;
//! the drip connections opened and how they were answered; the uploads by status.
//!
//! Usage: attack URL TOKEN [SECONDS=30] [DRIPS=500] [FLOODERS=16]

use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CSV: &str = "k,v\n1,a\n1,a\n2,b\n";
const UPLOAD_BYTES: usize = 16 << 20;

#[derive(Default)]
struct Tally {
    statuses: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn add(&self, what: impl Into<String>) {
        *self
            .statuses
            .lock()
            .unwrap()
            .entry(what.into())
            .or_default() += 1;
    }
    fn json(&self) -> serde_json::Value {
        serde_json::json!(*self.statuses.lock().unwrap())
    }
}

struct Legit {
    ok: AtomicU64,
    failed: AtomicU64,
    latency: Mutex<Histogram<u64>>,
}

impl Legit {
    fn new() -> Self {
        Legit {
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            latency: Mutex::new(Histogram::new(3).unwrap()),
        }
    }
    fn json(&self) -> serde_json::Value {
        let h = self.latency.lock().unwrap();
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1e3;
        serde_json::json!({
            "ok": self.ok.load(Ordering::Relaxed),
            "failed": self.failed.load(Ordering::Relaxed),
            "p50_ms": ms(0.5), "p99_ms": ms(0.99), "max_ms": h.max() as f64 / 1e3,
        })
    }
}

/// One drip connection, from head to the host's answer (or close).
async fn drip(addr: String, i: u64, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let Ok(mut s) = connect_from_attacker(&addr).await else {
        tally.add("connect failed");
        return;
    };
    let head = format!(
        "PUT /v1/objects/drip-{i} HTTP/1.1\r\nhost: aimass\r\nauthorization: Bearer wrong-{i}\r\n\
         content-length: 1000000\r\n\r\n"
    );
    if s.write_all(head.as_bytes()).await.is_err() {
        tally.add("closed at once");
        return;
    }
    let (mut r, mut w) = s.into_split();
    let dripper = tokio::spawn(async move {
        while w.write_all(b"x").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut head = [0u8; 12];
    let answer = tokio::select! {
        read = r.read_exact(&mut head) => match read {
            Ok(_) => String::from_utf8_lossy(&head[9..12]).to_string(),
            Err(_) => "closed".to_string(),
        },
        () = wait_for(&stop) => "still open at the end".to_string(),
    };
    dripper.abort();
    tally.add(answer);
}

/// Connects from 127.0.0.2, so the host counts the drips' failed authentications against
/// another address than the legitimate traffic's (as it would for a remote attacker).
async fn connect_from_attacker(addr: &str) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind("127.0.0.2:0".parse().unwrap())?;
    socket
        .connect(addr.parse().map_err(std::io::Error::other)?)
        .await
}

async fn wait_for(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn flood(
    http: reqwest::Client,
    url: String,
    token: String,
    n: u64,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let body = bytes::Bytes::from(vec![b'u'; UPLOAD_BYTES]);
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let r = http
            .put(format!("{url}/v1/objects/flood/{n}-{}", i % 4))
            .bearer_auth(&token)
            .body(body.clone())
            .send()
            .await;
        match r {
            Ok(r) => tally.add(r.status().as_u16().to_string()),
            Err(_) => tally.add("error"),
        }
        i += 1;
    }
}

async fn legit(
    http: reqwest::Client,
    url: String,
    token: String,
    stop: Arc<AtomicBool>,
    info: Arc<Legit>,
    invoke: Arc<Legit>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let (kind, req) = if n.is_multiple_of(2) {
            (&info, http.get(format!("{url}/v1/info")))
        } else {
            let r = http
                .post(format!("{url}/v1/plugins/dedup/invoke"))
                .header("content-type", "text/csv")
                .body(CSV);
            (&invoke, r)
        };
        let t0 = Instant::now();
        let ok = matches!(req.bearer_auth(&token).send().await, Ok(r) if r.status().is_success());
        if ok {
            kind.ok.fetch_add(1, Ordering::Relaxed);
            let us = t0.elapsed().as_micros() as u64;
            kind.latency.lock().unwrap().record(us.max(1)).ok();
        } else {
            kind.failed.fetch_add(1, Ordering::Relaxed);
        }
        n += 1;
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .expect("usage: attack URL TOKEN [SECONDS] [DRIPS] [FLOODERS]")
        .clone();
    let token = args.get(2).expect("a token").clone();
    let num = |i: usize, d: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (secs, drips, flooders) = (num(3, 30), num(4, 500), num(5, 16));
    let addr = url.trim_start_matches("http://").to_string();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (drip_tally, flood_tally) = (Arc::new(Tally::default()), Arc::new(Tally::default()));
    let (info, invoke) = (Arc::new(Legit::new()), Arc::new(Legit::new()));
    let opened = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for slot in 0..drips {
        let (addr, stop, tally, opened) = (
            addr.clone(),
            stop.clone(),
            drip_tally.clone(),
            opened.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let i = opened.fetch_add(1, Ordering::Relaxed);
                drip(addr.clone(), i * 1000 + slot, stop.clone(), tally.clone()).await;
            }
        }));
    }
    for n in 0..flooders {
        tasks.push(tokio::spawn(flood(
            http.clone(),
            url.clone(),
            token.clone(),
            n,
            stop.clone(),
            flood_tally.clone(),
        )));
    }
    for _ in 0..4 {
        tasks.push(tokio::spawn(legit(
            http.clone(),
            url.clone(),
            token.clone(),
            stop.clone(),
            info.clone(),
            invoke.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(70), t).await;
    }
    let summary = serde_json::json!({
        "seconds": secs,
        "authenticated_info": info.json(),
        "invoke": invoke.json(),
        "drip_connections": opened.load(Ordering::Relaxed),
        "drip_answers": drip_tally.json(),
        "uploads": flood_tally.json(),
    });
    println!("{}", serde_json::to_string_pretty(&summary).unwrap());
}
