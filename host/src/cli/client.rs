//! The HTTP client side of the CLI.

use super::{ClientArgs, InvokeArgs, PluginCmd, PushArgs, TokenCmd};
use crate::platform::formats::Format;
use crate::platform::tokens::ADMIN_TOKEN_FILE;
use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use percent_encoding::NON_ALPHANUMERIC;
use reqwest::{Method, RequestBuilder, Response};
use std::io::{Read, Write};
use std::time::Duration;

pub(super) struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
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
            http: reqwest::Client::builder().build()?,
            base: args.url.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// A request to `/{segments...}`, each segment percent-encoded (object keys may hold spaces,
    /// `+`, `%` or non-ASCII).
    pub(super) fn request_segments(
        &self,
        method: Method,
        segments: &[&str],
    ) -> Result<RequestBuilder> {
        let mut url = reqwest::Url::parse(&self.base).context("--url")?;
        url.path_segments_mut()
            .map_err(|_| anyhow::anyhow!("--url cannot be a base URL"))?
            .pop_if_empty()
            .extend(segments);
        let rb = self.http.request(method, url);
        Ok(match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        })
    }

    pub(super) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }
}

/// Turn a non-2xx response into an error carrying the server's message.
async fn check(resp: Response) -> Result<Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    let msg = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or(body);
    bail!("{status}: {msg}")
}

pub(super) async fn send(rb: RequestBuilder) -> Result<Response> {
    let resp = rb
        .send()
        .await
        .context("cannot reach the host (is `aimass up` running?)")?;
    check(resp).await
}

pub async fn plugin(cmd: PluginCmd, args: &ClientArgs) -> Result<()> {
    let c = Client::new(args)?;
    match cmd {
        PluginCmd::Push(push) => {
            let PushArgs {
                name,
                file,
                timeout_ms,
                memory_mb,
                output_mb,
                concurrency,
                env,
                allow_hosts,
                models,
                read_prefixes,
                public,
                public_concurrency,
                public_rate,
                public_quota,
            } = *push;
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let mut query = Vec::new();
            for (k, v) in [
                ("timeout_ms", timeout_ms),
                ("memory_mb", memory_mb),
                ("output_mb", output_mb),
                ("concurrency", concurrency.map(u64::from)),
                ("public_concurrency", public_concurrency.map(u64::from)),
                ("public_rate", public_rate.map(u64::from)),
                ("public_quota", public_quota),
            ] {
                if let Some(v) = v {
                    query.push((k, v.to_string()));
                }
            }

            let grants = [
                ("outbound", allow_hosts),
                ("models", models),
                ("storage", read_prefixes),
            ];
            for (k, list) in grants {
                if !list.is_empty() {
                    query.push((k, list.join(",")));
                }
            }
            if public {
                query.push(("public", "true".into()));
            }
            let bar = ProgressBar::new_spinner();
            bar.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")?);
            bar.enable_steady_tick(Duration::from_millis(100));
            bar.set_message(format!(
                "uploading {} ({} KiB) and compiling",
                file.display(),
                bytes.len() / 1024
            ));
            let mut req = c
                .request(Method::PUT, &format!("/v1/plugins/{name}"))
                .query(&query)
                .header("content-type", "application/wasm");
            // Values go in headers, which stay out of access logs; the query string does not.
            for e in env {
                let value = match e.split_once('=') {
                    Some((k, v)) => {
                        let v = percent_encoding::utf8_percent_encode(v, NON_ALPHANUMERIC);
                        format!("{k}={v}")
                    }
                    None => e, // the host answers 400 naming it
                };
                req = req.header(crate::api::plugins::ENV_HEADER, value);
            }
            let resp = send(req.body(bytes)).await;
            bar.finish_and_clear();
            let v: serde_json::Value = resp?.json().await?;
            let created = v["created"].as_bool().unwrap_or(false);
            println!(
                "{} {} v{} ({}, sha256 {}, {} bytes, compiled in {:.0} ms)",
                if created { "pushed" } else { "unchanged" },
                v["name"].as_str().unwrap_or(&name),
                v["version"],
                v["world"].as_str().unwrap_or("?"),
                &v["digest"].as_str().unwrap_or("")
                    [..12.min(v["digest"].as_str().unwrap_or("").len())],
                v["size"],
                v["compile_ms"].as_f64().unwrap_or(0.0)
            );
            if v["world"] == "http" {
                println!("serving at {}/fn/{name}/", args.url.trim_end_matches('/'));
            }
        }
        PluginCmd::Ls => {
            let v: serde_json::Value = send(c.request(Method::GET, "/v1/plugins"))
                .await?
                .json()
                .await?;
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
        }
        PluginCmd::Show { name } => {
            let v: serde_json::Value = send(c.request(Method::GET, &format!("/v1/plugins/{name}")))
                .await?
                .json()
                .await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        PluginCmd::Rm { name } => {
            send(c.request(Method::DELETE, &format!("/v1/plugins/{name}"))).await?;
            println!("removed {name}");
        }
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
    let mut rb = c
        .request(Method::POST, &format!("/v1/plugins/{}/invoke", args.name))
        .query(&config)
        .header("content-type", ct)
        .body(input);
    if let Some(a) = &args.accept {
        rb = rb.header("accept", a);
    }
    let bytes = send(rb).await?.bytes().await?;
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
            let v: serde_json::Value = send(
                c.request(Method::POST, "/v1/tokens")
                    .json(&serde_json::json!({"name": name, "role": role})),
            )
            .await?
            .json()
            .await?;
            println!("{}", v["token"].as_str().unwrap_or(""));
            eprintln!(
                "token id {} ({}); the secret above is not shown again",
                v["id"], v["role"]
            );
        }
        TokenCmd::Ls => {
            let v: serde_json::Value = send(c.request(Method::GET, "/v1/tokens"))
                .await?
                .json()
                .await?;
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
            send(c.request(Method::DELETE, &format!("/v1/tokens/{id}"))).await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
