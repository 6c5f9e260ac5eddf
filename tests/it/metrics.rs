//! `GET /metrics`: real traffic of each kind (plugin calls, traps, an HTTP function, OIP
//! inference, a pipeline run, a hook), then the exposition parsed by Prometheus' reference Python parser
//! (`prometheus_client`, installed from PyPI when missing) and checked series by series.

use crate::common;

use common::*;
use serde_json::{Value, json};

/// Samples of the exposition, parsed by prometheus_client.
fn parse(text: &str) -> Vec<Value> {
    use std::io::Write;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/metrics_parse.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected the exposition: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The value of the sample `name` whose labels include `labels`.
fn value(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v))
        .map(|s| s["value"].as_f64().unwrap())
}

#[tokio::test]
async fn metrics_endpoint_parses_and_has_the_listed_series() {
    let _turn = crate::common::serial::together().await;
    ensure_python_module("prometheus_client.parser", &["prometheus_client"]);
    let host = shared();
    // Plugin calls: two good, one trap.
    for _ in 0..2 {
        let (s, _, _) = invoke(host, "dedup", "", "text/csv", None, "a\n1\n1\n").await;
        assert_eq!(s, 200);
    }
    push(host, "hostile", wasm("hostile"), "").await;
    let (s, _, _) = invoke(host, "hostile", "?mode=trap", "text/csv", None, "a\n1\n").await;
    assert_eq!(s, 500);
    // An HTTP function: one 2xx, one 5xx.
    push(host, "fn-echo", wasm("http-echo"), "").await;
    for (path, want) in [("/fn/fn-echo/", 200), ("/fn/fn-echo/trap", 500)] {
        let r = client()
            .get(host.url(path))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want);
    }
    // OIP inference on an uploaded model.
    put_sklearn_iris(host, "m-iris").await;
    let body = json!({"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32",
        "data": [5.1, 3.5, 1.4, 0.2]}]});
    let r = client()
        .post(host.url("/v2/models/m-iris/infer"))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A pipeline run on a dataset (iris), so the run series exist.
    let iris = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/data/iris.csv"
    ))
    .unwrap();
    let r = client()
        .post(host.url("/v1/datasets/m-iris-data/parts"))
        .bearer_auth(ADMIN)
        .header("content-type", "text/csv")
        .body(iris)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let spec = "[source]\ndataset = \"m-iris-data\"\n[train]\nmodel = \"m-iris-pipe\"\n\
                trainer = \"logistic-regression\"\nlabel = \"label\"\n\
                [publish]\ngate = { min_accuracy = 0.5 }\n";
    let (status, v) = pipelines::apply(host, "m-pipe", spec).await;
    assert_eq!(status, 201, "{v}");
    let id = pipelines::start(host, "m-pipe").await;
    let r = pipelines::wait_run(
        host,
        &id,
        std::time::Duration::from_secs(60),
        pipelines::ended,
    )
    .await;
    assert_eq!(r["state"], "succeeded", "{r:#}");
    // A hook, so its gauges exist.
    let r = client()
        .put(host.url("/v1/hooks/m-hook"))
        .bearer_auth(ADMIN)
        .json(&json!({"plugin": "csv-collector", "prefix": "m-in/", "output": "m-out"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    // Scraping needs a token like any read.
    let r = client().get(host.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = client()
        .get(host.url("/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let samples = parse(&r.text().await.unwrap());

    let calls = |plugin, outcome| {
        value(
            &samples,
            "aimass_plugin_calls_total",
            &[("plugin", plugin), ("outcome", outcome)],
        )
    };
    assert!(calls("dedup", "ok").unwrap() >= 2.0);
    assert_eq!(calls("hostile", "trap"), Some(1.0));
    assert_eq!(
        value(
            &samples,
            "aimass_plugin_traps_total",
            &[("plugin", "hostile"), ("kind", "unreachable")]
        ),
        Some(1.0)
    );
    assert!(
        value(
            &samples,
            "aimass_plugin_call_duration_seconds_count",
            &[("plugin", "dedup")]
        )
        .unwrap()
            >= 2.0
    );
    assert!(
        value(
            &samples,
            "aimass_plugin_instantiate_seconds_bucket",
            &[("plugin", "dedup"), ("le", "+Inf")]
        )
        .unwrap()
            >= 2.0
    );
    assert!(
        value(
            &samples,
            "aimass_plugin_fuel_consumed_total",
            &[("plugin", "dedup")]
        )
        .unwrap()
            > 0.0
    );
    assert!(
        value(
            &samples,
            "aimass_plugin_memory_peak_bytes",
            &[("plugin", "dedup")]
        )
        .unwrap()
            > 65536.0
    );
    for class in ["2xx", "5xx"] {
        assert_eq!(
            value(
                &samples,
                "aimass_http_function_responses_total",
                &[("function", "fn-echo"), ("class", class)]
            ),
            Some(1.0),
            "{class}"
        );
    }
    assert_eq!(
        value(
            &samples,
            "aimass_inference_requests_total",
            &[("model", "m-iris"), ("result", "ok")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "aimass_inference_duration_seconds_count",
            &[("model", "m-iris")]
        ),
        Some(1.0)
    );
    let pipe = [("pipeline", "m-pipe"), ("outcome", "succeeded")];
    assert_eq!(
        value(&samples, "aimass_pipeline_runs_total", &pipe),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "aimass_pipeline_run_duration_seconds_count",
            &pipe
        ),
        Some(1.0)
    );
    let capacity = value(&samples, "aimass_instance_pool_capacity", &[]).unwrap();
    let in_use = value(&samples, "aimass_instance_pool_in_use", &[]).unwrap();
    assert!(capacity >= in_use && in_use >= 0.0, "{capacity} {in_use}");
    // The poller's first pass ran at start (default interval 1 s, few objects: a cheap pass).
    let pass = value(&samples, "aimass_poll_pass_seconds", &[]).unwrap();
    let period = value(&samples, "aimass_poll_period_seconds", &[]).unwrap();
    assert!(
        (0.0..1.0).contains(&pass) && period >= 1.0 && period < 1.0 + 1e-3 + pass,
        "pass {pass} period {period}"
    );
    for name in [
        "aimass_hook_pending_events",
        "aimass_hook_dead_letters",
        "aimass_hook_lag_seconds",
        "aimass_hook_processed_events",
    ] {
        assert_eq!(
            value(&samples, name, &[("hook", "m-hook")]),
            Some(0.0),
            "{name}"
        );
    }
}
