//! Pipelines end to end on a real host: the shipped breast-cancer data as CSV objects, the
//! bundled collector, cleaners, scaler and trainer, live progress over SSE read by a real HTTP
//! client, object and cron triggers, webhooks signed and retried against a loopback receiver,
//! restart in the middle of a run, cancellation, and invalid pipeline files.

use crate::common;

use common::events::{call, put_object};
use common::pipelines::*;
use common::{ADMIN, TestHost, client};
use hmac::Mac;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The CSV as three objects: the rows in three chunks, the last with 5 rows of the first
/// repeated and one row with an empty (null) feature.
fn chunks() -> Vec<String> {
    let csv = cancer_csv();
    let mut lines = csv.lines();
    let header = lines.next().unwrap().to_string();
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 569);
    let mut null_row: Vec<&str> = rows[10].split(',').collect();
    null_row[1] = "";
    let mut third: Vec<&str> = rows[400..].to_vec();
    third.extend(&rows[..5]);
    let null_row = null_row.join(",");
    third.push(&null_row);
    [&rows[..200], &rows[200..400], &third[..]]
        .iter()
        .map(|part| format!("{header}\n{}\n", part.join("\n")))
        .collect()
}

fn no_trigger(t: String) -> String {
    t.replace("on_new_objects = true", "on_new_objects = false")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_story_runs_end_to_end_with_live_progress() {
    let _turn = crate::common::serial::together().await;
    let host = TestHost::start(Default::default());
    let text = example_pipeline(|t| no_trigger(t).replace("raw/cancer/", "raw/story/"));
    let (status, v) = apply(&host, "cancer", &text).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["spec"]["train"]["trainer"], "logistic-regression");
    for (i, c) in chunks().iter().enumerate() {
        put_object(&host, &format!("raw/story/part-{i}.csv"), c).await;
    }

    let id = start(&host, "cancer").await;
    let mut sse = Sse::open(&host, &format!("/v1/runs/{id}/events")).await;
    let first = sse.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(first.event, "snapshot");
    assert_eq!(first.data["id"], id.as_str());
    let mut events = vec![];
    while let Some(e) = sse.next(Duration::from_secs(120)).await {
        events.push(e);
    }
    // The snapshot tells where the run was when we subscribed; the events continue from there.
    let mut steps: Vec<(String, String)> = vec![];
    for s in first.data["steps"].as_array().unwrap() {
        let id = s["id"].as_str().unwrap().to_string();
        match s["state"].as_str().unwrap() {
            "running" => steps.push((id, "running".into())),
            "succeeded" => {
                steps.push((id.clone(), "running".into()));
                steps.push((id, "succeeded".into()));
            }
            _ => {}
        }
    }
    let last = events.last().expect("events after the snapshot");
    assert_eq!(last.event, "run.finished", "{:#?}", last.data);
    // Every step was seen running, then succeeded, in order.
    steps.extend(events.iter().filter(|e| e.event == "run.step").map(|e| {
        (
            e.data["data"]["step"].as_str().unwrap().to_string(),
            e.data["data"]["state"].as_str().unwrap().to_string(),
        )
    }));
    let order = [
        "collect",
        "clean[0]",
        "clean[1]",
        "clean[2]",
        "split",
        "transform[0]",
        "train",
        "evaluate",
        "publish",
    ];
    let mut want = vec![];
    for s in order {
        want.push((s.to_string(), "running".to_string()));
        want.push((s.to_string(), "succeeded".to_string()));
    }
    assert_eq!(steps, want);

    let r = run(&host, &id).await;
    assert_eq!(r["state"], "succeeded", "{r:#}");
    assert_eq!(r["trigger"]["kind"], "manual");
    for s in r["steps"].as_array().unwrap() {
        assert_eq!(s["state"], "succeeded", "{s}");
        assert!(s["duration_ms"].as_u64().is_some(), "{s}");
    }
    let collect = step(&r, "collect");
    assert_eq!(collect["metrics"]["objects"], 3);
    assert_eq!(collect["metrics"]["rows"], 575);
    let dedup = step(&r, "clean[0]");
    assert_eq!(dedup["metrics"]["removed"], 5, "{dedup}");
    assert_eq!(dedup["input"], collect["output"]);
    let nulls = step(&r, "clean[1]");
    assert_eq!(nulls["metrics"]["removed"], 1, "{nulls}");
    let outliers = step(&r, "clean[2]");
    let kept = outliers["metrics"]["rows_out"].as_u64().unwrap();
    assert!((500..=569).contains(&kept), "{outliers}");
    let split = &step(&r, "split")["metrics"];
    assert_eq!(
        split["train"].as_u64().unwrap()
            + split["validation"].as_u64().unwrap()
            + split["test"].as_u64().unwrap(),
        kept
    );
    assert_eq!(
        step(&r, "train")["metrics"]["candidates"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let auc = step(&r, "evaluate")["metrics"]["auc"].as_f64().unwrap();
    assert!(auc >= 0.98, "test AUC {auc}");
    let publish = &step(&r, "publish")["metrics"];
    assert_eq!(publish["published"], true, "{publish}");
    let version = publish["version"].as_u64().unwrap();

    // Intermediate datasets are kept, named by run.
    for s in ["collect", "clean[0]", "clean[1]", "clean[2]"] {
        let ds = step(&r, s)["output"].as_str().unwrap().to_string();
        assert!(ds.starts_with(&format!("run-{id}-")), "{ds}");
        let (status, _) = call(&host, "GET", &format!("/v1/datasets/{ds}"), None).await;
        assert_eq!(status, 200, "{ds}");
    }

    // The production alias serves the new version; raw features go in (the scaler is part of
    // the served model).
    let (_, m) = call(&host, "GET", "/v1/models/cancer", None).await;
    assert_eq!(m["aliases"]["production"], version, "{m}");
    let csv = cancer_csv();
    let rows: Vec<Vec<f64>> = csv
        .lines()
        .skip(1)
        .take(40)
        .map(|l| l.split(',').map(|x| x.parse().unwrap()).collect())
        .collect();
    let data: Vec<f64> = rows.iter().flat_map(|r| r[..30].to_vec()).collect();
    let resp = client()
        .post(host.url("/v2/models/cancer/infer"))
        .bearer_auth(ADMIN)
        .json(&json!({"inputs": [{"name": "features", "shape": [40, 30], "datatype": "FP32", "data": data}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let out: Value = resp.json().await.unwrap();
    let labels = out["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "label")
        .unwrap()["data"]
        .as_array()
        .unwrap()
        .clone();
    let right = labels
        .iter()
        .zip(&rows)
        .filter(|(p, r)| p.as_f64().unwrap() == r[30])
        .count();
    assert!(right >= 36, "{right}/40 right");

    // The pipeline shows its last run.
    let (_, p) = call(&host, "GET", "/v1/pipelines/cancer", None).await;
    assert_eq!(p["last_run"]["id"], id.as_str());
    assert_eq!(p["runs"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_and_cron_triggers_never_overlap_and_retention_cleans_up() {
    let _turn = crate::common::serial::together().await;
    let host = TestHost::start(Default::default());
    let mut global = Sse::open(&host, "/v1/events/stream?types=run.*").await;
    // Training that takes a while, so the burst below lands while the first run trains.
    let text = slow("raw/auto/", 300)
        .replace("on_new_objects = false", "on_new_objects = true")
        .replace("keep = 5", "keep = 1");
    let (status, v) = apply(&host, "auto", &text).await;
    assert_eq!(status, 201, "{v}");
    let parts = chunks();
    // A burst of objects: one run starts, the other five join one queued run.
    for i in 0..6 {
        put_object(&host, &format!("raw/auto/p{i}.csv"), &parts[i % 2]).await;
    }
    // An object outside the suffix filter fires nothing.
    put_object(&host, "raw/auto/readme.txt", "not data").await;
    let mut running: BTreeSet<String> = BTreeSet::new();
    let mut finished = 0;
    while finished < 2 {
        let e = global.next(Duration::from_secs(120)).await.expect("events");
        let run = e.data["data"]["run"].as_str().unwrap().to_string();
        match e.event.as_str() {
            "run.started" => {
                assert!(
                    running.is_empty(),
                    "two runs at once: {running:?} and {run}"
                );
                running.insert(run);
            }
            "run.finished" => {
                assert!(running.remove(&run));
                finished += 1;
            }
            other => panic!("{other}: {:#}", e.data),
        }
    }
    wait_idle(&host, "auto").await;
    let runs = runs_of(&host, "auto").await;
    assert_eq!(
        runs.len(),
        2,
        "6 objects → 1 run + 1 that the other 5 joined: {runs:#?}"
    );
    let coalesced: Vec<u64> = runs
        .iter()
        .map(|r| r["trigger"]["coalesced"].as_u64().unwrap())
        .collect();
    assert_eq!(coalesced, [4, 0], "newest first");
    for r in &runs {
        assert_eq!(r["state"], "succeeded", "{r}");
        assert_eq!(r["trigger"]["kind"], "object");
    }

    // Cron: every 2 s (a seconds field), with fast training.
    let fast = example_pipeline(|t| {
        t.replace("raw/cancer/", "raw/auto/")
            .replace("keep = 5", "keep = 1")
            .replace(
                "on_new_objects = true",
                "on_new_objects = false\ncron = \"*/2 * * * * *\"",
            )
    });
    let (status, v) = apply(&host, "auto", &fast).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["next_cron_ms"].as_u64().is_some(), "{v}");
    let r = loop {
        let e = global.next(Duration::from_secs(30)).await.unwrap();
        if e.event == "run.finished" {
            break run(&host, e.data["data"]["run"].as_str().unwrap()).await;
        }
    };
    assert_eq!(r["trigger"]["kind"], "cron", "{r}");
    assert_eq!(r["state"], "succeeded");
    // Stop the schedule.
    let (status, _) = apply(&host, "auto", &fast.replace("cron = \"*/2 * * * * *\"", "")).await;
    assert_eq!(status, 200);
    wait_idle(&host, "auto").await;

    // Retention keeps the newest run's datasets: every older run's are gone.
    let all = runs_of(&host, "auto").await;
    assert!(all.len() >= 3);
    for (i, r) in all.iter().enumerate() {
        let full = run(&host, r["id"].as_str().unwrap()).await;
        let ds = step(&full, "collect")["output"]
            .as_str()
            .unwrap()
            .to_string();
        let (status, _) = call(&host, "GET", &format!("/v1/datasets/{ds}"), None).await;
        if i == 0 {
            assert_eq!(status, 200, "the newest run keeps {ds}");
        } else {
            assert_eq!(status, 404, "old run {} still has {ds}", full["id"]);
            assert_eq!(full["datasets_deleted"], true);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_found_together_by_the_poller_start_at_most_two_runs() {
    let _turn = crate::common::serial::together().await;
    let host = TestHost::start(Default::default());
    let text = example_pipeline(|t| {
        t.replace("raw/cancer/", "raw/poll/")
            .replace("c = [0.1, 1.0]", "c = [1.0]")
    });
    assert_eq!(apply(&host, "poll", &text).await.0, 201);
    // Five files written straight into the store (an outside writer): one poller scan reports
    // them together, and their triggers are handled concurrently.
    let dir = host.store_dir().join("raw/poll");
    std::fs::create_dir_all(&dir).unwrap();
    let parts = chunks();
    for i in 0..5 {
        std::fs::write(dir.join(format!("b{i}.csv")), &parts[i % 3]).unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while runs_of(&host, "poll").await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the poller never fired the pipeline"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_idle(&host, "poll").await;
    let runs = runs_of(&host, "poll").await;
    assert!((1..=2).contains(&runs.len()), "{runs:#?}");
    let triggers: u64 = runs
        .iter()
        .map(|r| 1 + r["trigger"]["coalesced"].as_u64().unwrap())
        .sum();
    assert_eq!(triggers, 5, "every object counted once: {runs:#?}");
    for r in &runs {
        assert_eq!(r["state"], "succeeded", "{r}");
    }
}

/// Wait until a pipeline has had no queued or running run for a second.
async fn wait_idle(host: &TestHost, name: &str) {
    let mut quiet = 0;
    for _ in 0..600 {
        let active = runs_of(host, name)
            .await
            .iter()
            .filter(|r| !ended(r))
            .count();
        quiet = if active == 0 { quiet + 1 } else { 0 };
        if quiet == 10 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("pipeline {name} never went idle");
}

type Received = Arc<Mutex<Vec<(axum::http::HeaderMap, bytes::Bytes)>>>;

/// A loopback webhook receiver: records every request; answers 500 to the first `fail`.
async fn receiver(fail: usize) -> (String, Received) {
    let got: Received = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: bytes::Bytes| {
            let g = g.clone();
            async move {
                let mut v = g.lock().unwrap();
                v.push((headers, body));
                if v.len() <= fail {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_and_retried() {
    let _turn = crate::common::serial::together().await;
    let host = TestHost::start(Default::default());
    let (url, got) = receiver(1).await;
    let secret = "s3cr3t";
    let (status, v) = call(
        &host,
        "PUT",
        "/v1/notifications/webhooks/team",
        Some(
            json!({"url": url, "events": ["run.*", "model.published"], "secret": secret,
                   "backoff_ms": 100})
            .to_string()
            .into(),
        ),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["signed"], true);
    assert!(v.get("secret").is_none(), "the secret is never shown: {v}");

    let text = example_pipeline(|t| {
        no_trigger(t)
            .replace("raw/cancer/", "raw/wh/")
            .replace("c = [0.1, 1.0]", "c = [1.0]")
    });
    assert_eq!(apply(&host, "wh", &text).await.0, 201);
    put_object(&host, "raw/wh/all.csv", &cancer_csv()).await;
    let ok = start(&host, "wh").await;
    wait_run(&host, &ok, Duration::from_secs(60), ended).await;
    // A run that fails: the label is not a column.
    let bad = text.replace("label = \"label\"", "label = \"nope\"");
    assert_eq!(apply(&host, "wh", &bad).await.0, 200);
    let failed = start(&host, "wh").await;
    let r = wait_run(&host, &failed, Duration::from_secs(60), ended).await;
    assert_eq!(r["state"], "failed");
    assert!(r["error"].as_str().unwrap().contains("nope"), "{r}");
    assert_eq!(step(&r, "split")["state"], "failed", "{r:#}");

    // started, published, finished for the first run; started, failed for the second; plus
    // the retried first attempt.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while got.lock().unwrap().len() < 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            got.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = got.lock().unwrap().clone();
    let mut kinds = vec![];
    for (i, (headers, body)) in got.iter().enumerate() {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(
            headers["x-aimass-signature-256"],
            want.as_str(),
            "delivery {i}"
        );
        let n: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(headers["x-aimass-event"], n["type"].as_str().unwrap());
        assert_eq!(headers["x-aimass-delivery"], n["id"].as_str().unwrap());
        kinds.push((
            n["type"].as_str().unwrap().to_string(),
            n["data"]["run"].as_str().map(str::to_string),
            headers["x-aimass-attempt"].to_str().unwrap().to_string(),
        ));
    }
    // The first delivery failed with 500 and came again as attempt 2, same event.
    assert_eq!(kinds[0].2, "1");
    let again = kinds
        .iter()
        .position(|k| k.0 == kinds[0].0 && k.2 == "2")
        .expect("a retry");
    assert_eq!(got[0].1, got[again].1, "a retry sends the same event");
    let kinds: BTreeSet<(String, Option<String>)> =
        kinds.into_iter().map(|(k, r, _)| (k, r)).collect();
    for want in [
        ("run.started", Some(ok.clone())),
        ("run.finished", Some(ok.clone())),
        ("model.published", None),
        ("run.started", Some(failed.clone())),
        ("run.failed", Some(failed.clone())),
    ] {
        assert!(
            kinds.contains(&(want.0.to_string(), want.1.clone())),
            "{want:?} not in {kinds:?}"
        );
    }
    let (_, v) = call(&host, "GET", "/v1/notifications/webhooks/team", None).await;
    assert!(v["retries"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["delivered"].as_u64().unwrap() >= 5, "{v}");
}

/// A pipeline whose training takes seconds (an MLP over many epochs).
fn slow(prefix: &str, epochs: u32) -> String {
    example_pipeline(|t| {
        no_trigger(t)
            .replace("raw/cancer/", prefix)
            .replace("logistic-regression", "mlp")
            .replace(
                "hyperparameters = { c = [0.1, 1.0] }",
                &format!("hyperparameters = {{ hidden = [\"64,32\"], epochs = [{epochs}] }}"),
            )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_survives_a_host_restart_and_can_be_cancelled() {
    let _turn = crate::common::serial::together().await;
    let store = tempfile::tempdir().unwrap();
    let config = || aimass::config::HostConfig {
        store_url: format!("file://{}", store.path().display()),
        ..Default::default()
    };
    let host = TestHost::start(config());
    assert_eq!(apply(&host, "slow", &slow("raw/slow/", 400)).await.0, 201);
    put_object(&host, "raw/slow/all.csv", &cancer_csv()).await;
    let id = start(&host, "slow").await;
    let before = wait_run(&host, &id, Duration::from_secs(60), |r| {
        step(r, "train")["state"] == "running"
    })
    .await;
    // The host dies in the middle of training.
    drop(host);
    let host = TestHost::start(config());
    let after = wait_run(&host, &id, Duration::from_secs(180), ended).await;
    assert_eq!(after["state"], "succeeded", "{after:#}");
    assert_eq!(after["resumed"], 1);
    // Completed steps were not run again; training was.
    for s in ["collect", "clean[0]", "clean[1]", "clean[2]"] {
        assert_eq!(
            step(&after, s)["started_ms"],
            step(&before, s)["started_ms"],
            "{s} ran again"
        );
    }
    assert!(
        step(&after, "train")["started_ms"].as_u64()
            > step(&before, "train")["started_ms"].as_u64()
    );
    assert_eq!(step(&after, "publish")["metrics"]["published"], true);

    // Cancel a long run while it trains.
    assert_eq!(
        apply(&host, "slow", &slow("raw/slow/", 100_000)).await.0,
        200
    );
    let id = start(&host, "slow").await;
    wait_run(&host, &id, Duration::from_secs(60), |r| {
        step(r, "train")["state"] == "running"
    })
    .await;
    // Deleting a pipeline with an active run is refused.
    let (status, v) = call(&host, "DELETE", "/v1/pipelines/slow", None).await;
    assert_eq!(status, 409, "{v}");
    let (status, _) = call(&host, "POST", &format!("/v1/runs/{id}/cancel"), None).await;
    assert_eq!(status, 202);
    let r = wait_run(&host, &id, Duration::from_secs(10), ended).await;
    assert_eq!(r["state"], "cancelled");
    assert_eq!(step(&r, "train")["state"], "cancelled");
    let (status, v) = call(&host, "POST", &format!("/v1/runs/{id}/cancel"), None).await;
    assert_eq!(status, 409, "{v}");
    let (status, _) = call(&host, "DELETE", "/v1/pipelines/slow", None).await;
    assert_eq!(status, 204);
    // Runs outlive their pipeline.
    assert_eq!(run(&host, &id).await["state"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_pipelines_get_precise_errors() {
    let _turn = crate::common::serial::together().await;
    let host = common::shared();
    let good = example_pipeline(no_trigger);
    let cases: Vec<(String, u16, &[&str])> = vec![
        (
            good.replace("label = \"label\"", "lable = \"label\""),
            400,
            &["line 34", "unknown field `lable`"],
        ),
        (
            good.replace("seed = 7", "seed = \"seven\""),
            400,
            &["line 29"],
        ),
        (
            good.replace(
                "[[clean]]\nplugin = \"dedup\"",
                "[[clean]]\nplugin = \"standard-scaler\"",
            ),
            422,
            &[
                "clean[0].plugin: plugin `standard-scaler` is a transform plugin, not a cleaner",
                "(line 14)",
            ],
        ),
        (
            good.replace("plugin = \"drop-nulls\"", "plugin = \"nope\""),
            422,
            &["clean[1].plugin: no plugin named `nope`", "(line 17)"],
        ),
        (
            good.replace("trainer = \"logistic-regression\"", "trainer = \"dedup\""),
            422,
            &[
                "train.trainer: plugin `dedup` is a cleaner plugin, not a trainer",
                "(line 33)",
            ],
        ),
        (
            good.replace("on_new_objects = false", "cron = \"0 3 * *\""),
            422,
            &["triggers.cron:", "4 fields"],
        ),
        (
            good.replace("gate = { min_auc = 0.9 }", "gate = { min_auc = \"high\" }"),
            400,
            &["line 40"],
        ),
        (
            good.replace("gate = { min_auc = 0.9 }", "gate = { best_auc = 0.9 }"),
            422,
            &["publish.gate:"],
        ),
        (
            good.replace("collector = \"csv-collector\"\n", ""),
            422,
            &["source.collector:"],
        ),
        (
            good.replace("prefix = \"raw/cancer/\"", "prefix = \"models/\""),
            422,
            &["source.prefix:", "namespace"],
        ),
        (
            good.replace("[source]\n", "[source]\ndataset = \"d\"\n"),
            422,
            &["source: set either"],
        ),
        (
            good.replace("validation = 0.2", "validation = 0.9"),
            422,
            &["split"],
        ),
        (
            good.replace("max_concurrent = 1", "max_concurrent = 0"),
            422,
            &["runs.max_concurrent"],
        ),
        ("not toml at all [".into(), 400, &["invalid pipeline"]),
    ];
    for (i, (text, status, needles)) in cases.iter().enumerate() {
        let (got, v) = apply(host, &format!("bad-{i}"), text).await;
        let e = v["error"].as_str().unwrap_or_default();
        assert_eq!(got, *status, "case {i}: {v}");
        for n in *needles {
            assert!(e.contains(n), "case {i}: `{n}` not in {e}");
        }
        // Nothing was stored.
        let (s, _) = call(host, "GET", &format!("/v1/pipelines/bad-{i}"), None).await;
        assert_eq!(s, 404, "case {i}");
    }
    // JSON works too, with the same checks.
    let resp = client()
        .put(host.url("/v1/pipelines/json-one"))
        .bearer_auth(ADMIN)
        .json(&json!({"source": {"dataset": "x"}, "train": {"model": "m", "trainer": "noop", "label": "y"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid pipeline: train.trainer:"),
        "{v}"
    );
    // Unknown pipeline, run; roles.
    let (s, _) = call(host, "POST", "/v1/pipelines/nope/runs", None).await;
    assert_eq!(s, 404);
    let (s, _) = call(host, "GET", "/v1/runs/0000", None).await;
    assert_eq!(s, 404);
    let (s, _) = call(host, "GET", "/v1/events/stream?types=run.boom", None).await;
    assert_eq!(s, 400);
    let reader = common::token(host, "reader").await;
    let r = client()
        .put(host.url("/v1/pipelines/by-reader"))
        .bearer_auth(reader)
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_and_resolve_on_error_rate_and_dead_letters() {
    let _turn = crate::common::serial::together().await;
    let rules = aimass::ops::notify::alerts::parse(
        r#"
[[alert]]
name = "hostile-errors"
kind = "error_rate"
plugin = "hostile"
threshold = 0.5
window_s = 2
min_calls = 2

[[alert]]
name = "dead-letters"
kind = "dead_letters"
hook = "*"
threshold = 1
window_s = 60
"#,
    )
    .unwrap();
    let host = TestHost::start(aimass::config::HostConfig {
        alerts: rules,
        alert_interval: Duration::from_millis(200),
        ..Default::default()
    });
    common::push(&host, "hostile", common::wasm("hostile"), "").await;
    let mut events = Sse::open(&host, "/v1/events/stream?types=alert.*,hook.dead_lettered").await;
    for _ in 0..3 {
        let (s, _, _) =
            common::invoke(&host, "hostile", "?mode=trap", "text/csv", None, "a\n1\n").await;
        assert_eq!(s, 500);
    }
    let e = events.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(e.event, "alert.fired", "{:#}", e.data);
    assert_eq!(e.data["data"]["alert"], "hostile-errors");
    assert_eq!(e.data["data"]["value"], 1.0);
    let (_, v) = call(&host, "GET", "/v1/alerts", None).await;
    assert_eq!(v["alerts"][0]["firing"], true, "{v}");
    // No more failures: once the window has passed, it resolves.
    let e = events.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        (e.event.as_str(), &e.data["data"]["alert"]),
        ("alert.resolved", &json!("hostile-errors"))
    );

    // A hook whose plugin always traps, with no retries: one dead letter, announced, and the
    // dead-letter rule fires.
    let (s, v) = call(
        &host,
        "PUT",
        "/v1/hooks/doomed",
        Some(
            json!({"plugin": "hostile", "prefix": "in/doomed/", "output": "never",
                   "config": {"mode": "trap"}, "max_retries": 0})
            .to_string()
            .into(),
        ),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    put_object(&host, "in/doomed/a.csv", "a\n1\n").await;
    let mut kinds = BTreeSet::new();
    while kinds.len() < 2 {
        let e = events.next(Duration::from_secs(20)).await.unwrap();
        if e.event == "hook.dead_lettered" {
            assert_eq!(e.data["data"]["hook"], "doomed");
            assert_eq!(e.data["data"]["key"], "in/doomed/a.csv");
        } else {
            assert_eq!(e.event, "alert.fired");
            assert_eq!(e.data["data"]["alert"], "dead-letters");
        }
        kinds.insert(e.event);
    }
}

/// Manual runs of one pipeline queue up to 16 behind the running one; one more is 429 with
/// `Retry-After`, so a caller cannot pile up runs (each holding its spec and record). Run lists
/// come a page at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_runs_are_capped_and_run_lists_paged() {
    let _turn = crate::common::serial::together().await;
    let host = TestHost::start(Default::default());
    assert_eq!(apply(&host, "busy", &slow("raw/busy/", 2000)).await.0, 201);
    put_object(&host, "raw/busy/all.csv", &cancer_csv()).await;
    let mut ids = vec![start(&host, "busy").await];
    wait_run(&host, &ids[0], Duration::from_secs(60), |r| {
        r["state"] == "running"
    })
    .await;
    for _ in 0..16 {
        ids.push(start(&host, "busy").await);
    }
    let (status, v) = call(&host, "POST", "/v1/pipelines/busy/runs", None).await;
    assert_eq!(status, 429, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("16 runs queued"),
        "{v}"
    );
    let (status, page) = call(
        &host,
        "GET",
        "/v1/pipelines/busy/runs?limit=5&offset=5",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (page["runs"].as_array().unwrap().len(), &page["total"]),
        (5, &json!(17))
    );
    let (status, _) = call(&host, "GET", "/v1/pipelines/busy/runs?limit=0", None).await;
    assert_eq!(status, 400);
    for id in ids {
        call(&host, "POST", &format!("/v1/runs/{id}/cancel"), None).await;
    }
}

/// Past the last 50 finished runs of a pipeline, run records leave memory: they are still
/// listed (newest first, in one order with the rest) and shown whole, read from the store, and
/// `/metrics` counts where records are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_run_records_leave_memory_and_are_read_from_the_store() {
    let _turn = crate::common::serial::together().await;
    let host = TestHost::start(Default::default());
    // No objects under the source prefix: each run ends at once.
    let text = example_pipeline(|t| no_trigger(t).replace("raw/cancer/", "raw/nothing/"));
    assert_eq!(apply(&host, "many", &text).await.0, 201);
    let mut ids = Vec::new();
    for _ in 0..4 {
        let mut batch = Vec::new();
        for _ in 0..15 {
            batch.push(start(&host, "many").await);
        }
        for id in &batch {
            wait_run(&host, id, Duration::from_secs(60), ended).await;
        }
        ids.extend(batch);
    }
    let metrics = client()
        .get(host.url("/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let records = |place: &str| {
        let series = format!("aimass_pipeline_run_records{{place=\"{place}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series)?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {series}"))
    };
    assert_eq!((records("memory"), records("store_only")), (50.0, 10.0));
    let (status, v) = call(&host, "GET", "/v1/pipelines/many/runs?limit=1000", None).await;
    assert_eq!((status, &v["total"]), (200, &json!(60)), "{v}");
    let listed: Vec<(u64, String)> = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["created_ms"].as_u64().unwrap(),
                r["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        listed.windows(2).all(|w| w[0] > w[1]),
        "newest first: {listed:?}"
    );
    let mut seen: Vec<&String> = listed.iter().map(|(_, id)| id).collect();
    let mut started: Vec<&String> = ids.iter().collect();
    seen.sort();
    started.sort();
    assert_eq!(seen, started);
    // The oldest, whose record is only in the store: listed last, shown whole, not cancellable.
    let (_, oldest) = listed.last().unwrap();
    let (status, page) = call(&host, "GET", "/v1/pipelines/many/runs?offset=59", None).await;
    assert_eq!((status, &page["runs"][0]["id"]), (200, &json!(oldest)));
    let r = run(&host, oldest).await;
    assert!(ended(&r) && r["spec"]["source"].is_object(), "{r}");
    let (status, _) = call(&host, "POST", &format!("/v1/runs/{oldest}/cancel"), None).await;
    assert_eq!(status, 409);
    let (_, v) = call(&host, "GET", "/v1/pipelines/many", None).await;
    assert_eq!(v["runs"], 60, "{v}");
}
