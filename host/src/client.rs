//! A typed client for a host's HTTP API: what the `aimass` CLI, the integration tests and the
//! soak use instead of building requests by hand.
//!
//! Each method sends one request and checks its status: a 2xx gives the decoded body, anything
//! else an [`Error::Status`] with the status and the server's message (the `error` field of its
//! JSON body). [`Client::request`] is the way out for a request the typed methods do not cover; its
//! response goes through [`check`] the same way.

use crate::api::plugins::ENV_HEADER;
use bytes::Bytes;
use percent_encoding::NON_ALPHANUMERIC;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

/// What a request can end with besides a 2xx.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The host answered with a status outside 2xx.
    #[error("{status}: {message}")]
    Status {
        status: StatusCode,
        /// The `error` field of the JSON body, or the whole body when it has none.
        message: String,
    },
    /// No answer: the host could not be reached, or it did not answer in time.
    #[error("cannot reach the host")]
    Unreachable(#[source] reqwest::Error),
    /// An answer whose body could not be read or decoded.
    #[error("reading the answer")]
    Body(#[source] reqwest::Error),
    /// A URL that cannot be built (a base URL that takes no path).
    #[error("{0}")]
    Url(String),
}

impl Error {
    /// The status the host answered with, if it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's message for a non-2xx answer.
    pub fn message(&self) -> Option<&str> {
        match self {
            Error::Status { message, .. } => Some(message),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A non-2xx response as an [`Error::Status`] carrying the server's message.
pub async fn check(resp: Response) -> Result<Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or(body);
    Err(Error::Status { status, message })
}

/// Limits, grants and environment of a plugin upload (`PUT /v1/plugins/{name}`); each unset
/// field keeps the host's default.
#[derive(Debug, Clone, Default)]
pub struct PluginUpload {
    query: Vec<(String, String)>,
    env: Vec<String>,
}

impl PluginUpload {
    pub fn new() -> PluginUpload {
        PluginUpload::default()
    }

    /// Any query parameter of the upload, by the API's name (`timeout_ms`, `public`, ...).
    pub fn param(mut self, key: &str, value: impl ToString) -> PluginUpload {
        self.query.push((key.to_string(), value.to_string()));
        self
    }

    pub fn timeout_ms(self, ms: u64) -> PluginUpload {
        self.param("timeout_ms", ms)
    }

    pub fn memory_mb(self, mb: u64) -> PluginUpload {
        self.param("memory_mb", mb)
    }

    pub fn output_mb(self, mb: u64) -> PluginUpload {
        self.param("output_mb", mb)
    }

    pub fn concurrency(self, calls: u32) -> PluginUpload {
        self.param("concurrency", calls)
    }

    /// A grant: `kind` is `outbound` (hosts), `models` or `storage` (key prefixes). An empty
    /// list grants nothing.
    pub fn grant(self, kind: &str, values: &[impl AsRef<str>]) -> PluginUpload {
        if values.is_empty() {
            return self;
        }
        let list: Vec<&str> = values.iter().map(AsRef::as_ref).collect();
        self.param(kind, list.join(","))
    }

    /// An environment variable the plugin sees. Values travel in headers, which stay out of
    /// access logs; `KEY=VALUE` is expected, anything else is sent as is for the host to refuse.
    pub fn env(mut self, entry: &str) -> PluginUpload {
        let header = match entry.split_once('=') {
            Some((k, v)) => {
                let v = percent_encoding::utf8_percent_encode(v, NON_ALPHANUMERIC);
                format!("{k}={v}")
            }
            None => entry.to_string(),
        };
        self.env.push(header);
        self
    }
}

/// The answer of a plugin call: its media type and body.
#[derive(Debug, Clone)]
pub struct Output {
    pub content_type: String,
    pub body: Bytes,
}

/// A client of one host, sending one token (or none).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client of the host at `base` (`http://127.0.0.1:8080`) with `token` as bearer.
    pub fn new(base: &str, token: Option<String>) -> Result<Client> {
        let http = reqwest::Client::builder()
            .build()
            .map_err(Error::Unreachable)?;
        Ok(Client::with_http(http, base, token))
    }

    /// The same with a configured `reqwest` client (timeouts, pools).
    pub fn with_http(http: reqwest::Client, base: &str, token: Option<String>) -> Client {
        Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
        }
    }

    /// The same host as another caller.
    pub fn as_token(&self, token: Option<String>) -> Client {
        Client {
            token,
            ..self.clone()
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` (starting with `/`) carrying the token, for what the typed methods
    /// do not cover.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.authorize(self.http.request(method, format!("{}{path}", self.base)))
    }

    /// A request to `/{segments...}`, each segment percent-encoded (object keys may hold spaces,
    /// `+`, `%` or non-ASCII).
    pub fn request_segments(&self, method: Method, segments: &[&str]) -> Result<RequestBuilder> {
        let mut url = reqwest::Url::parse(&self.base).map_err(|e| Error::Url(e.to_string()))?;
        url.path_segments_mut()
            .map_err(|_| Error::Url(format!("{} cannot be a base URL", self.base)))?
            .pop_if_empty()
            .extend(segments);
        Ok(self.authorize(self.http.request(method, url)))
    }

    fn authorize(&self, rb: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Send `rb` and check its status.
    pub async fn send(&self, rb: RequestBuilder) -> Result<Response> {
        check(rb.send().await.map_err(Error::Unreachable)?).await
    }

    /// Send `rb`, check its status and decode its JSON body.
    pub async fn send_json(&self, rb: RequestBuilder) -> Result<Value> {
        let resp = self.send(rb).await?;
        resp.json().await.map_err(Error::Body)
    }

    /// Send `rb`, check its status and return its body.
    pub async fn send_bytes(&self, rb: RequestBuilder) -> Result<Bytes> {
        let resp = self.send(rb).await?;
        resp.bytes().await.map_err(Error::Body)
    }

    async fn get(&self, path: &str) -> Result<Value> {
        self.send_json(self.request(Method::GET, path)).await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.send(self.request(Method::DELETE, path)).await?;
        Ok(())
    }

    async fn post_json(&self, path: &str, body: &Value) -> Result<Value> {
        self.send_json(self.request(Method::POST, path).json(body))
            .await
    }

    // Plugins.

    /// Upload a component as plugin `name`; the answer has `version`, `created`, `world`, ...
    pub async fn put_plugin(
        &self,
        name: &str,
        wasm: impl Into<reqwest::Body>,
        upload: &PluginUpload,
    ) -> Result<Value> {
        let mut rb = self
            .request(Method::PUT, &format!("/v1/plugins/{name}"))
            .query(&upload.query)
            .header("content-type", "application/wasm");
        for e in &upload.env {
            rb = rb.header(ENV_HEADER, e);
        }
        self.send_json(rb.body(wasm)).await
    }

    pub async fn plugins(&self) -> Result<Value> {
        self.get("/v1/plugins").await
    }

    pub async fn plugin(&self, name: &str) -> Result<Value> {
        self.get(&format!("/v1/plugins/{name}")).await
    }

    pub async fn delete_plugin(&self, name: &str) -> Result<()> {
        self.delete(&format!("/v1/plugins/{name}")).await
    }

    /// Call data plugin `name` on `input` of `content_type`; `config` is its query string and
    /// `accept` the wanted output format.
    pub async fn invoke(
        &self,
        name: &str,
        config: &[(String, String)],
        content_type: &str,
        accept: Option<&str>,
        input: impl Into<reqwest::Body>,
    ) -> Result<Output> {
        let mut rb = self
            .request(Method::POST, &format!("/v1/plugins/{name}/invoke"))
            .query(config)
            .header("content-type", content_type)
            .body(input);
        if let Some(a) = accept {
            rb = rb.header("accept", a);
        }
        let resp = self.send(rb).await?;
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = resp.bytes().await.map_err(Error::Body)?;
        Ok(Output { content_type, body })
    }

    // Objects.

    /// Store an object under `key` (each `/`-separated segment percent-encoded).
    pub async fn put_object(&self, key: &str, body: impl Into<reqwest::Body>) -> Result<Value> {
        let rb = self.object_request(Method::PUT, key)?.body(body);
        self.send_json(rb).await
    }

    pub async fn object(&self, key: &str) -> Result<Bytes> {
        self.send_bytes(self.object_request(Method::GET, key)?)
            .await
    }

    pub async fn delete_object(&self, key: &str) -> Result<()> {
        self.send(self.object_request(Method::DELETE, key)?).await?;
        Ok(())
    }

    /// Objects under `prefix`, one page (the `objects` array and the next page's marker).
    pub async fn objects(&self, prefix: &str) -> Result<Value> {
        let rb = self
            .request(Method::GET, "/v1/objects")
            .query(&[("prefix", prefix)]);
        self.send_json(rb).await
    }

    fn object_request(&self, method: Method, key: &str) -> Result<RequestBuilder> {
        let mut segments = vec!["v1", "objects"];
        segments.extend(key.split('/'));
        self.request_segments(method, &segments)
    }

    // Datasets.

    pub async fn datasets(&self) -> Result<Value> {
        self.get("/v1/datasets").await
    }

    pub async fn dataset(&self, name: &str) -> Result<Value> {
        self.get(&format!("/v1/datasets/{name}")).await
    }

    /// Rows of dataset `name` as JSON; `query` holds `limit`, `offset`, `filter`, ...
    pub async fn rows(&self, name: &str, query: &[(&str, &str)]) -> Result<Value> {
        let rb = self
            .request(Method::GET, &format!("/v1/datasets/{name}/rows"))
            .query(query)
            .header("accept", "application/json");
        self.send_json(rb).await
    }

    // Hooks.

    /// Create or replace hook `name` from its JSON spec.
    pub async fn put_hook(&self, name: &str, spec: &Value) -> Result<Value> {
        let rb = self
            .request(Method::PUT, &format!("/v1/hooks/{name}"))
            .json(spec);
        self.send_json(rb).await
    }

    pub async fn hook(&self, name: &str) -> Result<Value> {
        self.get(&format!("/v1/hooks/{name}")).await
    }

    pub async fn hooks(&self) -> Result<Value> {
        self.get("/v1/hooks").await
    }

    pub async fn delete_hook(&self, name: &str) -> Result<()> {
        self.delete(&format!("/v1/hooks/{name}")).await
    }

    // Training and models.

    /// Submit a training job; the answer has its `id`.
    pub async fn train(&self, spec: &Value) -> Result<Value> {
        self.post_json("/v1/train", spec).await
    }

    pub async fn job(&self, id: &str) -> Result<Value> {
        self.get(&format!("/v1/train/{id}")).await
    }

    /// Upload an ONNX model as a new version of `name`.
    pub async fn put_model(&self, name: &str, onnx: impl Into<reqwest::Body>) -> Result<Value> {
        let rb = self
            .request(Method::PUT, &format!("/v1/models/{name}"))
            .body(onnx);
        self.send_json(rb).await
    }

    pub async fn models(&self) -> Result<Value> {
        self.get("/v1/models").await
    }

    pub async fn model(&self, name: &str) -> Result<Value> {
        self.get(&format!("/v1/models/{name}")).await
    }

    /// An Open Inference Protocol request to model `name` (a version: `name/versions/N`).
    pub async fn infer(&self, name: &str, request: &Value) -> Result<Value> {
        self.post_json(&format!("/v2/models/{name}/infer"), request)
            .await
    }

    /// One FP32 input `input` of `rows` rows, as JSON tensors; the answer's `outputs`.
    pub async fn infer_rows(&self, name: &str, input: &str, rows: &[Vec<f32>]) -> Result<Value> {
        let width = rows.first().map_or(0, Vec::len);
        let data: Vec<f32> = rows.iter().flatten().copied().collect();
        let request = json!({"inputs": [{"name": input, "shape": [rows.len(), width],
            "datatype": "FP32", "data": data}]});
        self.infer(name, &request).await
    }

    // Pipelines and runs.

    /// Apply a pipeline file (TOML) as pipeline `name`.
    pub async fn put_pipeline(&self, name: &str, toml: &str) -> Result<Value> {
        let rb = self
            .request(Method::PUT, &format!("/v1/pipelines/{name}"))
            .header("content-type", "application/toml")
            .body(toml.to_string());
        self.send_json(rb).await
    }

    pub async fn pipeline(&self, name: &str) -> Result<Value> {
        self.get(&format!("/v1/pipelines/{name}")).await
    }

    /// Start a run of pipeline `name`; the answer has its `id`.
    pub async fn start_run(&self, name: &str) -> Result<Value> {
        self.send_json(self.request(Method::POST, &format!("/v1/pipelines/{name}/runs")))
            .await
    }

    pub async fn run(&self, id: &str) -> Result<Value> {
        self.get(&format!("/v1/runs/{id}")).await
    }

    pub async fn cancel_run(&self, id: &str) -> Result<Value> {
        self.send_json(self.request(Method::POST, &format!("/v1/runs/{id}/cancel")))
            .await
    }

    // Tokens.

    /// A new token of `role` named `name`; the answer has the secret (`token`) and its `id`.
    pub async fn create_token(&self, name: &str, role: &str) -> Result<Value> {
        self.post_json("/v1/tokens", &json!({"name": name, "role": role}))
            .await
    }

    pub async fn tokens(&self) -> Result<Value> {
        self.get("/v1/tokens").await
    }

    pub async fn revoke_token(&self, id: &str) -> Result<()> {
        self.delete(&format!("/v1/tokens/{id}")).await
    }
}
