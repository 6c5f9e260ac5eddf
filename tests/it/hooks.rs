//! Object-event hooks and the warehouse end to end over real HTTP with the real bundled plugins,
//! on the local file store and again on Garage (a real S3 server): the sales story, the S3
//! notification receiver, the poller, retries and dead letters, the recursion guard,
//! pause/resume, schema mismatch, and bad input.

use crate::common;

use aimass::config::HostConfig;
use aimass::ingest::hooks::HookOptions;
use aimass::platform::storage::Storage;
use common::events::*;
use common::garage::Garage;
use common::{ADMIN, TestHost, client, wasm};
use serde_json::{Value, json};
use std::sync::OnceLock;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

/// A host and a way to write into its store behind its back (as any other client of the
/// bucket or directory would).
struct Env {
    host: TestHost,
    direct: Storage,
    /// Bucket name S3 notifications must carry.
    bucket: String,
    conditional_create: bool,
    _garage: Option<Garage>,
}

fn hook_options(poll: bool) -> HookOptions {
    HookOptions {
        poll_interval: poll.then(|| Duration::from_millis(50)),
        ..Default::default()
    }
}

/// A host on a local file store: polling every 50 ms, or relying on notifications only.
fn local(poll: bool) -> Env {
    let host = TestHost::start(HostConfig {
        hooks: hook_options(poll),
        ..HostConfig::default()
    });
    let direct = Storage::open(
        &format!("file://{}", host.store_dir().display()),
        &Default::default(),
    )
    .unwrap();
    Env {
        host,
        direct,
        bucket: "any".into(),
        conditional_create: true,
        _garage: None,
    }
}

/// A host whose store is a fresh Garage bucket.
fn on_garage(poll: bool) -> Env {
    let g = std::thread::spawn(Garage::start).join().unwrap();
    let host = TestHost::start(HostConfig {
        store_url: g.url(),
        s3: g.options(),
        hooks: hook_options(poll),
        ..HostConfig::default()
    });
    Env {
        host,
        direct: g.storage(),
        bucket: g.url().trim_start_matches("s3://").to_string(),
        conditional_create: false,
        _garage: Some(g),
    }
}

/// The local hosts shared by this file's tests (each test uses its own names and prefixes).
fn polled() -> &'static Env {
    static E: OnceLock<Env> = OnceLock::new();
    E.get_or_init(|| local(true))
}

fn notified() -> &'static Env {
    static E: OnceLock<Env> = OnceLock::new();
    E.get_or_init(|| local(false))
}

#[tokio::test]
async fn local_sales_story() {
    let _turn = crate::common::serial::together().await;
    sales_story(polled()).await
}

#[tokio::test]
async fn local_poller() {
    let _turn = crate::common::serial::together().await;
    poller_reports_create_change_and_delete(polled()).await
}

#[tokio::test]
async fn local_retries_and_dead_letters() {
    let _turn = crate::common::serial::together().await;
    failures_retry_then_dead_letter_then_redrive(polled()).await
}

#[tokio::test]
async fn local_recursion_guard() {
    let _turn = crate::common::serial::together().await;
    recursion_guard_and_lineage_depth_cap(polled()).await
}

#[tokio::test]
async fn local_pause_resume() {
    let _turn = crate::common::serial::together().await;
    paused_hooks_keep_events_until_resumed(polled()).await
}

#[tokio::test]
async fn local_schema_mismatch() {
    let _turn = crate::common::serial::together().await;
    schema_mismatch_is_dead_lettered_not_mixed_in(polled()).await
}

#[tokio::test]
async fn local_object_api() {
    let _turn = crate::common::serial::together().await;
    let e = polled();
    object_api_round_trip_and_bad_keys(e).await;
    // The local file store cannot hold '#' (S3 can): a clear 400, where fuzzing found a 500 on
    // every operation.
    for (method, path) in [
        ("PUT", "/v1/objects/%239"),
        ("GET", "/v1/objects/%239"),
        ("DELETE", "/v1/objects/a/b%23c"),
        ("GET", "/v1/objects?prefix=a%23"),
    ] {
        let (s, v) = call(&e.host, method, path, Some(b"x".to_vec())).await;
        assert_eq!(s, 400, "{method} {path}: {v}");
        assert!(v["error"].as_str().unwrap().contains("'#'"), "{v}");
    }
}

#[tokio::test]
async fn local_dataset_delete_cascades() {
    let _turn = crate::common::serial::together().await;
    dataset_delete_cascades(polled()).await
}

