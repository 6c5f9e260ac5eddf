//! Deliberately hostile plugins (`plugins/hostile`): each misbehaviour fails only its own call,
//! with the documented status and message, while normal traffic keeps succeeding.
//!
//! Each test takes the heavy turn (`common::serial::heavy`), so one runs at a time: their timing
//! windows (a deadline plus 300 ms, a 503 after ~1 s of waiting) hold on a host that is not also
//! running the others' hostile calls.

use crate::common;

use common::normal::Normal;
use common::*;
use std::time::{Duration, Instant};

const TIMEOUT_MS: u64 = 400;

async fn setup() -> &'static TestHost {
    let host = shared();
    push(
        host,
        "hostile",
        wasm("hostile"),
        &format!("?timeout_ms={TIMEOUT_MS}&memory_mb=64&output_mb=1&concurrency=16"),
    )
    .await;
    host
}

async fn hostile(host: &TestHost, query: &str) -> (u16, String, Duration) {
    let t0 = Instant::now();
    let (status, _, body) = invoke(host, "hostile", query, "text/csv", None, "a,b\n1,2\n").await;
    let elapsed = t0.elapsed();
    let msg = if status == 200 {
        text(&body)
    } else {
        error_of(&body)
    };
    (status, msg, elapsed)
}

#[tokio::test]
async fn each_hostile_behaviour_fails_cleanly_while_normal_traffic_succeeds() {
    let _turn = crate::common::serial::heavy().await;
    let host = setup().await;

    // Normal traffic on a well-behaved plugin during the whole test.
    let normal = Normal::start(host, 2, Duration::ZERO);

    let cases: Vec<(&str, u16, &str)> = vec![
        ("?mode=spin", 504, "deadline of 400 ms"),
        ("?mode=log-spin", 504, "deadline of 400 ms"),
        ("?mode=grow", 500, "memory limit of 67108864 bytes"),
        ("?mode=host-sleep&ms=60000", 504, "deadline of 400 ms"),
        ("?mode=recurse", 500, "plugin trapped"),
        ("?mode=trap", 500, "unreachable code reached"),
        ("?mode=panic&message=boom", 500, "hostile: boom"),
        (
            "?mode=stderr&size=32768&message=after+noise",
            500,
            "hostile: after noise",
        ),
        (
            "?mode=big&size=2097152",
            500,
            "exceeds the limit of 1048576 bytes",
        ),
        ("?mode=error&kind=input", 422, "invalid input"),
        ("?mode=error&kind=config", 400, "invalid config"),
        ("?mode=error&kind=internal", 500, "plugin failed"),
        ("?mode=ok", 200, "a,b\n1,2\n"),
    ];
    // All hostile calls at once, concurrently with the normal traffic.
    let calls = cases.iter().map(|(q, _, _)| hostile(host, q));
    let results = futures::future::join_all(calls).await;
    for ((query, status, needle), (got, msg, elapsed)) in cases.iter().zip(results) {
        assert_eq!(got, *status, "{query}: {msg}");
        assert!(
            msg.contains(needle),
            "{query}: {msg:?} should contain {needle:?}"
        );
        if *status == 504 {
            // The deadline fires within a couple of epoch ticks (10 ms), plus scheduling slack.
            assert!(
                elapsed < Duration::from_millis(TIMEOUT_MS + 300),
                "{query} took {elapsed:?}"
            );
            assert!(
                elapsed >= Duration::from_millis(TIMEOUT_MS),
                "{query} took {elapsed:?}"
            );
        }
    }

    normal.finish().await;

    // The host still answers, and the stats saw what happened.
    let v: serde_json::Value = get_json(host, "/v1/plugins/hostile").await;
    assert!(v["stats"]["timeouts"].as_u64().unwrap() >= 2, "{v}");
    assert!(v["stats"]["traps"].as_u64().unwrap() >= 3, "{v}");
    assert_eq!(v["stats"]["in_flight"], 0);
}

