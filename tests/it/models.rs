//! Model building end to end over real HTTP: the bundled `logistic-regression` trainer (a real
//! Wasm component) trains on the shipped breast-cancer and iris CSVs, the host evaluates through
//! tract, gates, moves the alias, and serves on the Open Inference Protocol v2; an ONNX model
//! exported by scikit-learn (skl2onnx) is uploaded and served; bad models and bad requests get
//! the documented errors.

use crate::common;

use common::events::call;
use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tract_onnx::prelude::*;

const BREAST_CANCER: &str = include_str!("../../examples/data/breast-cancer.csv");
const IRIS: &str = include_str!("../../examples/data/iris.csv");

/// Upload `csv` as the single part of dataset `name`.
async fn dataset(host: &TestHost, name: &str, csv: &str) {
    let resp = client()
        .post(host.url(&format!("/v1/datasets/{name}/parts")))
        .bearer_auth(ADMIN)
        .header("content-type", "text/csv")
        .body(csv.to_string())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
}

/// Submit a training job and wait for it to finish; returns the final job.
async fn train(host: &TestHost, request: Value) -> Value {
    let (status, job) = call(host, "POST", "/v1/train", Some(request.to_string().into())).await;
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let start = Instant::now();
    loop {
        let (_, job) = call(host, "GET", &format!("/v1/train/{id}"), None).await;
        match job["state"].as_str().unwrap() {
            "succeeded" | "failed" => return job,
            _ if start.elapsed() > Duration::from_secs(300) => panic!("job did not finish: {job}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Feature rows of a CSV with a final `label` column: (features, labels).
fn rows(csv: &str) -> (Vec<Vec<f32>>, Vec<i64>) {
    let mut x = Vec::new();
    let mut y = Vec::new();
    for line in csv.lines().skip(1) {
        let v: Vec<&str> = line.split(',').collect();
        x.push(
            v[..v.len() - 1]
                .iter()
                .map(|s| s.parse::<f64>().unwrap() as f32)
                .collect(),
        );
        y.push(v[v.len() - 1].parse().unwrap());
    }
    (x, y)
}

async fn infer(host: &TestHost, path: &str, body: Value) -> (u16, Value) {
    call(host, "POST", path, Some(body.to_string().into())).await
}

/// A regression model `prediction = features · w` (FP32 `[N, len(w)]` → `[N]`).
fn linear_onnx(w: &[f32]) -> Vec<u8> {
    use aimass_plugin_sdk::onnx::{Dim, ElemType, GraphBuilder};
    let mut g = GraphBuilder::new("linear");
    g.input(
        "features",
        ElemType::F32,
        &[Dim::named("N"), Dim::Fixed(w.len() as i64)],
    )
    .initializer_f32("w", &[w.len() as i64], w)
    .node("MatMul", &["features", "w"], &["prediction"], vec![])
    .output("prediction", ElemType::F32, &[Dim::named("N")]);
    g.build()
}

fn features_input(x: &[Vec<f32>]) -> Value {
    json!({"name": "features", "shape": [x.len(), x[0].len()], "datatype": "FP32", "data": x})
}

/// The stored ONNX of a version run directly in tract on `x` (`[N, F]`): every output.
fn direct_outputs(host: &TestHost, model: &str, version: u32, x: &[Vec<f32>]) -> TVec<TValue> {
    let path = host
        .store_dir()
        .join(format!("models/{model}/v{version}/model.onnx"));
    let plan = tract_onnx::onnx()
        .model_for_path(path)
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let flat: Vec<f32> = x.iter().flatten().copied().collect();
    let input = Tensor::from_shape(&[x.len(), x[0].len()], &flat).unwrap();
    plan.run(tvec!(input.into())).unwrap()
}

fn values<T: Datum + Copy>(v: &TValue) -> Vec<T> {
    v.to_plain_array_view::<T>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

/// A stored classifier run directly in tract: (labels, probabilities).
fn direct(host: &TestHost, model: &str, version: u32, x: &[Vec<f32>]) -> (Vec<i64>, Vec<f32>) {
    let out = direct_outputs(host, model, version, x);
    (values(&out[0]), values(&out[1]))
}

/// A stored model run by onnxruntime (`tests/ort_infer.py`, installed from PyPI on first use):
/// each output's values by name.
async fn onnxruntime_outputs(host: &TestHost, model: &str, version: u32, x: &[Vec<f32>]) -> Value {
    use tokio::io::AsyncWriteExt;
    ensure_python_module("onnxruntime", &["onnxruntime", "numpy"]);
    let path = host
        .store_dir()
        .join(format!("models/{model}/v{version}/model.onnx"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/ort_infer.py");
    let mut child = tokio::process::Command::new("python3")
        .arg(script)
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let rows = serde_json::to_vec(x).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&rows).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn breast_cancer_trains_gates_publishes_and_serves() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    dataset(host, "breast-cancer", BREAST_CANCER).await;
    let job = train(
        host,
        json!({
            "model": "breast-cancer", "trainer": "logistic-regression", "dataset": "breast-cancer",
            "label": "label", "hyperparameters": {"c": [0.01, 0.1, 1, 10]},
            "gate": {"min_auc": 0.98},
        }),
    )
    .await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let result = &job["result"];
    let auc = result["test_scores"]["auc"].as_f64().unwrap();
    assert!(auc >= 0.98, "test AUC {auc}");
    assert!(
        result["test_scores"]["accuracy"].as_f64().unwrap() >= 0.93,
        "{result}"
    );
    assert_eq!(result["published"], true);
    assert_eq!(job["candidates"].as_array().unwrap().len(), 4);
    assert!(
        job["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["scores"]["auc"].is_number())
    );
    // The trainer's progress reached the job.
    assert!(
        job["progress"]["done"].as_u64().unwrap() > 0,
        "{}",
        job["progress"]
    );
    let version = result["version"].as_u64().unwrap() as u32;

    // Registry: the version with its metrics, signature and the production alias.
    let model = get_json(host, "/v1/models/breast-cancer").await;
    assert_eq!(model["aliases"]["production"], version);
    let v = &model["versions"].as_array().unwrap()[version as usize - 1];
    assert_eq!(v["source"]["kind"], "training");
    let split = &v["metrics"]["selection"]["split"];
    assert_eq!(
        split["train"].as_u64().unwrap()
            + split["validation"].as_u64().unwrap()
            + split["test"].as_u64().unwrap(),
        569
    );
    assert_eq!(
        v["metrics"]["test"]["classification"]["confusion"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(
        v["metrics"]["test"]["classification"]["roc_curve"]
            .as_array()
            .unwrap()
            .len()
            > 2
    );
    assert_eq!(
        v["signature"]["inputs"][0],
        json!({"name": "features", "datatype": "FP32", "shape": [-1, 30]})
    );
    assert_eq!(v["metadata"]["classes"], "0,1");

    // OIP metadata and readiness.
    let meta = get_json(host, "/v2/models/breast-cancer").await;
    assert_eq!(meta["platform"], "onnx");
    assert_eq!(meta["inputs"][0]["shape"], json!([-1, 30]));
    assert_eq!(
        meta["outputs"][0],
        json!({"name": "label", "datatype": "INT64", "shape": [-1]})
    );
    assert_eq!(
        meta["outputs"][1],
        json!({"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]})
    );
    assert_eq!(
        get_json(host, "/v2/models/breast-cancer/ready").await["ready"],
        true
    );
    assert_eq!(
        get_json(
            host,
            &format!("/v2/models/breast-cancer/versions/{version}/ready")
        )
        .await["ready"],
        true
    );

    // Every row over HTTP (nested data) equals a direct tract run of the stored ONNX, bit for bit.
    let (x, y) = rows(BREAST_CANCER);
    let (status, out) = infer(
        host,
        "/v2/models/breast-cancer/infer",
        json!({"id": "all", "inputs": [features_input(&x)]}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        (
            out["model_name"].as_str(),
            out["model_version"].as_str(),
            out["id"].as_str()
        ),
        (
            Some("breast-cancer"),
            Some(version.to_string().as_str()),
            Some("all")
        )
    );
    let (labels, proba) = direct(host, "breast-cancer", version, &x);
    let served: Vec<i64> = serde_json::from_value(out["outputs"][0]["data"].clone()).unwrap();
    let served_p: Vec<f32> = serde_json::from_value(out["outputs"][1]["data"].clone()).unwrap();
    assert_eq!(served, labels);
    assert_eq!(served_p, proba);
    assert_eq!(out["outputs"][1]["shape"], json!([569, 2]));
    // And the reference engine agrees on the same stored ONNX: every label, every probability
    // within 1e-6.
    let reference = onnxruntime_outputs(host, "breast-cancer", version, &x).await;
    let ort_labels: Vec<i64> = serde_json::from_value(reference["label"].clone()).unwrap();
    let ort_p: Vec<f32> = serde_json::from_value(reference["probabilities"].clone()).unwrap();
    assert_eq!(served, ort_labels, "labels differ from onnxruntime's");
    assert_eq!(served_p.len(), ort_p.len());
    for (i, (got, want)) in served_p.iter().zip(&ort_p).enumerate() {
        assert!(
            (got - want).abs() <= 1e-6,
            "probability {i}: {got} vs onnxruntime {want}"
        );
    }
    let correct = served.iter().zip(&y).filter(|(a, b)| a == b).count();
    assert!(correct as f64 / 569.0 > 0.95, "{correct}/569");

    // One row, flat data, only the label output, by version alias.
    let one = json!({"inputs": [{"name": "features", "shape": [1, 30], "datatype": "FP32", "data": x[0]}], "outputs": [{"name": "label"}]});
    let (status, out) = infer(
        host,
        "/v2/models/breast-cancer/versions/production/infer",
        one,
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["outputs"].as_array().unwrap().len(), 1);
    assert_eq!(out["outputs"][0]["data"], json!([labels[0]]));
    assert_eq!(out["id"].as_str().unwrap().len(), 32, "a generated id");
}

#[tokio::test]
async fn iris_multinomial_with_random_search() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    dataset(host, "iris", IRIS).await;
    let job = train(
        host,
        json!({
            "model": "iris", "trainer": "logistic-regression", "dataset": "iris", "label": "label",
            "hyperparameters": {"c": {"min": 0.1, "max": 100, "log": true}},
            "search": {"kind": "random", "trials": 3, "seed": 1}, "metric": "accuracy",
            "split": {"validation": 0.2, "test": 0.3, "seed": 5},
        }),
    )
    .await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let scores = &job["result"]["test_scores"];
    assert!(scores["accuracy"].as_f64().unwrap() >= 0.9, "{scores}");
    assert!(scores["auc"].as_f64().unwrap() >= 0.95, "{scores}");
    assert!(scores["f1_macro"].as_f64().unwrap() >= 0.9, "{scores}");
    assert_eq!(job["candidates"].as_array().unwrap().len(), 3);
    let version = job["result"]["version"].as_u64().unwrap() as u32;
    let (x, _) = rows(IRIS);
    let (status, out) = infer(
        host,
        "/v2/models/iris/infer",
        json!({"inputs": [features_input(&x)]}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let (labels, proba) = direct(host, "iris", version, &x);
    assert_eq!(out["outputs"][0]["data"], json!(labels));
    assert_eq!(
        serde_json::from_value::<Vec<f32>>(out["outputs"][1]["data"].clone()).unwrap(),
        proba
    );
    let classes: std::collections::BTreeSet<i64> = labels.iter().copied().collect();
    assert_eq!(classes.into_iter().collect::<Vec<_>>(), [0, 1, 2]);
}

#[tokio::test]
async fn sklearn_model_uploads_and_matches_onnxruntime() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    let onnx = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/sklearn-iris-logreg.onnx"
    ))
    .unwrap();
    let expected: Value =
        serde_json::from_str(include_str!("../data/sklearn-iris-logreg.json")).unwrap();
    let (status, v) = call(host, "PUT", "/v1/models/sk-iris?alias=staging", Some(onnx)).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["version"], 1);
    assert_eq!(v["signature"]["inputs"][0]["name"], "X");
    assert_eq!(v["signature"]["inputs"][0]["shape"], json!([-1, 4]));
    let rows = expected["rows"].as_array().unwrap();
    let x: Vec<Value> = rows.iter().map(|r| r["features"].clone()).collect();
    let body =
        json!({"inputs": [{"name": "X", "shape": [x.len(), 4], "datatype": "FP32", "data": x}]});
    let (status, out) = infer(host, "/v2/models/sk-iris/versions/staging/infer", body).await;
    assert_eq!(status, 200, "{out}");
    let labels = out["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "label")
        .unwrap();
    let proba = out["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "probabilities")
        .unwrap();
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(labels["data"][i], r["label"], "row {i}");
        for k in 0..3 {
            let got = proba["data"][i * 3 + k].as_f64().unwrap();
            let want = r["probabilities"][k].as_f64().unwrap();
            assert!(
                (got - want).abs() < 1e-5,
                "row {i} class {k}: {got} vs onnxruntime {want}"
            );
        }
    }
}

#[tokio::test]
async fn bad_models_and_bad_requests_get_clear_errors() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    // Not ONNX at all.
    let (status, v) = call(
        host,
        "PUT",
        "/v1/models/junk",
        Some(b"not a model".to_vec()),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("not a valid ONNX model"),
        "{v}"
    );
    // A well-formed model using an operator nothing implements.
    use aimass_plugin_sdk::onnx::{Dim, ElemType, GraphBuilder};
    let mut g = GraphBuilder::new("unsupported");
    g.input("x", ElemType::F32, &[Dim::named("N"), Dim::Fixed(2)])
        .node("DictVectorizer", &["x"], &["y"], vec![])
        .output("y", ElemType::F32, &[Dim::named("N"), Dim::Fixed(1)]);
    let (status, v) = call(host, "PUT", "/v1/models/unsupported", Some(g.build())).await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"], "unsupported ONNX operator(s): DictVectorizer");
    // An ONNX-ML operator with its attributes missing: a 422 naming the attribute.
    let mut g = GraphBuilder::new("malformed-trees");
    g.input("x", ElemType::F32, &[Dim::named("N"), Dim::Fixed(2)])
        .node("TreeEnsembleRegressor", &["x"], &["y"], vec![])
        .output("y", ElemType::F32, &[Dim::named("N"), Dim::Fixed(1)]);
    let (status, v) = call(host, "PUT", "/v1/models/malformed-trees", Some(g.build())).await;
    assert_eq!(status, 422, "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains("TreeEnsembleRegressor attribute nodes_treeids: missing"),
        "{error}"
    );
    let (status, _) = call(host, "GET", "/v1/models/junk", None).await;
    assert_eq!(status, 404, "nothing was stored for a rejected upload");
    let (status, _) = call(host, "PUT", "/v1/models/Bad%20Name", Some(b"x".to_vec())).await;
    assert_eq!(status, 400);

    // A small valid model, two versions.
    let model = |w: f32| linear_onnx(&[w, 1.0]);
    for w in [2.0, 3.0] {
        let (status, v) = call(host, "PUT", "/v1/models/lin", Some(model(w))).await;
        assert_eq!(status, 201, "{v}");
    }
    let ok = |data: Value| json!({"inputs": [{"name": "features", "shape": [2, 2], "datatype": "FP32", "data": data}]});
    // No production alias: the latest version serves.
    let (status, out) = infer(host, "/v2/models/lin/infer", ok(json!([[1, 1], [2, 0]]))).await;
    assert_eq!(
        (status, &out["model_version"], &out["outputs"][0]["data"]),
        (200, &json!("2"), &json!([4.0, 6.0]))
    );
    let (_, out) = infer(
        host,
        "/v2/models/lin/versions/1/infer",
        ok(json!([1, 1, 2, 0])),
    )
    .await;
    assert_eq!(out["outputs"][0]["data"], json!([3.0, 4.0]));

    let bad = |datatype: &str, shape: Value, data: Value| json!({"inputs": [{"name": "features", "shape": shape, "datatype": datatype, "data": data}]});
    let cases = [
        (
            bad("FP64", json!([1, 2]), json!([1, 2])),
            "input `features` expects FP32, got FP64",
        ),
        (
            bad("FP32", json!([1, 3]), json!([1, 2, 3])),
            "expects shape [-1, 2]",
        ),
        (
            bad("FP32", json!([2]), json!([1, 2])),
            "expects shape [-1, 2]",
        ),
        (bad("FP32", json!([1, 2]), json!([1])), "needs 2 values"),
        (
            bad("FP32", json!([1, 2]), json!([1, "a"])),
            "not a valid FP32",
        ),
        (
            bad("COMPLEX", json!([1, 2]), json!([1, 2])),
            "unknown datatype",
        ),
        (json!({"inputs": []}), "missing input `features`"),
        (
            json!({"inputs": [{"name": "other", "shape": [1], "datatype": "FP32", "data": [1]}]}),
            "unknown input `other`",
        ),
        (json!({"inputs": "x"}), "invalid inference request"),
    ];
    for (body, want) in cases {
        let (status, v) = infer(host, "/v2/models/lin/infer", body.clone()).await;
        assert_eq!(status, 400, "{body} → {v}");
        assert!(v["error"].as_str().unwrap().contains(want), "{body}: {v}");
    }
    let (status, v) = infer(host, "/v2/models/lin/infer", json!({"inputs": [{"name": "features", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}], "outputs": [{"name": "nope"}]})).await;
    assert_eq!(status, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("unknown output `nope`"),
        "{v}"
    );

    // Unknown model, version, alias: 404 with the protocol's error body.
    for path in [
        "/v2/models/nope/infer",
        "/v2/models/lin/versions/9/infer",
        "/v2/models/lin/versions/canary/infer",
    ] {
        let (status, v) = infer(host, path, ok(json!([1, 1, 2, 0]))).await;
        assert_eq!(status, 404, "{path}: {v}");
        assert!(v["error"].is_string());
    }
    for path in [
        "/v2/models/nope",
        "/v2/models/lin/versions/9/ready",
        "/v1/models/nope",
    ] {
        let (status, _) = call(host, "GET", path, None).await;
        assert_eq!(status, 404, "{path}");
    }

    // Aliases: move production to 1; version 1 cannot be deleted while aliased.
    let (status, v) = call(
        host,
        "PUT",
        "/v1/models/lin/aliases/production",
        Some(br#"{"version": 1}"#.to_vec()),
    )
    .await;
    assert_eq!(
        (status, &v["aliases"]["production"]),
        (200, &json!(1)),
        "{v}"
    );
    let (_, out) = infer(host, "/v2/models/lin/infer", ok(json!([1, 1, 2, 0]))).await;
    assert_eq!(out["model_version"], "1");
    let (status, v) = call(host, "DELETE", "/v1/models/lin/versions/1", None).await;
    assert_eq!(status, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("production"), "{v}");
    for (body, status_want) in [(r#"{"version": 7}"#, 404), (r#"{"v": 1}"#, 400)] {
        let (status, _) = call(host, "PUT", "/v1/models/lin/aliases/x", Some(body.into())).await;
        assert_eq!(status, status_want, "{body}");
    }
    let (status, _) = call(
        host,
        "PUT",
        "/v1/models/lin/aliases/7",
        Some(br#"{"version": 1}"#.to_vec()),
    )
    .await;
    assert_eq!(status, 400, "a numeric alias would shadow a version");
    let (status, _) = call(
        host,
        "PUT",
        "/v1/models/lin/aliases/production",
        Some(br#"{"version": 2}"#.to_vec()),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(host, "DELETE", "/v1/models/lin/versions/1", None).await;
    assert_eq!(status, 204);
    let (status, _) = infer(
        host,
        "/v2/models/lin/versions/1/infer",
        ok(json!([1, 1, 2, 0])),
    )
    .await;
    assert_eq!(status, 404);
    let model = get_json(host, "/v1/models/lin").await;
    assert_eq!(model["versions"].as_array().unwrap().len(), 1);
    assert!(!host.store_dir().join("models/lin/v1/model.onnx").exists());

    // Gate validation.
    let (status, _) = call(
        host,
        "PUT",
        "/v1/models/lin/gate",
        Some(br#"{"auc": 0.9}"#.to_vec()),
    )
    .await;
    assert_eq!(status, 400);
    let (status, v) = call(
        host,
        "PUT",
        "/v1/models/lin/gate",
        Some(br#"{"min_r2": 0.5}"#.to_vec()),
    )
    .await;
    assert_eq!((status, &v["gate"]), (200, &json!({"min_r2": 0.5})));
}

#[tokio::test]
async fn oip_server_routes_and_auth() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    for path in ["/v2", "/v2/health/live", "/v2/health/ready"] {
        let resp = client().get(host.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path} needs no token");
    }
    let v2: Value = client()
        .get(host.url("/v2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v2["name"], "aimass");
    assert_eq!(
        client()
            .get(host.url("/v2/health/ready"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["ready"],
        true
    );
    let resp = client()
        .post(host.url("/v2/models/x/infer"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = client().get(host.url("/v2/models/x")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn training_requests_are_validated_and_failures_reported() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    let base = json!({"model": "m", "trainer": "logistic-regression", "dataset": "none", "label": "label"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases = [
        (
            with("trainer", json!("nope")),
            "trainer: no plugin named `nope`",
        ),
        (
            with("trainer", json!("dedup")),
            "is a cleaner plugin, not a trainer",
        ),
        (with("model", json!("Bad Name")), "model:"),
        (
            with("metric", json!("auroc")),
            "metric: unknown metric `auroc`",
        ),
        (with("split", json!({"test": 0.0})), "split:"),
        (
            with("hyperparameters", json!({"c": []})),
            "hyperparameters: hyperparameter `c` has no values",
        ),
        (
            with("hyperparameters", json!({"label": [1]})),
            "set by the job itself",
        ),
        (with("gate", json!({"auc": 1})), "gate:"),
        (
            with("transforms", json!([{"plugin": "dedup"}])),
            "transforms[0].plugin",
        ),
        (with("colour", json!(1)), "unknown field `colour`"),
    ];
    for (body, want) in cases {
        let (status, v) = call(host, "POST", "/v1/train", Some(body.to_string().into())).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(want), "{body}: {v}");
    }
    // Valid request, missing dataset: the job fails and says why.
    let job = train(host, base.clone()).await;
    assert_eq!(job["state"], "failed");
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("no dataset named `none`"),
        "{job}"
    );
    // A label that does not exist.
    dataset(host, "tiny", "a,b\n1,0\n2,1\n3,0\n4,1\n5,0\n6,1\n").await;
    let job = train(
        host,
        json!({"model": "m", "trainer": "logistic-regression", "dataset": "tiny", "label": "y"}),
    )
    .await;
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("label: no column `y`"),
        "{job}"
    );
    let (status, _) = call(host, "GET", "/v1/train/0000", None).await;
    assert_eq!(status, 404);
    let (_, list) = call(host, "GET", "/v1/train", None).await;
    assert!(list["jobs"].as_array().unwrap().len() >= 2);
}

#[tokio::test]
async fn fitted_transforms_are_stored_and_applied_at_serving() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    dataset(host, "iris-raw", IRIS).await;
    let job = train(
        host,
        json!({
            "model": "iris-scaled", "trainer": "logistic-regression", "dataset": "iris-raw",
            "label": "label", "transforms": [{"plugin": "standard-scaler"}], "alias": "prod",
        }),
    )
    .await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert!(job["result"]["test_scores"]["accuracy"].as_f64().unwrap() >= 0.9);
    let version = get_json(host, "/v1/models/iris-scaled/versions/prod").await;
    assert_eq!(version["transforms"][0]["plugin"], "standard-scaler");
    let key = version["transforms"][0]["state_key"].as_str().unwrap();
    let state: Value =
        serde_json::from_slice(&std::fs::read(host.store_dir().join(key)).unwrap()).unwrap();
    assert_eq!(state["columns"].as_array().unwrap().len(), 4);

    // The endpoint takes raw features: served = tract(model, scaled(raw)) with the stored state.
    let (x, _) = rows(IRIS);
    let (status, out) = infer(
        host,
        "/v2/models/iris-scaled/versions/prod/infer",
        json!({"inputs": [features_input(&x)]}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let scaled: Vec<Vec<f32>> = x
        .iter()
        .map(|row| {
            row.iter()
                .zip(state["columns"].as_array().unwrap())
                .map(|(v, c)| {
                    ((f64::from(*v) - c["mean"].as_f64().unwrap()) / c["std"].as_f64().unwrap())
                        as f32
                })
                .collect()
        })
        .collect();
    let (labels, proba) = direct(host, "iris-scaled", 1, &scaled);
    assert_eq!(out["outputs"][0]["data"], json!(labels));
    assert_eq!(
        serde_json::from_value::<Vec<f32>>(out["outputs"][1]["data"].clone()).unwrap(),
        proba
    );
    // Raw features straight into the bare ONNX would give other probabilities.
    let (_, unscaled) = direct(host, "iris-scaled", 1, &x);
    assert_ne!(unscaled, proba);
}

const DIABETES: &str = include_str!("../../examples/data/diabetes.csv");

/// A stored regressor run directly in tract: its predictions.
fn direct_regression(host: &TestHost, model: &str, version: u32, x: &[Vec<f32>]) -> Vec<f32> {
    values(&direct_outputs(host, model, version, x)[0])
}

#[tokio::test]
async fn ridge_and_mlp_regression_on_diabetes() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    dataset(host, "diabetes", DIABETES).await;
    let (x, _) = {
        // The label is a float here: parse rows by hand.
        let mut x = Vec::new();
        for line in DIABETES.lines().skip(1) {
            let v: Vec<f32> = line
                .split(',')
                .map(|s| s.parse::<f64>().unwrap() as f32)
                .collect();
            x.push(v[..10].to_vec());
        }
        (x, ())
    };
    for (model, trainer, params, floor) in [
        (
            "diabetes-ridge",
            "linear-regression",
            json!({"alpha": [0.1, 1, 10]}),
            0.35,
        ),
        (
            "diabetes-mlp",
            "mlp",
            json!({"hidden": ["16"], "epochs": [300], "learning_rate": [0.01]}),
            0.3,
        ),
    ] {
        let job = train(
            host,
            json!({"model": model, "trainer": trainer, "dataset": "diabetes", "label": "label", "hyperparameters": params}),
        )
        .await;
        assert_eq!(job["state"], "succeeded", "{job:#}");
        let scores = &job["result"]["test_scores"];
        assert!(scores["r2"].as_f64().unwrap() >= floor, "{model}: {scores}");
        assert!(scores["rmse"].as_f64().unwrap() < 70.0, "{model}: {scores}");
        assert_eq!(job["result"]["metric"], "rmse");
        let meta = get_json(host, &format!("/v2/models/{model}")).await;
        assert_eq!(
            meta["outputs"][0],
            json!({"name": "prediction", "datatype": "FP32", "shape": [-1]})
        );
        let (status, out) = infer(
            host,
            &format!("/v2/models/{model}/infer"),
            json!({"inputs": [features_input(&x)]}),
        )
        .await;
        assert_eq!(status, 200, "{out}");
        let served: Vec<f32> = serde_json::from_value(out["outputs"][0]["data"].clone()).unwrap();
        assert_eq!(served, direct_regression(host, model, 1, &x), "{model}");
    }
}

#[tokio::test]
async fn mlp_classifies_breast_cancer() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    dataset(host, "bc-mlp", BREAST_CANCER).await;
    let job = train(
        host,
        json!({"model": "bc-mlp", "trainer": "mlp", "dataset": "bc-mlp", "label": "label",
               "hyperparameters": {"hidden": ["16", "16,8"], "epochs": 100, "learning_rate": 0.01}}),
    )
    .await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let auc = job["result"]["test_scores"]["auc"].as_f64().unwrap();
    assert!(auc >= 0.97, "{auc}");
    let (x, _) = rows(BREAST_CANCER);
    let (status, out) = infer(
        host,
        "/v2/models/bc-mlp/infer",
        json!({"inputs": [features_input(&x)]}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let (labels, proba) = direct(host, "bc-mlp", 1, &x);
    assert_eq!(out["outputs"][0]["data"], json!(labels));
    assert_eq!(
        serde_json::from_value::<Vec<f32>>(out["outputs"][1]["data"].clone()).unwrap(),
        proba
    );
}

#[tokio::test]
async fn dynamic_batching_answers_each_request_with_its_own_rows() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    // prediction = 2·a + b, so every row's answer is known.
    let (status, _) = call(
        host,
        "PUT",
        "/v1/models/batched",
        Some(linear_onnx(&[2.0, 1.0])),
    )
    .await;
    assert_eq!(status, 201);
    for (body, want) in [
        (r#"{"max_batch_size": 0, "max_queue_delay_us": 1}"#, 400),
        (r#"{"size": 1}"#, 400),
    ] {
        let (status, _) = call(
            host,
            "PUT",
            "/v1/models/batched/batching",
            Some(body.into()),
        )
        .await;
        assert_eq!(status, want, "{body}");
    }
    let cfg = r#"{"max_batch_size": 16, "max_queue_delay_us": 200000}"#;
    let (status, v) = call(host, "PUT", "/v1/models/batched/batching", Some(cfg.into())).await;
    assert_eq!(
        (status, &v["batching"]["max_batch_size"]),
        (200, &json!(16)),
        "{v}"
    );
    // 12 concurrent requests of 1 to 3 rows each (rows = i % 3 + 1).
    let requests = (0..12).map(|i| {
        let rows: Vec<[f32; 2]> = (0..(i % 3 + 1)).map(|r| [i as f32, r as f32]).collect();
        async move {
            let body = json!({"id": format!("r{i}"), "inputs": [{"name": "features", "shape": [rows.len(), 2], "datatype": "FP32", "data": rows}]});
            let (status, out) = infer(shared(), "/v2/models/batched/infer", body).await;
            assert_eq!(status, 200, "{out}");
            assert_eq!(out["id"], format!("r{i}"));
            let want: Vec<f32> = rows.iter().map(|[a, b]| 2.0 * a + b).collect();
            assert_eq!(out["outputs"][0]["data"], json!(want), "request {i}");
            assert_eq!(out["outputs"][0]["shape"], json!([rows.len()]));
        }
    });
    futures::future::join_all(requests).await;
    let stats = &get_json(host, "/v1/models/batched").await["batching_stats"]["1"];
    let (requests, batches, rows) = (
        stats["requests"].as_u64().unwrap(),
        stats["batches"].as_u64().unwrap(),
        stats["rows"].as_u64().unwrap(),
    );
    assert_eq!((requests, rows), (12, 24), "{stats}");
    assert!(batches < requests, "requests were batched: {stats}");
    // Off again: requests run alone.
    let (status, v) = call(
        host,
        "PUT",
        "/v1/models/batched/batching",
        Some(b"null".to_vec()),
    )
    .await;
    assert_eq!((status, &v["batching"]), (200, &Value::Null));
    let (status, out) = infer(host, "/v2/models/batched/infer", json!({"inputs": [{"name": "features", "shape": [1, 2], "datatype": "FP32", "data": [1, 1]}]})).await;
    assert_eq!((status, &out["outputs"][0]["data"]), (200, &json!([3.0])));
}

#[tokio::test]
async fn plugins_call_granted_models_through_the_inference_import() {
    let _turn = crate::common::serial::together().await;
    use aimass_plugin_sdk::learn::Classes;
    use aimass_plugin_sdk::learn::export::linear_classifier;
    let host = shared();
    // P(class 1) = σ(a − 2b + 0.5), labels 10 / 20.
    let features: Vec<String> = vec!["a".into(), "b".into()];
    let g = linear_classifier(
        "s",
        &features,
        "y",
        &Classes(vec![10, 20]),
        &[1.0, -2.0],
        &[0.5],
    );
    let (status, v) = call(host, "PUT", "/v1/models/scorer-model", Some(g.build())).await;
    assert_eq!(status, 201, "{v}");
    let scorer = wasm("row-scorer");
    push(
        host,
        "scorer-granted",
        scorer.clone(),
        "?models=scorer-model",
    )
    .await;
    push(host, "scorer-all", scorer.clone(), "?models=*").await;
    push(host, "scorer-denied", scorer.clone(), "?models=other").await;
    let csv = "name,a,b\nx,1,0\ny,0,1\nz,2,0.5\n";
    let (status, _, body) = invoke(
        host,
        "scorer-granted",
        "?model=scorer-model&features=a,b",
        "text/csv",
        Some("application/x-ndjson"),
        csv,
    )
    .await;
    assert_eq!(status, 200, "{}", text(&body));
    let rows: Vec<Value> = text(&body)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
    for (row, (a, b)) in rows.iter().zip([(1.0, 0.0), (0.0, 1.0), (2.0, 0.5)]) {
        let p = sigmoid(a - 2.0 * b + 0.5);
        assert!((row["score"].as_f64().unwrap() - p).abs() < 1e-6, "{row}");
        assert_eq!(row["predicted"], if p > 0.5 { 20 } else { 10 }, "{row}");
    }
    // The same by version and with the wildcard grant.
    let (status, _, body) = invoke(
        host,
        "scorer-all",
        "?model=scorer-model@1",
        "text/csv",
        None,
        csv,
    )
    .await;
    assert_eq!(status, 200, "{}", text(&body));
    // Not granted, unknown model, wrong input: the plugin gets the host's error.
    let (status, _, body) = invoke(
        host,
        "scorer-denied",
        "?model=scorer-model",
        "text/csv",
        None,
        csv,
    )
    .await;
    assert_eq!(status, 500);
    assert!(
        error_of(&body).contains("not granted model `scorer-model`"),
        "{}",
        text(&body)
    );
    let (status, _, body) = invoke(host, "scorer-all", "?model=nope", "text/csv", None, csv).await;
    assert_eq!(status, 500);
    assert!(
        error_of(&body).contains("no model named `nope`"),
        "{}",
        text(&body)
    );
    let (status, _, body) = invoke(
        host,
        "scorer-all",
        "?model=scorer-model&input=x",
        "text/csv",
        None,
        csv,
    )
    .await;
    assert_eq!(status, 500);
    assert!(
        error_of(&body).contains("missing input `features`"),
        "{}",
        text(&body)
    );
    // Bad grants at upload.
    let resp = client()
        .put(host.url("/v1/plugins/bad-grant?models=Bad%20Name"))
        .bearer_auth(ADMIN)
        .body(scorer)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

/// NVIDIA's tritonclient (installed from PyPI on first use, like Garage for the S3 tests), run
/// unmodified against the host: health, readiness, metadata and an inference.
#[tokio::test]
async fn tritonclient_talks_to_the_host() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    ensure_python_module("tritonclient.http", &["tritonclient[http]", "numpy"]);
    let onnx = {
        use aimass_plugin_sdk::learn::Classes;
        use aimass_plugin_sdk::learn::export::linear_classifier;
        let features: Vec<String> = vec!["a".into(), "b".into()];
        linear_classifier(
            "t",
            &features,
            "y",
            &Classes(vec![0, 1]),
            &[1.0, -1.0],
            &[0.0],
        )
        .build()
    };
    let (status, _) = call(host, "PUT", "/v1/models/triton-check", Some(onnx)).await;
    assert_eq!(status, 201);
    let rows = json!([[2.0, 1.0], [0.0, 3.0]]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/oip_client.py");
    let out = tokio::process::Command::new("python3")
        .args([script, &host.url, ADMIN, "triton-check", &rows.to_string()])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&seen["live"], &seen["ready"], &seen["model_ready"]),
        (&json!(true), &json!(true), &json!(true))
    );
    assert_eq!(
        (
            seen["server"].as_str(),
            seen["platform"].as_str(),
            seen["id"].as_str()
        ),
        (Some("aimass"), Some("onnx"), Some("triton-1"))
    );
    assert_eq!(
        seen["inputs"][0],
        json!({"name": "features", "datatype": "FP32", "shape": [-1, 2]})
    );
    assert_eq!(seen["label"], json!([1, 0]));
    let p = seen["probabilities"].as_array().unwrap();
    let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
    assert!(
        (p[0][1].as_f64().unwrap() - sigmoid(1.0)).abs() < 1e-6,
        "{seen}"
    );
    assert!(
        (p[1][1].as_f64().unwrap() - sigmoid(-3.0)).abs() < 1e-6,
        "{seen}"
    );
    // The binary tensor data extension gives the same tensors.
    assert_eq!(seen["binary_label"], seen["label"]);
    assert_eq!(seen["binary_probabilities"], seen["probabilities"]);
}

#[tokio::test]
async fn version_numbers_are_never_reused_and_bad_aliases_store_nothing() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    let model = |w: f32| linear_onnx(&[w]);
    for (w, want) in [(1.0, 1), (2.0, 2)] {
        let (_, v) = call(host, "PUT", "/v1/models/renumber", Some(model(w))).await;
        assert_eq!(v["version"], want);
    }
    let (status, _) = call(host, "DELETE", "/v1/models/renumber/versions/2", None).await;
    assert_eq!(status, 204);
    let (_, v) = call(host, "PUT", "/v1/models/renumber", Some(model(3.0))).await;
    assert_eq!(v["version"], 3, "version 2 is not handed out again: {v}");
    let (_, out) = infer(
        host,
        "/v2/models/renumber/versions/3/infer",
        json!({"inputs": [{"name": "features", "shape": [1, 1], "datatype": "FP32", "data": [2]}]}),
    )
    .await;
    assert_eq!(out["outputs"][0]["data"], json!([6.0]));
    // A bad alias is refused before anything is stored.
    for alias in ["7", "Bad"] {
        let (status, _) = call(
            host,
            "PUT",
            &format!("/v1/models/renumber?alias={alias}"),
            Some(model(4.0)),
        )
        .await;
        assert_eq!(status, 400, "{alias}");
    }
    let shown = get_json(host, "/v1/models/renumber").await;
    assert_eq!(shown["latest_version"], 3);
    // Gate rules must name a metric the host computes.
    let (status, v) = call(
        host,
        "PUT",
        "/v1/models/renumber/gate",
        Some(br#"{"min_acuracy": 0.9}"#.to_vec()),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("unknown metric `acuracy`"),
        "{v}"
    );
}

#[tokio::test]
async fn boolean_labels_train_and_unusable_splits_fail_early() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    let mut csv = String::from("x,y,label\n");
    for i in 0..60 {
        let x = i as f64 / 10.0;
        csv.push_str(&format!(
            "{x},{},{}\n",
            (i * 7 % 5) as f64,
            if i % 3 == 0 || x > 4.0 {
                "true"
            } else {
                "false"
            }
        ));
    }
    dataset(host, "bools", &csv).await;
    let job = train(host, json!({"model": "bools", "trainer": "logistic-regression", "dataset": "bools", "label": "label", "alias": null})).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_eq!(
        get_json(host, "/v1/models/bools").await["versions"][0]["metadata"]["classes"],
        "0,1"
    );
    // One row of class 1 and half the rows held out for test: class 1 never reaches training.
    let mut csv = String::from("x,label\n");
    for i in 0..9 {
        csv.push_str(&format!("{i},0\n"));
    }
    csv.push_str("9,1\n");
    dataset(host, "lonely", &csv).await;
    let job = train(
        host,
        json!({"model": "lonely", "trainer": "logistic-regression", "dataset": "lonely", "label": "label",
               "split": {"validation": 0.0, "test": 0.5}}),
    )
    .await;
    assert_eq!(job["state"], "failed");
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("class 1 has no row in the train split"),
        "{job}"
    );
    assert!(
        job["candidates"].as_array().unwrap().is_empty(),
        "nothing was trained"
    );
}

#[tokio::test]
async fn binary_tensor_data_extension() {
    let _turn = crate::common::serial::together().await;
    let host = shared();
    let (status, _) = call(
        host,
        "PUT",
        "/v1/models/binary",
        Some(linear_onnx(&[2.0, 1.0])),
    )
    .await;
    assert_eq!(status, 201);
    let post = |header: Value, tail: Vec<u8>, length: Option<String>| async move {
        let json = header.to_string().into_bytes();
        let len = length.unwrap_or_else(|| json.len().to_string());
        let resp = client()
            .post(shared().url("/v2/models/binary/infer"))
            .bearer_auth(ADMIN)
            .header("inference-header-content-length", len)
            .body([json, tail].concat())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let json_len = resp
            .headers()
            .get("inference-header-content-length")
            .map(|v| v.to_str().unwrap().parse::<usize>().unwrap());
        (status, json_len, resp.bytes().await.unwrap().to_vec())
    };
    let rows: Vec<u8> = [1.0f32, 2.0, 3.0, -1.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let input = |size: usize| json!({"name": "features", "shape": [2, 2], "datatype": "FP32", "parameters": {"binary_data_size": size}});
    // Binary in, binary out.
    let req = json!({"inputs": [input(16)], "outputs": [{"name": "prediction", "parameters": {"binary_data": true}}]});
    let (status, json_len, body) = post(req, rows.clone(), None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let json_len = json_len.expect("binary response names its JSON length");
    let head: Value = serde_json::from_slice(&body[..json_len]).unwrap();
    assert_eq!(head["outputs"][0]["parameters"]["binary_data_size"], 8);
    assert!(head["outputs"][0].get("data").is_none());
    let values: Vec<f32> = body[json_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(values, [4.0, 5.0]);
    // Binary in, JSON out (the default when no output asks for binary).
    let (status, json_len, body) = post(json!({"inputs": [input(16)]}), rows.clone(), None).await;
    assert_eq!((status, json_len), (200, None));
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["outputs"][0]["data"],
        json!([4.0, 5.0])
    );
    // Framing errors are 400s that say what is wrong.
    let cases = [
        (
            json!({"inputs": [input(16)]}),
            rows[..12].to_vec(),
            None,
            "runs past the end",
        ),
        (
            json!({"inputs": [input(12)]}),
            rows.clone(),
            None,
            "4 bytes after the JSON header",
        ),
        (
            json!({"inputs": [input(16)]}),
            rows.clone(),
            Some("999".to_string()),
            "must be a byte count",
        ),
        (
            json!({"inputs": [{"name": "features", "shape": [2, 2], "datatype": "FP32"}]}),
            vec![],
            None,
            "neither `data` nor",
        ),
        (
            json!({"inputs": [input(8)]}),
            rows[..8].to_vec(),
            None,
            "needs 16 bytes",
        ),
    ];
    for (header, tail, length, want) in cases {
        let (status, _, body) = post(header.clone(), tail, length).await;
        assert_eq!(status, 400, "{header}");
        assert!(
            error_of(&body).contains(want),
            "{header}: {}",
            String::from_utf8_lossy(&body)
        );
    }
}
