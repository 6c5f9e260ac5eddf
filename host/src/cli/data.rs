//! CLI commands for object events and the warehouse: `hook`, `put`/`get`/`ls`, `dataset`.

use super::client::{Client, send};
use super::{ClientArgs, DatasetCmd, HookAdd, HookCmd};
use anyhow::{Context, Result, bail};
use reqwest::Method;
use std::io::{Read, Write};
use std::path::PathBuf;

fn print_json(v: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// `--config k=v` entries as a JSON object.
fn config_map(entries: &[String]) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut m = serde_json::Map::new();
    for e in entries {
        let (k, v) = e
            .split_once('=')
            .with_context(|| format!("--config {e:?}: expected KEY=VALUE"))?;
        m.insert(k.to_string(), serde_json::Value::String(v.to_string()));
    }
    Ok(m)
}

async fn hook_add(c: &Client, add: HookAdd) -> Result<()> {
    let HookAdd {
        name,
        plugin,
        prefix,
        suffix,
        events,
        output,
        config,
        max_retries,
        timeout_ms,
        backoff_ms,
    } = add;
    let path = format!("/v1/hooks/{name}");
    let mut spec = serde_json::json!({
        "plugin": plugin, "prefix": prefix, "output": output,
        "events": events, "config": config_map(&config)?,
    });
    for (k, v) in [
        ("suffix", suffix.map(serde_json::Value::from)),
        ("max_retries", max_retries.map(serde_json::Value::from)),
        ("timeout_ms", timeout_ms.map(serde_json::Value::from)),
        ("backoff_ms", backoff_ms.map(serde_json::Value::from)),
    ] {
        if let Some(v) = v {
            spec[k] = v;
        }
    }
    let v: serde_json::Value = send(c.request(Method::PUT, &path).json(&spec))
        .await?
        .json()
        .await?;
    println!(
        "hook {name}: {} on {}{} → dataset {}",
        v["plugin"].as_str().unwrap_or(""),
        v["prefix"].as_str().unwrap_or(""),
        v["suffix"]
            .as_str()
            .map(|s| format!("*{s}"))
            .unwrap_or_default(),
        v["output"].as_str().unwrap_or("")
    );
    Ok(())
}

async fn hook_ls(c: &Client) -> Result<()> {
    let v: serde_json::Value = send(c.request(Method::GET, "/v1/hooks"))
        .await?
        .json()
        .await?;
    println!(
        "{:<20} {:<16} {:<24} {:<16} {:>9} {:>7} {:>5} {:>6}",
        "NAME", "PLUGIN", "PREFIX", "OUTPUT", "PROCESSED", "PENDING", "DEAD", "STATE"
    );
    for h in v["hooks"].as_array().into_iter().flatten() {
        println!(
            "{:<20} {:<16} {:<24} {:<16} {:>9} {:>7} {:>5} {:>6}",
            h["name"].as_str().unwrap_or(""),
            h["plugin"].as_str().unwrap_or(""),
            h["prefix"].as_str().unwrap_or(""),
            h["output"].as_str().unwrap_or(""),
            h["processed"],
            h["pending"],
            h["dead_lettered"],
            if h["paused"] == true {
                "paused"
            } else {
                "active"
            }
        );
    }
    Ok(())
}

pub async fn hook(cmd: HookCmd, args: &ClientArgs) -> Result<()> {
    let c = Client::new(args)?;
    let path = |name: &str, action: &str| format!("/v1/hooks/{name}{action}");
    match cmd {
        HookCmd::Add(add) => hook_add(&c, add).await?,
        HookCmd::Ls => hook_ls(&c).await?,
        HookCmd::Status { name } => print_json(
            &send(c.request(Method::GET, &path(&name, "")))
                .await?
                .json()
                .await?,
        )?,
        HookCmd::DeadLetters { name } => print_json(
            &send(c.request(Method::GET, &path(&name, "/dead-letters")))
                .await?
                .json()
                .await?,
        )?,
        HookCmd::Rm { name } => {
            send(c.request(Method::DELETE, &path(&name, ""))).await?;
            println!("removed hook {name}");
        }
        HookCmd::Pause { name } => {
            send(c.request(Method::POST, &path(&name, "/pause"))).await?;
            println!("paused {name}: events are kept until it resumes");
        }
        HookCmd::Resume { name } => {
            send(c.request(Method::POST, &path(&name, "/resume"))).await?;
            println!("resumed {name}");
        }
        HookCmd::Redrive { name } => {
            let v: serde_json::Value = send(c.request(Method::POST, &path(&name, "/redrive")))
                .await?
                .json()
                .await?;
            println!("redriven {} dead letters of {name}", v["redriven"]);
        }
    }
    Ok(())
}

fn object_segments(key: &str) -> Vec<&str> {
    let mut s = vec!["v1", "objects"];
    s.extend(key.split('/'));
    s
}

