//! `aimass pipeline ...`: apply pipeline files, start runs and watch them step by step. The
//! watch view reads the run's Server-Sent Events stream (`GET /v1/runs/{id}/events`): one line
//! per step with a spinner while it runs, its time and key figures when it ends.

use super::client::{Client, send};
use super::{ClientArgs, PipelineCmd};
use anyhow::{Context, Result, bail};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

async fn json(rb: reqwest::RequestBuilder) -> Result<Value> {
    Ok(send(rb).await?.json::<Value>().await?)
}

fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub async fn pipeline(cmd: PipelineCmd, args: &ClientArgs) -> Result<()> {
    let c = Client::new(args)?;
    match cmd {
        PipelineCmd::Apply { file, name } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let name = match name {
                Some(n) => n,
                None => file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .context("name the pipeline with --name")?
                    .to_string(),
            };
            let is_json = file.extension().is_some_and(|e| e == "json");
            let ct = if is_json {
                "application/json"
            } else {
                "application/toml"
            };
            let v = json(
                c.request(Method::PUT, &format!("/v1/pipelines/{name}"))
                    .header("content-type", ct)
                    .body(text),
            )
            .await?;
            println!("pipeline {name} applied");
            if let Some(t) = v["next_cron_ms"].as_u64() {
                println!("next scheduled run at {t} ms since the epoch");
            }
            Ok(())
        }
        PipelineCmd::List => print_json(&json(c.request(Method::GET, "/v1/pipelines")).await?),
        PipelineCmd::Show { name } => {
            print_json(&json(c.request(Method::GET, &format!("/v1/pipelines/{name}"))).await?)
        }
        PipelineCmd::Runs { name } => {
            print_json(&json(c.request(Method::GET, &format!("/v1/pipelines/{name}/runs"))).await?)
        }
        PipelineCmd::Status { run } => {
            print_json(&json(c.request(Method::GET, &format!("/v1/runs/{run}"))).await?)
        }
        PipelineCmd::Cancel { run } => {
            json(c.request(Method::POST, &format!("/v1/runs/{run}/cancel"))).await?;
            println!("run {run} cancelling");
            Ok(())
        }
        PipelineCmd::Delete { name } => {
            send(c.request(Method::DELETE, &format!("/v1/pipelines/{name}"))).await?;
            println!("pipeline {name} deleted");
            Ok(())
        }
        PipelineCmd::Run { name, watch } => {
            let v = json(c.request(Method::POST, &format!("/v1/pipelines/{name}/runs"))).await?;
            let id = v["id"]
                .as_str()
                .context("no run id in the answer")?
                .to_string();
            if !watch {
                println!("{id}");
                return Ok(());
            }
            println!("run {id}");
            watch_run(&c, &id).await
        }
        PipelineCmd::Watch { run } => watch_run(&c, &run).await,
    }
}

/// A step's key figures, for its finished line.
fn figures(step: &str, m: &Value) -> String {
    let f = |k: &str| {
        m.get(k)
            .filter(|v| !v.is_null())
            .map(|v| format!("{k} {v}"))
    };
    let parts: Vec<String> = match step {
        "collect" => vec![f("objects"), f("rows")],
        s if s.starts_with("clean") => vec![f("rows_out"), f("removed")],
        "split" => vec![f("train"), f("validation"), f("test")],
        "train" => vec![f("metric"), f("validation_score")],
        "evaluate" => vec![f("auc"), f("accuracy"), f("f1"), f("rmse"), f("r2")],
        "publish" => vec![f("version"), f("published"), f("gate_failures")],
        _ => vec![],
    }
    .into_iter()
    .flatten()
    .collect();
    parts.join(" · ")
}

/// One spinner per step of a run, as its events arrive.
struct StepBars {
    multi: MultiProgress,
    style: ProgressStyle,
    bars: HashMap<String, ProgressBar>,
}

impl StepBars {
    fn new() -> Result<StepBars> {
        Ok(StepBars {
            multi: MultiProgress::new(),
            style: ProgressStyle::with_template("{spinner} {prefix:<14} {elapsed:>4} {msg}")?,
            bars: HashMap::new(),
        })
    }

    fn bar(&mut self, step: &str) -> ProgressBar {
        self.bars
            .entry(step.to_string())
            .or_insert_with(|| {
                let b = self.multi.add(ProgressBar::new_spinner());
                b.set_style(self.style.clone());
                b.set_prefix(step.to_string());
                b.enable_steady_tick(Duration::from_millis(120));
                b
            })
            .clone()
    }

