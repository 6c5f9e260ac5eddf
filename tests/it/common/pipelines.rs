//! Helpers for the pipeline tests: apply files, start and await runs, read SSE streams.

use super::events::call;
use super::{ADMIN, TestHost};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The shipped breast-cancer CSV.
pub fn cancer_csv() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/data/breast-cancer.csv"
    ))
    .unwrap()
}

/// The shipped example pipeline, with `edit` applied to its text.
pub fn example_pipeline(edit: impl Fn(String) -> String) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/pipelines/breast-cancer.toml"
    ))
    .unwrap();
    edit(text)
}

pub async fn apply(host: &TestHost, name: &str, text: &str) -> (u16, Value) {
    call(
        host,
        "PUT",
        &format!("/v1/pipelines/{name}"),
        Some(text.as_bytes().to_vec()),
    )
    .await
}

/// Start a run by hand; returns its id.
pub async fn start(host: &TestHost, name: &str) -> String {
    let (status, v) = call(host, "POST", &format!("/v1/pipelines/{name}/runs"), None).await;
    assert_eq!(status, 202, "start {name}: {v}");
    v["id"].as_str().unwrap().to_string()
}

pub async fn run(host: &TestHost, id: &str) -> Value {
    let (status, v) = call(host, "GET", &format!("/v1/runs/{id}"), None).await;
    assert_eq!(status, 200, "run {id}: {v}");
    v
}

/// Poll until `pred` holds for the run.
pub async fn wait_run(
    host: &TestHost,
    id: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let end = Instant::now() + timeout;
    loop {
        let r = run(host, id).await;
        if pred(&r) {
            return r;
        }
        assert!(Instant::now() < end, "run {id} never got there: {r:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn ended(r: &Value) -> bool {
    matches!(
        r["state"].as_str(),
        Some("succeeded" | "failed" | "cancelled")
    )
}

pub async fn runs_of(host: &TestHost, name: &str) -> Vec<Value> {
    let (status, v) = call(host, "GET", &format!("/v1/pipelines/{name}/runs"), None).await;
    assert_eq!(status, 200, "runs of {name}: {v}");
    v["runs"].as_array().unwrap().clone()
}

pub fn step<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {run:#}"))
}

/// An open Server-Sent Events stream, read event by event.
pub struct Sse {
    resp: reqwest::Response,
    buf: String,
}

/// One SSE event: its `event:` name and `data:` parsed as JSON.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub data: Value,
}

impl Sse {
    pub async fn open(host: &TestHost, path: &str) -> Sse {
        let resp = reqwest::Client::new()
            .get(host.url(path))
            .bearer_auth(ADMIN)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "SSE {path}");
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Sse {
            resp,
            buf: String::new(),
        }
    }

    /// The next event (comments and keep-alives skipped); `None` when the stream ended.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                let (mut event, mut data) = (String::from("message"), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data += v.trim_start();
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return Some(SseEvent {
                    event,
                    data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
                });
            }
            let chunk = tokio::time::timeout_at(end, self.resp.chunk())
                .await
                .expect("SSE event in time")
                .unwrap()?;
            self.buf += &String::from_utf8_lossy(&chunk);
        }
    }
}