/// `aimass put KEY [FILE]`: upload a file (or stdin) as an object; hooks on its prefix fire.
pub async fn put(key: String, file: Option<PathBuf>, args: &ClientArgs) -> Result<()> {
    let c = Client::new(args)?;
    let body = match &file {
        Some(f) => std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
        None => {
            let mut b = Vec::new();
            std::io::stdin().read_to_end(&mut b)?;
            b
        }
    };
    let v: serde_json::Value = send(
        c.request_segments(Method::PUT, &object_segments(&key))?
            .body(body),
    )
    .await?
    .json()
    .await?;
    println!(
        "put {key} ({} bytes); {} hook(s) fired",
        v["size"], v["hooks"]
    );
    Ok(())
}

/// `aimass get KEY [-o FILE]`.
pub async fn get(key: String, out: Option<PathBuf>, args: &ClientArgs) -> Result<()> {
    let c = Client::new(args)?;
    let bytes = send(c.request_segments(Method::GET, &object_segments(&key))?)
        .await?
        .bytes()
        .await?;
    match out {
        Some(f) => {
            std::fs::write(&f, &bytes).with_context(|| format!("writing {}", f.display()))?
        }
        None => std::io::stdout().write_all(&bytes)?,
    }
    Ok(())
}

/// `aimass ls [PREFIX]`.
pub async fn ls(prefix: Option<String>, args: &ClientArgs) -> Result<()> {
    let c = Client::new(args)?;
    let prefix = prefix.unwrap_or_default();
    let mut after: Option<String> = None;
    loop {
        let mut query = vec![("prefix", prefix.clone())];
        query.extend(after.take().map(|a| ("start_after", a)));
        let v: serde_json::Value = send(c.request(Method::GET, "/v1/objects").query(&query))
            .await?
            .json()
            .await?;
        for o in v["objects"].as_array().into_iter().flatten() {
            println!("{:>12}  {}", o["size"], o["key"].as_str().unwrap_or(""));
        }
        match v["next_start_after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => return Ok(()),
        }
    }
}

async fn dataset_ls(c: &Client) -> Result<()> {
    let v: serde_json::Value = send(c.request(Method::GET, "/v1/datasets"))
        .await?
        .json()
        .await?;
    println!(
        "{:<24} {:>10} {:>6} {:>12}",
        "NAME", "ROWS", "PARTS", "BYTES"
    );
    for d in v["datasets"].as_array().into_iter().flatten() {
        println!(
            "{:<24} {:>10} {:>6} {:>12}",
            d["name"].as_str().unwrap_or(""),
            d["rows"],
            d["parts"],
            d["bytes"]
        );
    }
    Ok(())
}

/// `aimass dataset add`: a file as a new part (Arrow IPC, CSV, NDJSON or Parquet by suffix).
async fn dataset_add(c: &Client, name: &str, file: &std::path::Path) -> Result<()> {
    let ct = super::client::guess_content_type(Some(file));
    let ct = if file.extension().is_some_and(|e| e == "parquet") {
        "application/vnd.apache.parquet"
    } else {
        ct
    };
    let body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let v: serde_json::Value = send(
        c.request(Method::POST, &format!("/v1/datasets/{name}/parts"))
            .header("content-type", ct)
            .body(body),
    )
    .await?
    .json()
    .await?;
    println!(
        "added part {} ({} rows) to {name}; {} hook(s) fired",
        v["part"]["id"].as_str().unwrap_or(""),
        v["part"]["rows"],
        v["hooks"]
    );
    Ok(())
}

pub async fn dataset(cmd: DatasetCmd, args: &ClientArgs) -> Result<()> {
    let c = Client::new(args)?;
    match cmd {
        DatasetCmd::Ls => dataset_ls(&c).await?,
        DatasetCmd::Show { name } => print_json(
            &send(c.request(Method::GET, &format!("/v1/datasets/{name}")))
                .await?
                .json()
                .await?,
        )?,
        DatasetCmd::Rows {
            name,
            limit,
            offset,
            format,
        } => {
            let accept = match format.as_str() {
                "json" => "application/json",
                "csv" => "text/csv",
                "ndjson" => "application/x-ndjson",
                other => bail!("--format {other:?}: use json, csv or ndjson"),
            };
            let body = send(
                c.request(Method::GET, &format!("/v1/datasets/{name}/rows"))
                    .query(&[("limit", limit), ("offset", offset)])
                    .header("accept", accept),
            )
            .await?
            .bytes()
            .await?;
            std::io::stdout().write_all(&body)?;
            if format == "json" {
                println!();
            }
        }
        DatasetCmd::Add { name, file } => dataset_add(&c, &name, &file).await?,
        DatasetCmd::Rm { name } => {
            send(c.request(Method::DELETE, &format!("/v1/datasets/{name}"))).await?;
            println!("removed dataset {name}");
        }
    }
    Ok(())
}
