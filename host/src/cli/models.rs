//! CLI commands for model building: `train` (with a live progress view) and `model` (the
//! registry and OIP inference).

use super::client::{Client, send};
use super::{ClientArgs, ModelCmd, TrainArgs};
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{Value, json};
use std::io::Read;
use std::time::Duration;

fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// `k=v1,v2,...` → (k, [v1, v2, ...]) with numbers kept as numbers.
fn param(entry: &str) -> Result<(String, Value)> {
    let (k, v) = entry
        .split_once('=')
        .with_context(|| format!("--param {entry:?}: expected NAME=V1,V2,..."))?;
    let values: Vec<Value> = v
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<f64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(s.trim()))
        })
        .collect();
    Ok((k.to_string(), Value::Array(values)))
}

/// The JSON training request from the flags (or the `--spec` file, flags overriding).
fn request(a: &TrainArgs) -> Result<Value> {
    let mut r: Value = match &a.spec {
        Some(path) => serde_json::from_slice(
            &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{} is not JSON", path.display()))?,
        None => json!({}),
    };
    let set = |r: &mut Value, k: &str, v: Option<Value>| {
        if let Some(v) = v {
            r[k] = v;
        }
    };
    set(&mut r, "model", a.model.clone().map(Value::from));
    set(&mut r, "trainer", a.trainer.clone().map(Value::from));
    set(&mut r, "dataset", a.dataset.clone().map(Value::from));
    set(&mut r, "label", a.label.clone().map(Value::from));
    set(&mut r, "metric", a.metric.clone().map(Value::from));
    set(&mut r, "alias", a.alias.clone().map(Value::from));
    if !a.features.is_empty() {
        r["features"] = json!(a.features);
    }
    for p in &a.params {
        let (k, v) = param(p)?;
        r["hyperparameters"][k] = v;
    }
    if let Some(trials) = a.trials {
        r["search"] = json!({"kind": "random", "trials": trials, "seed": a.seed.unwrap_or(0)});
    }
    if !a.transforms.is_empty() {
        r["transforms"] = a.transforms.iter().map(|t| json!({"plugin": t})).collect();
    }
    for g in &a.gate {
        let (k, v) = g
            .split_once('=')
            .with_context(|| format!("--gate {g:?}: expected min_METRIC=VALUE"))?;
        r["gate"][k] = json!(
            v.parse::<f64>()
                .with_context(|| format!("--gate {g:?}: not a number"))?
        );
    }
    for (k, v) in [("validation", a.validation), ("test", a.test)] {
        if let Some(v) = v {
            r["split"][k] = json!(v);
        }
    }
    if let Some(seed) = a.seed {
        r["split"]["seed"] = json!(seed);
    }
    Ok(r)
}

fn summary(job: &Value) -> String {
    let r = &job["result"];
    let scores: Vec<String> = r["test_scores"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={:.4}", v.as_f64().unwrap_or(f64::NAN)))
                .collect()
        })
        .unwrap_or_default();
    let publish = match (r["published"].as_bool(), r["alias"].as_str()) {
        (Some(true), Some(a)) => format!("alias {a} → v{}", r["version"]),
        (_, Some(a)) => format!(
            "alias {a} NOT moved: {}",
            r["gate_failures"].as_str().unwrap_or("")
        ),
        _ => "no alias".into(),
    };
    format!(
        "model {} v{} ({} {:.4} on validation, params {})\ntest: {}\n{publish}",
        r["model"].as_str().unwrap_or(""),
        r["version"],
        r["metric"].as_str().unwrap_or(""),
        r["validation_score"].as_f64().unwrap_or(f64::NAN),
        r["hyperparameters"],
        scores.join(" "),
    )
}

