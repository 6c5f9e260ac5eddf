//! Crash consistency of the real binary: `kill -9` at random points (seeded, printed) while
//! plugins are uploaded, dataset parts written, models published and pipeline runs started,
//! while a hook works through 1000 queued events — 20 times on one data dir. After every restart the host
//! must start cleanly and everything it acknowledged must be there, whole; at the end every
//! acknowledged event has been processed exactly once and every acknowledged run has finished.
//! Also: the S3 server (Garage) restarted while a hook works through its queue.

use crate::common;

use common::binary::{Up, admin_token, up_on};
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KILLS: u64 = 20;
/// Objects put under the hook's prefix before the first kill.
const EVENTS: u64 = 1000;
const IRIS: &[u8] = include_bytes!("../data/sklearn-iris-logreg.onnx");

/// What the host acknowledged (a 2xx) before it was killed.
#[derive(Default, Clone)]
struct Acked {
    plugin_versions: BTreeSet<u64>,
    part_ids: BTreeSet<u64>,
    model_versions: BTreeSet<u64>,
    runs: BTreeSet<String>,
    objects: BTreeSet<u64>,
    /// Answers that were neither a success nor an allowed refusal (a 5xx above all): failures
    /// of the host, unlike the transport errors its kill causes.
    failures: Vec<String>,
}

struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Client {
    fn new(up: &Up, token: &str) -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            url: up.url.clone(),
            token: token.to_string(),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
    ) -> reqwest::Result<(u16, Value)> {
        let r = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header("content-type", "text/csv")
            .body(body)
            .send()
            .await?;
        let status = r.status().as_u16();
        let bytes = r.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    async fn get(&self, path: &str) -> Value {
        self.get_opt(path)
            .await
            .unwrap_or_else(|| panic!("GET {path}: 404"))
    }

    /// GET, `None` on 404.
    async fn get_opt(&self, path: &str) -> Option<Value> {
        let (status, v) = self
            .send(reqwest::Method::GET, path, Vec::new())
            .await
            .unwrap();
        if status == 404 {
            return None;
        }
        assert_eq!(status, 200, "GET {path}: {v}");
        Some(v)
    }
}

/// The numbers in a JSON array of objects' `field`.
fn numbers(v: &Value, field: &str) -> Vec<u64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x[field].as_u64().unwrap())
        .collect()
}

/// One cycle's workload, each stream in a loop until the host dies under it.
/// One request of a workload loop: `Some(body)` on success; `None` on a transport error (the
/// kill), which ends the loop. Any other answer is recorded as a failure (the loop goes on),
/// except a 429 where `busy_ok` (a documented cap, not a fault).
async fn step(
    c: &Client,
    acked: &Mutex<Acked>,
    method: reqwest::Method,
    path: &str,
    body: Vec<u8>,
    busy_ok: bool,
) -> Option<Option<Value>> {
    let (status, v) = c.send(method.clone(), path, body).await.ok()?;
    if (200..300).contains(&status) {
        return Some(Some(v));
    }
    if !(busy_ok && status == 429) {
        let failure = format!("{method} {path}: {status} {v}");
        acked.lock().unwrap().failures.push(failure);
    }
    Some(None)
}

async fn workload(c: Arc<Client>, cycle: u64, acked: Arc<Mutex<Acked>>) {
    // Two different components in turn, so every upload is a new version.
    let wasm = [common::wasm("noop"), common::wasm("hostile")];
    let put = reqwest::Method::PUT;
    let uploads = async {
        for i in 0.. {
            let body = wasm[i % 2].clone();
            let Some(answer) =
                step(&c, &acked, put.clone(), "/v1/plugins/churn", body, false).await
            else {
                break;
            };
            if let Some(v) = answer {
                let version = v["version"].as_u64().unwrap();
                acked.lock().unwrap().plugin_versions.insert(version);
            }
        }
    };
    let parts = async {
        for seq in 0.. {
            let id = cycle * 1_000_000 + seq;
            let body = format!("id,v\n{id},{}\n", id * 3).into_bytes();
            let path = "/v1/datasets/crash-ds/parts";
            let Some(answer) = step(&c, &acked, reqwest::Method::POST, path, body, false).await
            else {
                break;
            };
            if answer.is_some() {
                acked.lock().unwrap().part_ids.insert(id);
            }
        }
    };
    let models = async {
        let path = "/v1/models/crash-iris?alias=production";
        while let Some(answer) = step(&c, &acked, put.clone(), path, IRIS.to_vec(), false).await {
            if let Some(v) = answer {
                let version = v["version"].as_u64().unwrap();
                acked.lock().unwrap().model_versions.insert(version);
            }
        }
    };
    let runs = async {
        // One run per life; past 16 queued runs a start is refused (429), which is allowed.
        let path = "/v1/pipelines/crash-pipe/runs";
        let answer = step(&c, &acked, reqwest::Method::POST, path, Vec::new(), true).await;
        if let Some(Some(v)) = answer {
            let id = v["id"].as_str().unwrap().to_string();
            acked.lock().unwrap().runs.insert(id);
        }
    };
    tokio::join!(uploads, parts, models, runs);
}