/// `GET /v1/datasets/{name}` lists parts a page at a time, in row order, with their lineage.
#[tokio::test]
async fn local_dataset_part_listing_pages() {
    let _turn = crate::common::serial::together().await;
    let e = polled();
    let h = &e.host;
    let mut ids = Vec::new();
    for i in 0..3 {
        let resp = client()
            .post(h.url("/v1/datasets/pages/parts"))
            .bearer_auth(ADMIN)
            .header("content-type", "text/csv")
            .body(format!("k\n{i}\n"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let v: Value = resp.json().await.unwrap();
        ids.push(v["part"]["id"].as_str().unwrap().to_string());
        tokio::time::sleep(Duration::from_millis(5)).await; // distinct commit times
    }
    let page = |q: &'static str| async move {
        call(h, "GET", &format!("/v1/datasets/pages{q}"), None).await
    };
    let listed = |v: &Value| -> Vec<String> {
        v["part_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (s, all) = page("").await;
    assert_eq!((s, listed(&all)), (200, ids.clone()), "{all}");
    assert_eq!(all["parts"], 3);
    let (_, first) = page("?parts_limit=2").await;
    assert_eq!(listed(&first), ids[..2]);
    let (_, rest) = page("?parts_offset=2").await;
    assert_eq!(listed(&rest), ids[2..]);
    assert_eq!(rest["parts"], 3, "the summary covers every part");
    let (s, err) = page("?parts_limit=10001").await;
    assert_eq!(s, 400, "{err}");
    assert!(err["error"].as_str().unwrap().contains("10000"), "{err}");
    let (s, _) = page("?parts_offset=x").await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn local_s3_notifications() {
    let _turn = crate::common::serial::together().await;
    s3_notifications_in_aws_and_minio_shapes(notified()).await
}

/// Every scenario again on Garage (a real S3 server), concurrently on two fresh buckets.
#[tokio::test]
async fn garage_every_scenario() {
    let _turn = crate::common::serial::together().await;
    let (e, n) = std::thread::spawn(|| {
        let e = std::thread::spawn(|| on_garage(true));
        let n = on_garage(false);
        (e.join().unwrap(), n)
    })
    .join()
    .unwrap();
    tokio::join!(
        sales_story(&e),
        poller_reports_create_change_and_delete(&e),
        failures_retry_then_dead_letter_then_redrive(&e),
        recursion_guard_and_lineage_depth_cap(&e),
        paused_hooks_keep_events_until_resumed(&e),
        schema_mismatch_is_dead_lettered_not_mixed_in(&e),
        object_api_round_trip_and_bad_keys(&e),
        dataset_delete_cascades(&e),
        s3_notifications_in_aws_and_minio_shapes(&n),
    );
}

async fn sales_story(e: &Env) {
    let h = &e.host;
    let names = sales_hooks(h, "sales", "raw/sales/").await;
    for (i, base) in [100, 200, 300].into_iter().enumerate() {
        let v = put_object(h, &format!("raw/sales/day{i}.csv"), &sales_csv(base)).await;
        assert_eq!(v["hooks"], 1, "{v}");
    }
    // Not a .csv: no hook fires.
    assert_eq!(
        put_object(h, "raw/sales/readme.txt", "hi").await["hooks"],
        0
    );
    // An outside writer drops a file straight into the store (atomically, as S3 PUTs are):
    // the poller finds it.
    e.direct
        .put("raw/sales/direct.csv", sales_csv(400))
        .await
        .unwrap();

    let clean = wait_rows(h, "sales-clean", 24, WAIT).await;
    assert_eq!(
        amounts(h, "sales-clean").await,
        expected_amounts(&[100, 200, 300, 400])
    );
    assert_eq!(clean["parts"], 4);
    assert_eq!(dataset(h, "sales-raw").await.unwrap()["rows"], 32);
    assert_eq!(dataset(h, "sales-dedup").await.unwrap()["rows"], 28);
    // Lineage: which hook and which source object made each part.
    let raw = dataset(h, "sales-raw").await.unwrap();
    let mut sources: Vec<_> = raw["part_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["lineage"]["hook"], "sales-collect");
            p["lineage"]["source"].as_str().unwrap().to_string()
        })
        .collect();
    sources.sort();
    assert_eq!(
        sources,
        [
            "raw/sales/day0.csv",
            "raw/sales/day1.csv",
            "raw/sales/day2.csv",
            "raw/sales/direct.csv"
        ]
    );
    for p in clean["part_list"].as_array().unwrap() {
        assert_eq!(p["lineage"]["depth"], 3, "{p}");
        assert!(
            p["lineage"]["root"]
                .as_str()
                .unwrap()
                .starts_with("raw/sales/")
        );
    }
    let schema: Vec<_> = clean["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].clone())
        .collect();
    assert_eq!(schema, ["region", "amount", "qty"]);

    // Rows: limit/offset, JSON by default, CSV and Arrow on request.
    assert_eq!(rows(h, "sales-clean", "?limit=20").await.len(), 20);
    assert_eq!(rows(h, "sales-clean", "?limit=20&offset=20").await.len(), 4);
    assert_eq!(rows(h, "sales-clean", "?offset=100").await.len(), 0);
    let resp = client()
        .get(h.url("/v1/datasets/sales-clean/rows?limit=3"))
        .bearer_auth(ADMIN)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/csv");
    let csv = resp.text().await.unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.starts_with("region,amount,qty"));
    let resp = client()
        .get(h.url("/v1/datasets/sales-clean/rows?limit=5"))
        .bearer_auth(ADMIN)
        .header("accept", "application/vnd.apache.arrow.stream")
        .send()
        .await
        .unwrap();
    let b = common::batches(&resp.bytes().await.unwrap());
    assert_eq!(b.iter().map(|b| b.num_rows()).sum::<usize>(), 5);
    let (s, _) = call(h, "GET", "/v1/datasets/sales-clean/rows?limit=x", None).await;
    assert_eq!(s, 400);

    // Status of each hook in the chain.
    for n in &names {
        let st = wait_hook(h, n, WAIT, |v| v["processed"] == 4 && v["pending"] == 0).await;
        assert_eq!(st["dead_lettered"], 0, "{st}");
        assert!(st["latency"]["p50_ms"].as_f64().unwrap() > 0.0, "{st}");
    }
    let (s, list) = call(h, "GET", "/v1/hooks", None).await;
    assert_eq!(s, 200);
    assert!(
        list["hooks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "sales-collect")
    );
    let (s, list) = call(h, "GET", "/v1/datasets", None).await;
    assert_eq!(s, 200);
    assert!(
        list["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "sales-clean" && x["rows"] == 24)
    );

    // A new version of a source object replaces what was derived from it, all down the chain.
    put_object(h, "raw/sales/day0.csv", &sales_csv(500)).await;
    wait_hook(h, &names[0], WAIT, |v| {
        v["processed"] == 5 && v["pending"] == 0
    })
    .await;
    let start = std::time::Instant::now();
    while amounts(h, "sales-clean").await != expected_amounts(&[500, 200, 300, 400]) {
        assert!(
            start.elapsed() < WAIT,
            "{:?}",
            amounts(h, "sales-clean").await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for ds in ["sales-raw", "sales-dedup", "sales-clean"] {
        assert_eq!(dataset(h, ds).await.unwrap()["parts"], 4, "{ds}");
    }
}

async fn poller_reports_create_change_and_delete(e: &Env) {
    let h = &e.host;
    put_hook(
        h,
        "poll-collect",
        json!({"plugin": "csv-collector", "prefix": "poll/",
        "events": ["created", "deleted"], "output": "polled"}),
    )
    .await;
    e.direct.put("poll/a.csv", "x,y\n1,2\n3,4\n").await.unwrap();
    wait_rows(h, "polled", 2, WAIT).await;
    // Changed content: the new version replaces the old one's part.
    e.direct
        .put("poll/a.csv", "x,y\n5,6\n7,8\n9,10\n")
        .await
        .unwrap();
    let d = wait_rows(h, "polled", 3, WAIT).await;
    assert_eq!(d["parts"], 1, "{d:#}");
    let xs: Vec<_> = rows(h, "polled", "")
        .await
        .iter()
        .map(|r| r["x"].as_i64().unwrap())
        .collect();
    assert_eq!(xs, [5, 7, 9]);
    // Deleted: its part is retracted.
    e.direct.delete("poll/a.csv").await.unwrap();
    let d = wait_rows(h, "polled", 0, WAIT).await;
    assert_eq!(d["parts"], 0);
    let st = hook(h, "poll-collect").await;
    assert_eq!(st["processed"], 2, "{st}");
    assert_eq!(st["retracted"], 2, "one replaced, one deleted: {st}");
}

async fn failures_retry_then_dead_letter_then_redrive(e: &Env) {
    let h = &e.host;
    common::push(h, "flaky", wasm("hostile"), "").await;
    put_hook(
        h,
        "flaky-hook",
        json!({"plugin": "flaky", "prefix": "datasets/flaky-in/",
        "output": "flaky-out", "config": {"mode": "trap"}, "max_retries": 2, "backoff_ms": 10}),
    )
    .await;
    let (s, v) = call(h, "POST", "/v1/datasets/flaky-in/parts", None).await;
    assert_eq!(s, 415, "{v}");
    let resp = client()
        .post(h.url("/v1/datasets/flaky-in/parts"))
        .bearer_auth(ADMIN)
        .header("content-type", "text/csv")
        .body("a,b\n1,2\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let st = wait_hook(h, "flaky-hook", WAIT, |v| {
        v["dead_lettered"] == 1 && v["pending"] == 0
    })
    .await;
    assert_eq!(st["failed"], 3, "first attempt + 2 retries: {st}");
    assert_eq!(st["processed"], 0);
    assert!(
        st["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("trap"),
        "{st}"
    );
    let (s, dl) = call(h, "GET", "/v1/hooks/flaky-hook/dead-letters", None).await;
    assert_eq!(s, 200);
    let letter = &dl["dead_letters"][0];
    assert!(
        letter["reason"]
            .as_str()
            .unwrap()
            .contains("failed 3 times"),
        "{letter}"
    );
    assert!(
        letter["delivery"]["event"]["key"]
            .as_str()
            .unwrap()
            .starts_with("datasets/flaky-in/parts/")
    );
    assert!(
        dataset(h, "flaky-out").await.is_none(),
        "nothing partial was written"
    );

    // Fix the hook, replay the dead letter.
    put_hook(
        h,
        "flaky-hook",
        json!({"plugin": "flaky", "prefix": "datasets/flaky-in/",
        "output": "flaky-out", "config": {"mode": "ok"}, "max_retries": 2, "backoff_ms": 10}),
    )
    .await;
    let (s, v) = call(h, "POST", "/v1/hooks/flaky-hook/redrive", None).await;
    assert_eq!((s, v["redriven"].as_u64()), (200, Some(1)));
    let st = wait_hook(h, "flaky-hook", WAIT, |v| v["processed"] == 1).await;
    assert_eq!(st["dead_lettered"], 0, "{st}");
    assert_eq!(wait_rows(h, "flaky-out", 1, WAIT).await["parts"], 1);
}

async fn recursion_guard_and_lineage_depth_cap(e: &Env) {
    let h = &e.host;
    // A hook whose output is its own source never fires on its own parts.
    put_hook(
        h,
        "selfloop",
        json!({"plugin": "dedup", "prefix": "datasets/selfloop/", "output": "selfloop"}),
    )
    .await;
    let seed = |ds: &'static str| async move {
        let resp = client()
            .post(h.url(&format!("/v1/datasets/{ds}/parts")))
            .bearer_auth(ADMIN)
            .header("content-type", "text/csv")
            .body("k,v\n1,1\n1,1\n2,2\n")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    };
    // The positive control: another hook on the same prefix sees both parts, the seed and
    // selfloop's own output, so that output's event was delivered; selfloop skipped it.
    put_hook(
        h,
        "selfloop-watcher",
        json!({"plugin": "dedup", "prefix": "datasets/selfloop/", "output": "selfloop-watched"}),
    )
    .await;
    seed("selfloop").await;
    wait_hook(h, "selfloop", WAIT, |v| {
        v["processed"] == 1 && v["pending"] == 0
    })
    .await;
    wait_hook(h, "selfloop-watcher", WAIT, |v| {
        v["processed"] == 2 && v["pending"] == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = hook(h, "selfloop").await;
    assert_eq!(
        (st["processed"].as_u64(), st["pending"].as_u64()),
        (Some(1), Some(0)),
        "{st}"
    );
    assert_eq!(dataset(h, "selfloop").await.unwrap()["parts"], 2);

    // Two hooks feeding each other stop at 16 hops, with a dead letter that says why.
    put_hook(
        h,
        "ping",
        json!({"plugin": "dedup", "prefix": "datasets/ping/", "output": "pong"}),
    )
    .await;
    put_hook(
        h,
        "pong",
        json!({"plugin": "dedup", "prefix": "datasets/pong/", "output": "ping"}),
    )
    .await;
    seed("ping").await;
    let total = |f: &str, a: &serde_json::Value, b: &serde_json::Value| {
        a[f].as_u64().unwrap() + b[f].as_u64().unwrap()
    };
    let start = std::time::Instant::now();
    let (a, b) = loop {
        let (a, b) = (hook(h, "ping").await, hook(h, "pong").await);
        if total("dead_lettered", &a, &b) == 1 && total("pending", &a, &b) == 0 {
            break (a, b);
        }
        assert!(start.elapsed() < WAIT, "{a:#} {b:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(total("processed", &a, &b), 16);
    let dead = if a["dead_lettered"] == 1 {
        "ping"
    } else {
        "pong"
    };
    let (_, dl) = call(h, "GET", &format!("/v1/hooks/{dead}/dead-letters"), None).await;
    let reason = dl["dead_letters"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("lineage depth limit 16"), "{reason}");
}

async fn paused_hooks_keep_events_until_resumed(e: &Env) {
    let h = &e.host;
    put_hook(
        h,
        "pausable",
        json!({"plugin": "csv-collector", "prefix": "pausable/", "output": "pausable"}),
    )
    .await;
    // The positive control: the same hook, not paused, on the same prefix.
    put_hook(
        h,
        "pausable-control",
        json!({"plugin": "csv-collector", "prefix": "pausable/", "output": "pausable-control"}),
    )
    .await;
    let (s, v) = call(h, "POST", "/v1/hooks/pausable/pause", None).await;
    assert_eq!((s, &v["paused"]), (200, &json!(true)));
    put_object(h, "pausable/a.csv", "n\n1\n2\n").await;
    wait_hook(h, "pausable-control", WAIT, |v| v["processed"] == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = hook(h, "pausable").await;
    assert_eq!(
        (st["pending"].as_u64(), st["processed"].as_u64()),
        (Some(1), Some(0)),
        "{st}"
    );
    assert!(dataset(h, "pausable").await.is_none());
    let (s, _) = call(h, "POST", "/v1/hooks/pausable/resume", None).await;
    assert_eq!(s, 200);
    wait_rows(h, "pausable", 2, WAIT).await;
    let st = wait_hook(h, "pausable", WAIT, |v| v["processed"] == 1).await;
    assert_eq!(st["paused"], false);
}

async fn schema_mismatch_is_dead_lettered_not_mixed_in(e: &Env) {
    let h = &e.host;
    put_hook(
        h,
        "mixed",
        json!({"plugin": "csv-collector", "prefix": "mixed/", "output": "mixed"}),
    )
    .await;
    put_object(h, "mixed/a.csv", "a,b\n1,2\n").await;
    wait_rows(h, "mixed", 1, WAIT).await;
    put_object(h, "mixed/b.csv", "name\nhello\n").await;
    let st = wait_hook(h, "mixed", WAIT, |v| v["dead_lettered"] == 1).await;
    assert!(
        st["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("schema mismatch"),
        "{st}"
    );
    assert_eq!(st["failed"], 1, "permanent errors are not retried: {st}");
    let d = dataset(h, "mixed").await.unwrap();
    assert_eq!(
        (d["rows"].as_u64(), d["parts"].as_u64()),
        (Some(1), Some(1))
    );
    // A direct upload with the wrong schema is a 409.
    let resp = client()
        .post(h.url("/v1/datasets/mixed/parts"))
        .bearer_auth(ADMIN)
        .header("content-type", "text/csv")
        .body("name\nx\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
}

async fn object_api_round_trip_and_bad_keys(e: &Env) {
    let h = &e.host;
    put_object(h, "docs/note one.txt", "hello").await;
    let resp = client()
        .get(h.url("/v1/objects/docs/note%20one.txt"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("etag"));
    assert_eq!(resp.text().await.unwrap(), "hello");
    let (s, v) = call(h, "GET", "/v1/objects?prefix=docs/", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["objects"][0]["key"], "docs/note one.txt");
    assert_eq!(v["objects"][0]["size"], 5);
    // Nothing of the host's own shows up in a listing of everything.
    let (_, all) = call(h, "GET", "/v1/objects", None).await;
    for o in all["objects"].as_array().unwrap() {
        let k = o["key"].as_str().unwrap();
        assert!(
            !k.starts_with("plugins/") && !k.starts_with("auth/") && k != "admin-token",
            "{k}"
        );
    }
    for (method, path, want) in [
        ("GET", "/v1/objects/auth/tokens.json", 403),
        ("PUT", "/v1/objects/plugins/x/meta.json", 403),
        ("PUT", "/v1/objects/datasets/x/parts/y.json", 403),
        ("GET", "/v1/objects/admin-token", 403),
        ("GET", "/v1/objects/%2Fadmin-token", 400),
        ("PUT", "/v1/objects/%2Fauth/tokens.json", 400),
        ("GET", "/v1/objects?prefix=%2Fauth", 400),
        ("GET", "/v1/objects?prefix=auth/", 403),
        ("PUT", "/v1/objects/a//b", 400),
        ("PUT", "/v1/objects/a/%00b", 400),
        ("PUT", "/v1/objects/trailing/", 400),
        ("GET", "/v1/objects/docs/missing", 404),
        ("DELETE", "/v1/objects/docs/missing", 404),
        ("GET", "/v1/objects/a%FF", 400),
    ] {
        let (s, v) = call(h, method, path, Some(b"x".to_vec())).await;
        assert_eq!(s, want, "{method} {path}: {v}");
        assert!(v["error"].is_string(), "{method} {path}: {v}");
    }
    for path in [
        "/v1/objects/a/../b",
        "/v1/objects/a/./b",
        "/v1/objects/../auth/tokens.json",
    ] {
        assert_eq!(raw_status(h, "PUT", path).await, 400, "{path}");
        assert_eq!(raw_status(h, "GET", path).await, 400, "{path}");
    }
    let resp = client()
        .put(h.url("/v1/objects/%2Fadmin-token"))
        .bearer_auth(ADMIN)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        400,
        "a leading '/' does not get around the namespace check"
    );
    let long = format!("/v1/objects/{}", "k".repeat(1100));
    assert_eq!(call(h, "PUT", &long, Some(vec![])).await.0, 400);
    // A segment longer than a file name (found by the object_key fuzz target: listing such a
    // prefix on the local store was a 500).
    let segment = "%FF".repeat(100);
    for (method, path) in [
        ("PUT", format!("/v1/objects/a/{}", "s".repeat(256))),
        ("GET", format!("/v1/objects/a/{}", "s".repeat(256))),
        ("GET", format!("/v1/objects?prefix=a{segment}b")),
    ] {
        let (s, v) = call(h, method, &path, Some(vec![])).await;
        assert_eq!(s, 400, "{method} {path}: {v}");
    }
    // A key under another object's key: nothing is there (was a 500 on the local store, found
    // by the object_key fuzz target); writing one is a 409 where the store is a file system.
    let (s, v) = call(h, "GET", "/v1/objects/docs/note%20one.txt/x", None).await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = call(h, "GET", "/v1/objects?prefix=docs/note%20one.txt/x/", None).await;
    assert_eq!((s, &v["objects"]), (200, &serde_json::json!([])), "{v}");
    let (s, v) = call(
        h,
        "PUT",
        "/v1/objects/docs/note%20one.txt/x",
        Some(b"y".to_vec()),
    )
    .await;
    let want = if e._garage.is_some() { 201 } else { 409 };
    assert_eq!(s, want, "{v}");
    if s == 201 {
        let (s, v) = call(h, "DELETE", "/v1/objects/docs/note%20one.txt/x", None).await;
        assert_eq!(s, 200, "{v}");
    }
    // A dataset name no store key can hold is simply not found (was a 500).
    let name = "x".repeat(2000);
    for (method, path) in [
        ("GET", "/v1/datasets//rows".to_string()),
        ("GET", format!("/v1/datasets/{name}")),
        ("GET", format!("/v1/datasets/{name}/rows")),
        ("DELETE", format!("/v1/datasets/{name}")),
    ] {
        let (s, v) = call(h, method, &path, None).await;
        assert_eq!(s, 404, "{method} {path}: {v}");
    }
    let (s, _) = call(h, "DELETE", "/v1/objects/docs/note%20one.txt", None).await;
    assert_eq!(s, 200);
    let (s, _) = call(h, "GET", "/v1/objects/docs/note%20one.txt", None).await;
    assert_eq!(s, 404);
    // No token: 401.
    let resp = client()
        .put(h.url("/v1/objects/x"))
        .body("y")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // /v1/info (reader) says whether the store honours create-only writes (Garage ignores
    // them); /healthz, open to anyone, says nothing about the deployment.
    let info = common::get_json(h, "/v1/info").await;
    assert_eq!(
        info["store_conditional_create"], e.conditional_create,
        "{info}"
    );
    let health = client().get(h.url("/healthz")).send().await.unwrap();
    assert_eq!(
        health.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"status": "ok"})
    );
}

#[tokio::test]
async fn hook_api_rejects_bad_specs() {
    let _turn = crate::common::serial::together().await;
    let h = &polled().host;
    common::push(h, "hook-trainer", wasm("dataset-probe"), "").await;
    for (body, want, needle) in [
        ("{", 400, "hook spec"),
        (
            r#"{"plugin":"dedup","prefix":"a/","output":"o","nope":1}"#,
            400,
            "nope",
        ),
        (r#"{"plugin":"dedup","output":"o"}"#, 400, "prefix"),
        (
            r#"{"plugin":"ghost","prefix":"a/","output":"o"}"#,
            422,
            "no plugin named",
        ),
        (
            r#"{"plugin":"hook-trainer","prefix":"a/","output":"o"}"#,
            422,
            "trainer",
        ),
        (
            r#"{"plugin":"dedup","prefix":"auth/","output":"o"}"#,
            422,
            "prefix",
        ),
        (
            r#"{"plugin":"dedup","prefix":"a/","output":"../o"}"#,
            422,
            "output",
        ),
        (
            r#"{"plugin":"dedup","prefix":"a/","output":"o","events":["moved"]}"#,
            400,
            "moved",
        ),
    ] {
        let (s, v) = call(h, "PUT", "/v1/hooks/bad", Some(body.into())).await;
        assert_eq!(s, want, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{body}: {v}");
    }
    for prefix in ["d", "e", "a", "admin"] {
        let body = json!({"plugin": "dedup", "prefix": prefix, "output": "o"}).to_string();
        let (s, v) = call(h, "PUT", "/v1/hooks/bad", Some(body.into())).await;
        assert_eq!(s, 422, "prefix {prefix} covers host keys: {v}");
    }
    assert_eq!(call(h, "GET", "/v1/hooks/bad", None).await.0, 404);
    assert_eq!(call(h, "DELETE", "/v1/hooks/bad", None).await.0, 404);
    assert_eq!(call(h, "POST", "/v1/hooks/bad/pause", None).await.0, 404);
    assert_eq!(call(h, "GET", "/v1/datasets/nope", None).await.0, 404);
    assert_eq!(call(h, "GET", "/v1/datasets/nope/rows", None).await.0, 404);
    // Create, delete.
    put_hook(
        h,
        "short-lived",
        json!({"plugin": "dedup", "prefix": "short/", "output": "short"}),
    )
    .await;
    assert_eq!(
        call(h, "DELETE", "/v1/hooks/short-lived", None).await.0,
        204
    );
    assert_eq!(call(h, "GET", "/v1/hooks/short-lived", None).await.0, 404);
}

async fn s3_notifications_in_aws_and_minio_shapes(e: &Env) {
    let h = &e.host;
    put_hook(
        h,
        "notified",
        json!({"plugin": "csv-collector", "prefix": "inbox/",
        "events": ["created", "deleted"], "output": "notified"}),
    )
    .await;
    for (key, body) in [
        ("inbox/my file.csv", "n\n1\n"),
        ("inbox/a+b.csv", "n\n2\n"),
        ("inbox/été/ü.csv", "n\n3\n"),
    ] {
        e.direct.put(key, body).await.unwrap();
    }
    let post = |body: String| async move {
        let resp = client()
            .post(h.url("/v1/events/s3"))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let s = resp.status().as_u16();
        (s, resp.json::<serde_json::Value>().await.unwrap())
    };
    // AWS: keys keep '/', space is '+', a literal '+' is %2B; no "s3:" prefix on eventName.
    let aws = json!({"Records": [
        {"eventVersion": "2.1", "eventSource": "aws:s3", "eventTime": "2026-11-28T10:00:00.000Z",
         "eventName": "ObjectCreated:Put",
         "s3": {"bucket": {"name": e.bucket}, "object": {"key": "inbox/my+file.csv", "size": 4, "sequencer": "0A1"}}},
        {"eventVersion": "2.1", "eventSource": "aws:s3", "eventTime": "2026-11-28T10:00:00.000Z",
         "eventName": "ObjectCreated:CompleteMultipartUpload",
         "s3": {"bucket": {"name": e.bucket}, "object": {"key": "inbox/a%2Bb.csv", "size": 4, "sequencer": "0A2"}}}
    ]});
    let (s, v) = post(aws.to_string()).await;
    assert_eq!(
        (s, v["accepted"].as_u64(), v["deliveries"].as_u64()),
        (200, Some(2), Some(2)),
        "{v}"
    );
    // MinIO: "s3:" prefix, '/' escaped as %2F, a top-level Key.
    let minio = json!({"EventName": "s3:ObjectCreated:Put", "Key": "bucket/inbox/été/ü.csv", "Records": [
        {"eventVersion": "2.0", "eventSource": "minio:s3", "eventName": "s3:ObjectCreated:Put",
         "s3": {"bucket": {"name": e.bucket}, "object": {"key": "inbox%2F%C3%A9t%C3%A9%2F%C3%BC.csv", "size": 4,
                "eTag": "", "sequencer": "17A"}}}
    ]});
    let (s, v) = post(minio.to_string()).await;
    assert_eq!((s, v["accepted"].as_u64()), (200, Some(1)), "{v}");
    let d = wait_rows(h, "notified", 3, WAIT).await;
    let mut sources: Vec<_> = d["part_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["lineage"]["source"].as_str().unwrap().to_string())
        .collect();
    sources.sort();
    assert_eq!(
        sources,
        ["inbox/a+b.csv", "inbox/my file.csv", "inbox/été/ü.csv"]
    );
    // At-least-once senders: the same notification again changes nothing.
    let (s, _) = post(aws.to_string()).await;
    assert_eq!(s, 200);
    wait_hook(h, "notified", WAIT, |v| {
        v["duplicates"] == 2 && v["pending"] == 0
    })
    .await;
    assert_eq!(dataset(h, "notified").await.unwrap()["parts"], 3);
    // The setup test event is acknowledged and ignored; garbage is a 400; no token a 401.
    let (s, v) = post(r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-28T10:00:00Z","Bucket":"any"}"#.into()).await;
    assert_eq!(
        (s, v["ignored"].as_u64(), v["accepted"].as_u64()),
        (200, Some(1), Some(0))
    );
    assert_eq!(post("not json".into()).await.0, 400);
    assert_eq!(
        post(r#"{"Records":[{"eventName":"ObjectCreated:Put"}]}"#.into())
            .await
            .0,
        400
    );
    let resp = client()
        .post(h.url("/v1/events/s3"))
        .body(aws.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // A delete notification retracts the object's part.
    e.direct.delete("inbox/my file.csv").await.unwrap();
    let del = json!({"Records": [{"eventName": "ObjectRemoved:Delete",
        "s3": {"bucket": {"name": e.bucket}, "object": {"key": "inbox/my+file.csv", "sequencer": "0B1"}}}]});
    assert_eq!(post(del.to_string()).await.0, 200);
    let d = wait_rows(h, "notified", 2, WAIT).await;
    assert_eq!(d["parts"], 2);
}

/// Deleting a dataset retracts what hooks derived from its parts.
async fn dataset_delete_cascades(e: &Env) {
    let h = &e.host;
    put_hook(
        h,
        "cascade",
        json!({"plugin": "dedup", "prefix": "datasets/casc-in/", "output": "casc-out"}),
    )
    .await;
    let resp = client()
        .post(h.url("/v1/datasets/casc-in/parts"))
        .bearer_auth(ADMIN)
        .header("content-type", "text/csv")
        .body("k\n1\n1\n2\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    wait_rows(h, "casc-out", 2, WAIT).await;
    assert_eq!(call(h, "DELETE", "/v1/datasets/casc-in", None).await.0, 204);
    assert!(dataset(h, "casc-in").await.is_none());
    let d = wait_rows(h, "casc-out", 0, WAIT).await;
    assert_eq!(d["parts"], 0);
    assert_eq!(call(h, "DELETE", "/v1/datasets/casc-in", None).await.0, 404);
}

/// Events for different keys run in parallel, up to the plugin's concurrency limit (here 3).
#[tokio::test]
async fn local_different_keys_run_in_parallel_up_to_the_plugin_limit() {
    let _turn = crate::common::serial::together().await;
    let h = &polled().host;
    common::push(h, "slow", wasm("hostile"), "?concurrency=3").await;
    put_hook(
        h,
        "slow-hook",
        json!({"plugin": "slow", "prefix": "slow/", "output": "slow",
        "config": {"mode": "sleep", "ms": 400}}),
    )
    .await;
    for i in 0..6 {
        put_object(h, &format!("slow/{i}.csv"), "a\n1\n").await;
    }
    let mut peak = 0;
    let start = std::time::Instant::now();
    loop {
        let st = hook(h, "slow-hook").await;
        peak = peak.max(st["in_flight"].as_u64().unwrap());
        let plugin = common::get_json(h, "/v1/plugins/slow").await;
        let running = plugin["stats"]["in_flight"].as_u64().unwrap_or(0);
        assert!(running <= 3, "the plugin's limit holds: {plugin}");
        if st["processed"] == 6 {
            break;
        }
        assert!(start.elapsed() < WAIT, "{st}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        peak >= 2,
        "deliveries for different keys overlapped (peak {peak})"
    );
    assert_eq!(wait_rows(h, "slow", 6, WAIT).await["parts"], 6);
}
