//! The HTTP client side of the CLI.

use super::{ClientArgs, InvokeArgs, PluginCmd, PushArgs, TokenCmd};
use crate::client::{Error as ApiError, PluginUpload};
use crate::platform::formats::Format;
use crate::platform::tokens::ADMIN_TOKEN_FILE;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::{Method, RequestBuilder, Response};
use std::io::{Read, Write};
use std::time::Duration;

const UNREACHABLE: &str = "cannot reach the host (is `aimass up` running?)";

/// The library's client (`crate::client`) with the CLI's token lookup and error messages.
pub(super) struct Client {
    api: crate::client::Client,
}

impl Client {
    pub(super) fn new(args: &ClientArgs) -> Result<Client> {
        let token = match &args.token {
            Some(t) => Some(t.clone()),
            None => std::fs::read_to_string(args.data_dir.join(ADMIN_TOKEN_FILE))
                .ok()
                .map(|t| t.trim().to_string()),
        };
        Ok(Client {
            api: crate::client::Client::new(&args.url, token).map_err(cli_error)?,
        })
    }

    /// A request to `/{segments...}`, each segment percent-encoded (object keys may hold spaces,
    /// `+`, `%` or non-ASCII).
    pub(super) fn request_segments(
        &self,
        method: Method,
        segments: &[&str],
    ) -> Result<RequestBuilder> {
        self.api.request_segments(method, segments).context("--url")
    }

    pub(super) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.api.request(method, path)
    }
}

/// The library client's error as the CLI reports it: an unreachable host with a hint.
fn cli_error(e: ApiError) -> anyhow::Error {
    match e {
        ApiError::Unreachable(source) => anyhow::Error::new(source).context(UNREACHABLE),
        e => e.into(),
    }
}

/// Send a request, turning a non-2xx answer into an error carrying the server's message.
pub(super) async fn send(rb: RequestBuilder) -> Result<Response> {
    let resp = rb.send().await.context(UNREACHABLE)?;
    Ok(crate::client::check(resp).await?)
}

pub async fn plugin(cmd: PluginCmd, args: &ClientArgs) -> Result<()> {
    let c = Client::new(args)?;
    match cmd {
        PluginCmd::Push(push) => push_plugin(&c, *push, args).await,
        PluginCmd::Ls => list_plugins(&c).await,
        PluginCmd::Show { name } => {
            let v = c.api.plugin(&name).await.map_err(cli_error)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        PluginCmd::Rm { name } => {
            c.api.delete_plugin(&name).await.map_err(cli_error)?;
            println!("removed {name}");
            Ok(())
        }
    }
}

/// The limits, grants and environment of `aimass plugin push`, as the upload's parameters.
fn upload_of(push: &PushArgs) -> PluginUpload {
    let mut upload = PluginUpload::new();
    for (k, v) in [
        ("timeout_ms", push.timeout_ms),
        ("memory_mb", push.memory_mb),
        ("output_mb", push.output_mb),
        ("concurrency", push.concurrency.map(u64::from)),
        ("public_concurrency", push.public_concurrency.map(u64::from)),
        ("public_rate", push.public_rate.map(u64::from)),
        ("public_quota", push.public_quota),
    ] {
        if let Some(v) = v {
            upload = upload.param(k, v);
        }
    }
    upload = upload
        .grant("outbound", &push.allow_hosts)
        .grant("models", &push.models)
        .grant("storage", &push.read_prefixes);
    if push.public {
        upload = upload.param("public", "true");
    }
    // Values go in headers, which stay out of access logs; the query string does not.
    for e in &push.env {
        upload = upload.env(e);
    }
    upload
}

async fn push_plugin(c: &Client, push: PushArgs, args: &ClientArgs) -> Result<()> {
    let upload = upload_of(&push);
    let (name, file) = (push.name, push.file);
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")?);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar.set_message(format!(
        "uploading {} ({} KiB) and compiling",
        file.display(),
        bytes.len() / 1024
    ));
    let resp = c.api.put_plugin(&name, bytes, &upload).await;
    bar.finish_and_clear();
    let v = resp.map_err(cli_error)?;
    let created = v["created"].as_bool().unwrap_or(false);
    let digest = v["digest"].as_str().unwrap_or("");
    println!(
        "{} {} v{} ({}, sha256 {}, {} bytes, compiled in {:.0} ms)",
        if created { "pushed" } else { "unchanged" },
        v["name"].as_str().unwrap_or(&name),
        v["version"],
        v["world"].as_str().unwrap_or("?"),
        &digest[..12.min(digest.len())],
        v["size"],
        v["compile_ms"].as_f64().unwrap_or(0.0)
    );
    if v["world"] == "http" {
        println!("serving at {}/fn/{name}/", args.url.trim_end_matches('/'));
    }
    Ok(())
}