    /// The run as it stands when the stream opens (steps done before are shown as resumed).
    fn snapshot(&mut self, v: &Value) {
        for s in v["steps"].as_array().into_iter().flatten() {
            let b = self.bar(s["id"].as_str().unwrap_or("?"));
            match s["state"].as_str() {
                Some("succeeded") => b.finish_with_message(format!(
                    "done (resumed) {}",
                    figures(s["id"].as_str().unwrap_or(""), &s["metrics"])
                )),
                Some("running") => b.set_message("running"),
                _ => b.set_message("pending"),
            }
        }
    }

    /// A `run.step` event.
    fn step(&mut self, d: &Value) {
        let step = d["step"].as_str().unwrap_or("?");
        let b = self.bar(step);
        match d["state"].as_str() {
            Some("running") => {
                b.reset_elapsed();
                b.set_message("running");
            }
            Some("succeeded") => {
                b.finish_with_message(format!("done {}", figures(step, &d["metrics"])))
            }
            Some(other) => {
                b.abandon_with_message(format!("{other}: {}", d["error"].as_str().unwrap_or("")))
            }
            None => {}
        }
    }

    fn abandon_unfinished(&self) {
        for b in self.bars.values() {
            if !b.is_finished() {
                b.abandon();
            }
        }
    }
}

/// Take the next complete server-sent event (`event`, parsed `data`) off `buf`.
fn next_event(buf: &mut String) -> Option<(String, Option<Value>)> {
    let i = buf.find("\n\n")?;
    let block: String = buf.drain(..i + 2).collect();
    let (mut event, mut data) = (String::new(), String::new());
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().into();
        } else if let Some(v) = line.strip_prefix("data:") {
            data += v.trim_start();
        }
    }
    Some((event, serde_json::from_str::<Value>(&data).ok()))
}

async fn watch_run(c: &Client, id: &str) -> Result<()> {
    let mut resp = send(
        c.request(Method::GET, &format!("/v1/runs/{id}/events"))
            .header("accept", "text/event-stream"),
    )
    .await?;
    let mut bars = StepBars::new()?;
    let mut buf = String::new();
    let mut last: Option<(String, Value)> = None;
    'read: while let Some(chunk) = resp.chunk().await? {
        buf += &String::from_utf8_lossy(&chunk);
        while let Some((event, data)) = next_event(&mut buf) {
            let Some(v) = data else { continue };
            match event.as_str() {
                "snapshot" => {
                    bars.snapshot(&v);
                    if matches!(
                        v["state"].as_str(),
                        Some("succeeded" | "failed" | "cancelled")
                    ) {
                        last = Some((format!("run.{}", v["state"].as_str().unwrap_or("")), v));
                        break 'read;
                    }
                }
                "run.step" => bars.step(&v["data"]),
                "run.finished" | "run.failed" | "run.cancelled" => {
                    last = Some((event.clone(), v["data"].clone()));
                    break 'read;
                }
                _ => {}
            }
        }
    }
    bars.abandon_unfinished();
    match last {
        Some((kind, _)) if kind == "run.finished" || kind == "run.succeeded" => {
            print_succeeded(c, id).await
        }
        Some((_, d)) => bail!(
            "run {id} {}: {}",
            d["state"].as_str().unwrap_or("ended"),
            d["error"].as_str().unwrap_or("")
        ),
        None => bail!("the event stream ended before the run did"),
    }
}

/// A succeeded run's figures and model. The training steps' figures are complete only in the
/// final record.
async fn print_succeeded(c: &Client, id: &str) -> Result<()> {
    let run = json(c.request(Method::GET, &format!("/v1/runs/{id}"))).await?;
    for s in run["steps"].as_array().into_iter().flatten() {
        let step = s["id"].as_str().unwrap_or("");
        if matches!(step, "split" | "train" | "evaluate" | "publish") {
            println!("  {step:<14} {}", figures(step, &s["metrics"]));
        }
    }
    let m = &run["model"];
    println!(
        "run {id} succeeded: model {} v{} {}",
        m["model"].as_str().unwrap_or("?"),
        m["version"],
        if m["published"] == true {
            format!("published as `{}`", m["alias"].as_str().unwrap_or("?"))
        } else {
            format!(
                "not published ({})",
                m["gate_failures"].as_str().unwrap_or("gate")
            )
        }
    );
    Ok(())
}