/// Everything acknowledged so far is there and whole; what exists but was not acknowledged
/// (in flight at the kill) must be whole too.
async fn check(c: &Client, acked: &Acked) {
    // Plugin versions: all listed, and the live one runs.
    match c.get_opt("/v1/plugins/churn").await {
        None => assert!(acked.plugin_versions.is_empty(), "plugin churn lost"),
        Some(p) => {
            let versions: BTreeSet<u64> = numbers(&p["versions"], "version").into_iter().collect();
            assert!(
                acked.plugin_versions.is_subset(&versions),
                "acknowledged plugin versions {:?} missing from {versions:?}",
                acked
                    .plugin_versions
                    .difference(&versions)
                    .collect::<Vec<_>>()
            );
            let (status, v) = c
                .send(
                    reqwest::Method::POST,
                    "/v1/plugins/churn/invoke",
                    b"a\n1\n".to_vec(),
                )
                .await
                .unwrap();
            assert_eq!(status, 200, "{v}");
        }
    }

    // Dataset parts: every acknowledged id once, no id twice, every row readable.
    match c.get_opt("/v1/datasets/crash-ds/rows?limit=1000000").await {
        None => assert!(acked.part_ids.is_empty(), "dataset crash-ds lost"),
        Some(rows) => {
            let ids = numbers(&rows, "id");
            let unique: BTreeSet<u64> = ids.iter().copied().collect();
            assert_eq!(unique.len(), ids.len(), "a dataset row is duplicated");
            assert!(
                acked.part_ids.is_subset(&unique),
                "{} acknowledged parts missing",
                acked.part_ids.difference(&unique).count()
            );
        }
    }

    // Models: every acknowledged version listed, the alias on a listed version, and every
    // version loads and answers, by number and through the alias.
    let Some(m) = c.get_opt("/v1/models/crash-iris").await else {
        assert!(acked.model_versions.is_empty(), "model crash-iris lost");
        return;
    };
    let versions: BTreeSet<u64> = numbers(&m["versions"], "version").into_iter().collect();
    assert!(acked.model_versions.is_subset(&versions), "{m}");
    if let Some(alias) = m["aliases"]["production"].as_u64() {
        assert!(versions.contains(&alias), "alias on a missing version: {m}");
    }
    let infer = json!({"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32",
        "data": [5.1, 3.5, 1.4, 0.2]}]});
    let refs = versions
        .iter()
        .map(u64::to_string)
        .chain(["production".to_string()]);
    for v in refs {
        let r = c
            .http
            .post(format!("{}/v2/models/crash-iris/versions/{v}/infer", c.url))
            .bearer_auth(&c.token)
            .json(&infer)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "version {v}: {}", r.text().await.unwrap());
    }
}