pub async fn train(a: TrainArgs, args: &ClientArgs) -> Result<()> {
    let c = Client::new(args)?;
    let body = request(&a)?;
    let job: Value = send(c.request(Method::POST, "/v1/train").json(&body))
        .await?
        .json()
        .await?;
    let id = job["id"]
        .as_str()
        .context("no job id in the answer")?
        .to_string();
    if !a.watch {
        println!("{id}");
        return Ok(());
    }
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
    )?);
    let job = loop {
        let job: Value = send(c.request(Method::GET, &format!("/v1/train/{id}")))
            .await?
            .json()
            .await?;
        let p = &job["progress"];
        bar.set_length(p["total"].as_u64().unwrap_or(0));
        bar.set_position(p["done"].as_u64().unwrap_or(0));
        bar.set_message(format!(
            "{} · {}/{} candidates · {}",
            job["phase"].as_str().unwrap_or(""),
            job["candidates"].as_array().map_or(0, Vec::len),
            job["candidates_total"],
            p["message"].as_str().unwrap_or("")
        ));
        bar.tick();
        match job["state"].as_str() {
            Some("succeeded") | Some("failed") => break job,
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    bar.finish_and_clear();
    if job["state"] == "failed" {
        bail!("job {id} failed: {}", job["error"].as_str().unwrap_or("?"));
    }
    println!("job {id} succeeded\n{}", summary(&job));
    Ok(())
}

fn model_ls(v: &Value) {
    println!("{:<24} {:>7} {:>8}  ALIASES", "NAME", "LATEST", "VERSIONS");
    for m in v["models"].as_array().into_iter().flatten() {
        let aliases: Vec<String> = m["aliases"]
            .as_object()
            .map(|a| a.iter().map(|(k, v)| format!("{k}=v{v}")).collect())
            .unwrap_or_default();
        println!(
            "{:<24} {:>7} {:>8}  {}",
            m["name"].as_str().unwrap_or(""),
            m["latest_version"].to_string(),
            m["versions"].to_string(),
            aliases.join(" ")
        );
    }
}

/// `aimass model infer`: an OIP request from a file or stdin; the response as JSON.
async fn model_infer(
    c: &Client,
    name: &str,
    version: Option<String>,
    file: Option<std::path::PathBuf>,
) -> Result<()> {
    let mut body = Vec::new();
    match file {
        Some(f) => body = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?,
        None => {
            std::io::stdin().read_to_end(&mut body)?;
        }
    }
    let path = match version {
        Some(v) => format!("/v2/models/{name}/versions/{v}/infer"),
        None => format!("/v2/models/{name}/infer"),
    };
    let v: Value = send(
        c.request(Method::POST, &path)
            .header("content-type", "application/json")
            .body(body),
    )
    .await?
    .json()
    .await?;
    print_json(&v)?;
    Ok(())
}

pub async fn model(cmd: ModelCmd, args: &ClientArgs) -> Result<()> {
    let c = Client::new(args)?;
    let get = |path: String| {
        let rb = c.request(Method::GET, &path);
        async move { Ok::<Value, anyhow::Error>(send(rb).await?.json().await?) }
    };
    match cmd {
        ModelCmd::Ls => model_ls(&get("/v1/models".into()).await?),
        ModelCmd::Show { name } => print_json(&get(format!("/v1/models/{name}")).await?)?,
        ModelCmd::Push { name, file, alias } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let mut rb = c
                .request(Method::PUT, &format!("/v1/models/{name}"))
                .body(bytes);
            if let Some(a) = alias {
                rb = rb.query(&[("alias", a)]);
            }
            let v: Value = send(rb).await?.json().await?;
            println!(
                "{name} v{} ({} bytes, sha256 {})",
                v["version"],
                v["size"],
                v["digest"].as_str().unwrap_or("")
            );
        }
        ModelCmd::Alias {
            name,
            alias,
            version,
        } => {
            let rb = c
                .request(Method::PUT, &format!("/v1/models/{name}/aliases/{alias}"))
                .json(&json!({"version": version}));
            send(rb).await?;
            println!("{name}: {alias} → v{version}");
        }
        ModelCmd::Rm { name, version } => {
            send(c.request(
                Method::DELETE,
                &format!("/v1/models/{name}/versions/{version}"),
            ))
            .await?;
            println!("{name} v{version} deleted");
        }
        ModelCmd::Infer {
            name,
            version,
            file,
        } => model_infer(&c, &name, version, file).await?,
    }
    Ok(())
}