#[tokio::test]
async fn busy_plugin_answers_503_with_retry_after() {
    let _turn = crate::common::serial::heavy().await;
    let host = shared();
    push(
        host,
        "sleepy",
        wasm("hostile"),
        "?concurrency=1&timeout_ms=5000",
    )
    .await;
    let hold = tokio::spawn(async move {
        invoke(
            shared(),
            "sleepy",
            "?mode=sleep&ms=2500",
            "text/csv",
            None,
            "a\n1\n",
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    let resp = post_csv(host, "/v1/plugins/sleepy/invoke?mode=ok", "a\n1\n").await;
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    // It waited for the queue timeout (1 s), not for the busy call.
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(2000),
        "{waited:?}"
    );
    assert!(error_of(&resp.bytes().await.unwrap()).contains("busy"));
    let (status, _, _) = hold.await.unwrap();
    assert_eq!(status, 200);
    // Free again.
    let (status, _, _) = invoke(host, "sleepy", "?mode=ok", "text/csv", None, "a\n1\n").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn instance_pool_exhaustion_is_503_and_recovers() {
    let _turn = crate::common::serial::heavy().await;
    use aimass::config::HostConfig;
    use aimass::runtime::EngineOptions;
    let host = TestHost::start(HostConfig {
        engine: EngineOptions {
            max_instances: 2,
            ..Default::default()
        },
        register_bundled: false,
        ..HostConfig::default()
    });
    let info: serde_json::Value = get_json(&host, "/v1/info").await;
    assert_eq!(
        info["pooling_allocator"], true,
        "this test needs the pooling allocator"
    );
    push(
        &host,
        "sleepy",
        wasm("hostile"),
        "?concurrency=8&timeout_ms=5000",
    )
    .await;
    let host = std::sync::Arc::new(host);
    let holds = hold(host.clone(), "sleepy", 2500, 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Both pool slots are taken: the third call waits the queue timeout (1 s), then gets 503.
    let t0 = Instant::now();
    let resp = post_csv(&host, "/v1/plugins/sleepy/invoke?mode=ok", "a\n1\n").await;
    let waited = t0.elapsed();
    assert_eq!(resp.status().as_u16(), 503, "after {waited:?}");
    assert_eq!(resp.headers()["retry-after"], "1");
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert!(error_of(&resp.bytes().await.unwrap()).contains("instance slots of the host are busy"));
    // A call that starts less than the queue timeout before a slot frees up waits for it.
    let late = {
        let host = host.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            let t0 = Instant::now();
            let (status, _, _) =
                invoke(&host, "sleepy", "?mode=ok", "text/csv", None, "a\n1\n").await;
            (status, t0.elapsed())
        })
    };
    for h in holds {
        assert_eq!(h.await.unwrap().0, 200);
    }
    let (status, waited) = late.await.unwrap();
    assert_eq!(status, 200, "queued call got a slot once one was free");
    assert!(
        waited >= Duration::from_millis(200),
        "it really queued: {waited:?}"
    );
    let (status, _, _) = invoke(&host, "sleepy", "?mode=ok", "text/csv", None, "a\n1\n").await;
    assert_eq!(status, 200, "slots are returned to the pool");
}

#[tokio::test]
async fn on_demand_allocation_works_too() {
    let _turn = crate::common::serial::heavy().await;
    use aimass::config::HostConfig;
    use aimass::runtime::EngineOptions;
    let host = TestHost::start(HostConfig {
        engine: EngineOptions {
            pooling: false,
            ..Default::default()
        },
        register_bundled: false,
        ..HostConfig::default()
    });
    push(
        &host,
        "hostile",
        wasm("hostile"),
        "?timeout_ms=300&memory_mb=32",
    )
    .await;
    let (status, _, body) = invoke(&host, "hostile", "?mode=ok", "text/csv", None, "a\n1\n").await;
    assert_eq!((status, text(&body).as_str()), (200, "a\n1\n"));
    let (status, _, body) =
        invoke(&host, "hostile", "?mode=grow", "text/csv", None, "a\n1\n").await;
    assert_eq!(status, 500);
    assert!(error_of(&body).contains("memory limit of 33554432 bytes"));
    let (status, _, _) = invoke(&host, "hostile", "?mode=spin", "text/csv", None, "a\n1\n").await;
    assert_eq!(status, 504);
}

#[tokio::test]
async fn a_caller_hanging_up_frees_its_slot_and_is_counted() {
    let _turn = crate::common::serial::heavy().await;
    let host = shared();
    push(
        host,
        "hangup",
        wasm("hostile"),
        "?concurrency=1&timeout_ms=5000",
    )
    .await;
    let call = tokio::spawn(async move {
        client()
            .post(shared().url("/v1/plugins/hangup/invoke?mode=host-sleep&ms=3000"))
            .bearer_auth(ADMIN)
            .header("content-type", "text/csv")
            .body("a\n1\n")
            .send()
            .await
    });
    let stats = |v: &serde_json::Value| {
        (
            v["stats"]["in_flight"].clone(),
            v["stats"]["cancelled"].clone(),
        )
    };
    let wait_for = |want: (i32, i32)| async move {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let v = get_json(shared(), "/v1/plugins/hangup").await;
            if stats(&v) == (want.0.into(), want.1.into()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "stats never reached {want:?}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    wait_for((1, 0)).await;
    call.abort(); // The client goes away mid-call.
    wait_for((0, 1)).await;
    // Its only slot is free again at once, not after the 3 s sleep.
    let t0 = Instant::now();
    let (status, _, _) = invoke(host, "hangup", "?mode=ok", "text/csv", None, "a\n1\n").await;
    assert_eq!(status, 200);
    assert!(t0.elapsed() < Duration::from_millis(900));
}

#[tokio::test]
async fn lowering_concurrency_in_a_new_version_counts_calls_still_running() {
    let _turn = crate::common::serial::heavy().await;
    let host = shared();
    push(
        host,
        "shrink",
        wasm("hostile"),
        "?concurrency=2&timeout_ms=5000",
    )
    .await;
    let holds = hold(shared(), "shrink", 2200, 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let v2 = push(
        host,
        "shrink",
        wasm("hostile"),
        "?concurrency=1&timeout_ms=5000",
    )
    .await;
    assert_eq!(v2["version"], 2);
    // Two v1 calls still hold slots and the limit is now 1: a new call is not let in.
    let (status, _, body) = invoke(host, "shrink", "?mode=ok", "text/csv", None, "a\n1\n").await;
    assert_eq!(status, 503, "{}", text(&body));
    for h in holds {
        assert_eq!(h.await.unwrap().0, 200);
    }
    let (status, _, _) = invoke(host, "shrink", "?mode=ok", "text/csv", None, "a\n1\n").await;
    assert_eq!(status, 200);
}