async fn list_plugins(c: &Client) -> Result<()> {
    let v = c.api.plugins().await.map_err(cli_error)?;
    println!(
        "{:<24} {:<10} {:>7} {:>12} {:>8}",
        "NAME", "WORLD", "VERSION", "SIZE", "CALLS"
    );
    for p in v["plugins"].as_array().into_iter().flatten() {
        println!(
            "{:<24} {:<10} {:>7} {:>12} {:>8}",
            p["name"].as_str().unwrap_or(""),
            p["world"].as_str().unwrap_or(""),
            p["version"],
            p["size"],
            p["calls"]
        );
    }
    Ok(())
}

/// Content type from a file extension.
pub(super) fn guess_content_type(path: Option<&std::path::Path>) -> &'static str {
    match path.and_then(|p| p.extension()).and_then(|e| e.to_str()) {
        Some("ndjson" | "jsonl") => Format::Ndjson.media_type(),
        Some("arrow" | "arrows" | "ipc") => Format::ArrowStream.media_type(),
        _ => Format::Csv.media_type(),
    }
}

pub async fn invoke(args: InvokeArgs, client: &ClientArgs) -> Result<()> {
    let c = Client::new(client)?;
    let input = match &args.input {
        Some(p) => std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        None => {
            let mut b = Vec::new();
            std::io::stdin().read_to_end(&mut b)?;
            b
        }
    };
    let mut config = Vec::new();
    for kv in &args.config {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--config {kv:?} is not KEY=VALUE"))?;
        config.push((k.to_string(), v.to_string()));
    }
    let ct = args
        .content_type
        .clone()
        .unwrap_or_else(|| guess_content_type(args.input.as_deref()).to_string());
    let output = c
        .api
        .invoke(&args.name, &config, &ct, args.accept.as_deref(), input)
        .await
        .map_err(cli_error)?;
    let bytes = output.body;
    match &args.out {
        Some(p) => std::fs::write(p, &bytes).with_context(|| format!("writing {}", p.display()))?,
        None => std::io::stdout().write_all(&bytes)?,
    }
    Ok(())
}

pub async fn token(cmd: TokenCmd, args: &ClientArgs) -> Result<()> {
    let c = Client::new(args)?;
    match cmd {
        TokenCmd::Create { role, name } => {
            let v = c.api.create_token(&name, &role).await.map_err(cli_error)?;
            println!("{}", v["token"].as_str().unwrap_or(""));
            eprintln!(
                "token id {} ({}); the secret above is not shown again",
                v["id"], v["role"]
            );
        }
        TokenCmd::Ls => {
            let v = c.api.tokens().await.map_err(cli_error)?;
            println!("{:<14} {:<8} NAME", "ID", "ROLE");
            for t in v["tokens"].as_array().into_iter().flatten() {
                println!(
                    "{:<14} {:<8} {}",
                    t["id"].as_str().unwrap_or(""),
                    t["role"].as_str().unwrap_or(""),
                    t["name"].as_str().unwrap_or("")
                );
            }
        }
        TokenCmd::Rm { id } => {
            c.api.revoke_token(&id).await.map_err(cli_error)?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
