//! Per-plugin rate limits and quotas over real HTTP: 429 with `Retry-After`, usage shown on
//! `GET /v1/plugins/{name}`, the refusals counted in `/metrics`, other plugins unaffected.

use crate::common;

use common::{ADMIN, client, invoke, push, shared, wasm};
use serde_json::Value;

async fn plugin(name: &str) -> Value {
    common::get_json(shared(), &format!("/v1/plugins/{name}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_quotas_refuse_with_429_and_show_usage() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    // 1 call/s with a burst of 3: three pass at once, the fourth is refused.
    push(host, "g-rate", wasm("dedup"), "?rate=1&burst=3").await;
    for i in 0..3 {
        let (s, _, _) = invoke(host, "g-rate", "", "text/csv", None, "a\n1\n").await;
        assert_eq!(s, 200, "call {i}");
    }
    let r = client()
        .post(host.url("/v1/plugins/g-rate/invoke"))
        .bearer_auth(ADMIN)
        .header("content-type", "text/csv")
        .body("a\n1\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"].as_str().unwrap().contains("rate limit of 1/s"),
        "{e}"
    );
    let p = plugin("g-rate").await;
    assert_eq!(p["limits"]["rate_per_sec"], 1);
    assert_eq!(p["governance"]["rate_limit"]["burst"], 3);
    assert_eq!(p["governance"]["refused_rate"], 1);
    // A second later there is a token again.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (s, _, _) = invoke(host, "g-rate", "", "text/csv", None, "a\n1\n").await;
    assert_eq!(s, 200);

    // A quota of 2 calls per hour.
    push(
        host,
        "g-quota",
        wasm("dedup"),
        "?quota=2&quota_window_s=3600",
    )
    .await;
    for _ in 0..2 {
        let (s, _, _) = invoke(host, "g-quota", "", "text/csv", None, "a\n1\n").await;
        assert_eq!(s, 200);
    }
    let (s, _, body) = invoke(host, "g-quota", "", "text/csv", None, "a\n1\n").await;
    assert_eq!(s, 429, "{}", common::text(&body));
    assert!(common::error_of(&body).contains("quota of 2 calls per 3600 s"));
    let q = &plugin("g-quota").await["governance"]["quota"];
    assert_eq!(q["used"], 2);
    assert_eq!(q["remaining"], 0);
    assert!(q["resets_in_ms"].as_u64().unwrap() > 3_000_000, "{q}");
    // Other plugins are not affected.
    let (s, _, _) = invoke(host, "dedup", "", "text/csv", None, "a\n1\n").await;
    assert_eq!(s, 200);
    // Bad settings are refused at upload.
    let r = client()
        .put(host.url("/v1/plugins/g-bad?rate=0"))
        .bearer_auth(ADMIN)
        .body(wasm("dedup"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The refusals are in /metrics.
    let m = client()
        .get(host.url("/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains(r#"aimass_plugin_calls_total{outcome="rate_limited",plugin="g-rate"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"aimass_plugin_calls_total{outcome="quota_exceeded",plugin="g-quota"} 1"#)
    );
}