/// The pipeline and its training data; the hook, with its 1000 events queued (while paused) and
/// then let go, so the kills land while it works through them.
async fn setup(c: &Client, acked: &Mutex<Acked>) {
    let spec = json!({"plugin": "csv-collector", "prefix": "crash/", "output": "crash-raw"});
    let (s, v) = c
        .send(
            reqwest::Method::PUT,
            "/v1/hooks/crash-hook",
            spec.to_string().into_bytes(),
        )
        .await
        .unwrap();
    assert!(s == 200 || s == 201, "{v}");
    let pause = c
        .send(
            reqwest::Method::POST,
            "/v1/hooks/crash-hook/pause",
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(pause.0, 200, "{}", pause.1);
    futures::stream::iter(0..EVENTS)
        .map(|n| async move {
            let body = format!("n,v\n{n},{}\n", n * 2).into_bytes();
            let path = format!("/v1/objects/crash/{n:05}.csv");
            let (s, v) = c.send(reqwest::Method::PUT, &path, body).await.unwrap();
            assert_eq!(s, 201, "{v}");
            n
        })
        .buffer_unordered(16)
        .for_each(|n| {
            acked.lock().unwrap().objects.insert(n);
            async {}
        })
        .await;
    let cancer = common::pipelines::cancer_csv();
    let (s, v) = c
        .send(
            reqwest::Method::POST,
            "/v1/datasets/crash-train/parts",
            cancer.into_bytes(),
        )
        .await
        .unwrap();
    assert!(s == 200 || s == 201, "{v}");
    let pipeline = "[source]\ndataset = \"crash-train\"\n\n[train]\nmodel = \"crash-pipe-model\"\n\
        trainer = \"logistic-regression\"\nlabel = \"label\"\n\n[runs]\nmax_concurrent = 1\n";
    let r = c
        .http
        .put(format!("{}/v1/pipelines/crash-pipe", c.url))
        .bearer_auth(&c.token)
        .header("content-type", "application/toml")
        .body(pipeline)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    // Let the hook go last, so the first kill lands 100–800 ms into its work.
    let resume = c
        .send(
            reqwest::Method::POST,
            "/v1/hooks/crash-hook/resume",
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(resume.0, 200, "{}", resume.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kills_lose_nothing_acknowledged_and_leave_nothing_partial() {
    let _turn = crate::common::serial::heavy().await;
    let seed: u64 = std::env::var("AIMASS_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash seed {seed} (AIMASS_CRASH_SEED={seed} repeats this run)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut starts = Vec::new();
    // Kills after which events were still queued: they landed during the hook's work.
    let mut during_events = 0;
    for cycle in 0..KILLS {
        let t0 = Instant::now();
        let mut host = up_on(dir.path(), None);
        if cycle > 0 {
            // The first start compiles the bundled plugins; restarts load them from the cache.
            starts.push(t0.elapsed());
        }
        let c = Arc::new(Client::new(&host, &admin_token(&data)));
        if cycle > 0 && c.get("/v1/hooks/crash-hook").await["pending"].as_u64() > Some(0) {
            during_events += 1;
        }
        if cycle == 0 {
            setup(&c, &acked).await;
        } else {
            let so_far = acked.lock().unwrap_or_else(|e| e.into_inner()).clone();
            check(&c, &so_far).await;
        }
        let delay = Duration::from_millis(rng.random_range(100..800));
        let work = tokio::spawn(workload(c.clone(), cycle, acked.clone()));
        tokio::time::sleep(delay).await;
        host.child.kill().unwrap(); // SIGKILL
        host.child.wait().unwrap();
        // Every loop ends at its first transport error after the kill; a panic in one fails here.
        tokio::time::timeout(Duration::from_secs(30), work)
            .await
            .expect("the workload stops once the host is gone")
            .expect("the workload ran without a panic");
    }

    // The last start: check, then let the queued work finish.
    let t0 = Instant::now();
    let host = up_on(dir.path(), None);
    starts.push(t0.elapsed());
    let c = Client::new(&host, &admin_token(&data));
    let acked = acked.lock().unwrap().clone();
    check(&c, &acked).await;
    let left = c.get("/v1/hooks/crash-hook").await["pending"].clone();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let h = c.get("/v1/hooks/crash-hook").await;
        let runs = c.get("/v1/pipelines/crash-pipe/runs").await;
        let active = runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| !common::pipelines::ended(r))
            .count();
        if h["pending"] == 0 && active == 0 {
            assert_eq!(h["dead_lettered"], 0, "{h}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "work did not finish: {h}\n{runs}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every object that exists was processed exactly once; every acknowledged one exists.
    let store = aimass::platform::storage::Storage::open(
        &format!("file://{}", dir.path().join("store").display()),
        &Default::default(),
    )
    .unwrap();
    let existing: BTreeSet<u64> = store
        .list("crash/")
        .await
        .unwrap()
        .iter()
        .map(|k| k["crash/".len()..k.len() - 4].parse().unwrap())
        .collect();
    assert!(acked.objects.is_subset(&existing));
    let rows = c.get("/v1/datasets/crash-raw/rows?limit=1000000").await;
    let mut count: HashMap<u64, u32> = HashMap::new();
    for n in numbers(&rows, "n") {
        *count.entry(n).or_default() += 1;
    }
    let twice: Vec<_> = count.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "objects processed twice: {twice:?}");
    let seen: BTreeSet<u64> = count.keys().copied().collect();
    assert_eq!(seen, existing, "every object processed, none invented");

    // Every acknowledged run finished; none failed because of a kill.
    let runs = c.get("/v1/pipelines/crash-pipe/runs").await;
    let by_id: HashMap<String, Value> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r.clone()))
        .collect();
    for id in &acked.runs {
        let r = by_id.get(id).unwrap_or_else(|| panic!("run {id} lost"));
        assert_eq!(r["state"], "succeeded", "{r:#}");
    }
    let model = c.get("/v1/models/crash-pipe-model").await;
    let alias = model["aliases"]["production"].as_u64().unwrap();
    assert!(numbers(&model["versions"], "version").contains(&alias));

    assert!(
        acked.failures.is_empty(),
        "the host failed requests: {:#?}",
        acked.failures
    );
    for (what, n) in [
        ("plugin versions", acked.plugin_versions.len()),
        ("dataset parts", acked.part_ids.len()),
        ("model versions", acked.model_versions.len()),
        ("pipeline runs", acked.runs.len()),
        ("objects", acked.objects.len()),
    ] {
        assert!(
            n > 0,
            "no {what} were acknowledged: the workload did not run"
        );
    }
    assert!(
        during_events >= 1,
        "no kill landed while hook events were queued, so none tested recovery of queued work"
    );
    starts.sort();
    let (median, max_start) = (starts[starts.len() / 2], starts[starts.len() - 1]);
    eprintln!(
        "{KILLS} kills: acknowledged before the kills: {} plugin versions, {} dataset parts, \
         {} model versions, {} pipeline runs, {} objects; all present and whole after every \
         restart; {during_events} kills landed with events still queued, {left} still pending \
         at the last start; all {} objects processed \
         exactly once; restart to listening: median \
         {:.2} s, slowest {:.2} s",
        acked.plugin_versions.len(),
        acked.part_ids.len(),
        acked.model_versions.len(),
        acked.runs.len(),
        acked.objects.len(),
        existing.len(),
        median.as_secs_f64(),
        max_start.as_secs_f64(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garage_restart_pauses_hook_work_which_then_completes() {
    let _turn = crate::common::serial::heavy().await;
    const N: u64 = 200;
    let mut garage = std::thread::spawn(common::garage::Garage::start)
        .join()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let host = up_on(dir.path(), Some(&garage));
    let c = Client::new(&host, &admin_token(&dir.path().join("data")));
    let spec = json!({"plugin": "csv-collector", "prefix": "g/", "output": "g-raw"});
    let (s, v) = c
        .send(
            reqwest::Method::PUT,
            "/v1/hooks/g-hook",
            spec.to_string().into_bytes(),
        )
        .await
        .unwrap();
    assert!(s == 200 || s == 201, "{v}");
    let (s, v) = c
        .send(reqwest::Method::POST, "/v1/hooks/g-hook/pause", Vec::new())
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    futures::stream::iter(0..N)
        .map(|n| {
            let c = &c;
            async move {
                let body = format!("n\n{n}\n").into_bytes();
                let (s, v) = c
                    .send(
                        reqwest::Method::PUT,
                        &format!("/v1/objects/g/{n:04}.csv"),
                        body,
                    )
                    .await
                    .unwrap();
                assert_eq!(s, 201, "{v}");
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    // Let the hook go, and stop Garage for 3 s while it works through the queue.
    let (s, v) = c
        .send(reqwest::Method::POST, "/v1/hooks/g-hook/resume", Vec::new())
        .await
        .unwrap();
    assert_eq!(s, 200, "{v}");
    // Stop Garage as soon as the hook has started on the queue; while it is down, events must
    // still be pending (the fault hit queued work) and the hook must be failing to reach it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.get("/v1/hooks/g-hook").await["processed"] == 0 {
        assert!(Instant::now() < deadline, "the hook never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    garage = tokio::task::spawn_blocking(move || {
        garage.kill();
        garage
    })
    .await
    .unwrap();
    // Keep it down until an attempt has failed: the store client retries a refused connection
    // with backoff (up to ~1 min) before it reports an error, so how soon that shows depends on
    // where each request was when Garage died.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let down_until = Instant::now() + Duration::from_secs(90);
    let mut during = c.get("/v1/hooks/g-hook").await;
    while !during["last_error"].is_object() && Instant::now() < down_until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        during = c.get("/v1/hooks/g-hook").await;
    }
    let pending = during["pending"]
        .as_u64()
        .expect("pending while Garage is down");
    assert!(
        pending > 0,
        "the queue drained before Garage stopped: {during}"
    );
    assert!(
        during["last_error"].is_object(),
        "no failed attempt while Garage was down: {during}"
    );
    garage = tokio::task::spawn_blocking(move || {
        garage.resume();
        garage
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let after = loop {
        let h = c.get("/v1/hooks/g-hook").await;
        if h["pending"] == 0 && h["in_flight"].as_u64().unwrap_or(0) == 0 {
            break h;
        }
        assert!(Instant::now() < deadline, "{h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(after["dead_lettered"], 0, "{after}");
    let rows = c.get("/v1/datasets/g-raw/rows?limit=100000").await;
    let mut ns = numbers(&rows, "n");
    ns.sort();
    assert_eq!(ns, (0..N).collect::<Vec<_>>(), "every object exactly once");
    eprintln!(
        "garage down 3 s with {pending} of {N} events pending: all {N} processed exactly once \
         afterwards, 0 dead-lettered; last error while down: {}",
        during["last_error"]
    );
    drop(garage);
}
