//! Every knob of the host, with its default. The CLI (`aimass up`) fills this from flags and
//! `AIMASS_*` environment variables; tests and embedders build it directly.

use crate::ingest::hooks::HookOptions;
use crate::platform::storage::S3Options;
use crate::runtime::EngineOptions;
use crate::runtime::Limits;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Address the API listens on. Default `127.0.0.1:8080`; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Object store URL: `file://PATH`, `memory://` or `s3://BUCKET`. Default
    /// `file://./aimass-data/store` (inside the data dir, so no object key names a local file).
    pub store_url: String,
    /// S3 endpoint/region/credentials for `s3://` stores (else the `AWS_*` variables).
    pub s3: S3Options,
    /// Local directory for files that must not live in a shared store: the generated admin
    /// token, the artifact key and the local cache of compiled artifacts (`cache/compiled/`).
    /// Default `./aimass-data`.
    pub data_dir: PathBuf,
    /// The key compiled artifacts in the store are sealed with; hosts sharing a store share
    /// artifacts only if they share this file. Default `<data_dir>/artifact-key`, created on
    /// first start (see `plugins::seal`).
    pub artifact_key_file: Option<PathBuf>,
    /// Failed authentications allowed per peer address before its requests get 429.
    pub auth_limit: crate::api::auth_limit::AuthLimit,
    /// Admin token from `AIMASS_TOKEN`; when unset one is generated on first start.
    pub admin_token: Option<String>,
    /// Limits of plugins that do not override them at upload.
    pub limits: Limits,
    /// How long a call waits for a free instance slot of its plugin before 503. Default 1 s.
    pub queue_timeout: Duration,
    /// Largest request body (uploads and invoke inputs); larger gets 413. Default 128 MiB.
    pub max_body_bytes: usize,
    /// Engine settings: pooling allocator, pool size, fuel metering.
    pub engine: EngineOptions,
    /// Register the plugins bundled into the binary on start (`aimass up` does).
    pub register_bundled: bool,
    /// Object-event hooks: poll interval of watched prefixes, parallel deliveries.
    pub hooks: HookOptions,
    /// Graceful shutdown (SIGTERM, Ctrl-C): how long in-flight requests may take to finish
    /// after the listener closes. Default 30 s (Kubernetes' default termination grace).
    pub grace: Duration,
    /// How long a connection may take to send a request head, and so how long a keep-alive
    /// connection may sit idle, before the host closes it (slowloris, forgotten connections).
    /// Default 75 s (see `api::serve`).
    pub header_timeout: Duration,
    /// Connections open at once; more are answered 503 and closed. Default 4096.
    pub max_connections: usize,
    /// Request bodies: deadline, and the budget of body bytes in memory across requests.
    pub body: crate::api::body::BodyOptions,
    /// Loaded model plans kept in memory: by count and by ONNX size, least recently used out.
    pub model_plans: crate::models::plans::PlanLimits,
    /// Refuse webhook deliveries to loopback, private and link-local addresses.
    pub webhooks_deny_private: bool,
    /// Alert rules (see `ops::notify::alerts`), evaluated every `alert_interval`.
    pub alerts: Vec<crate::ops::notify::alerts::AlertRule>,
    pub alert_interval: Duration,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            listen: ([127, 0, 0, 1], 8080).into(),
            store_url: "file://./aimass-data/store".into(),
            s3: S3Options::default(),
            data_dir: PathBuf::from("./aimass-data"),
            artifact_key_file: None,
            auth_limit: Default::default(),
            admin_token: None,
            limits: Limits::default(),
            queue_timeout: Duration::from_secs(1),
            max_body_bytes: 128 << 20,
            engine: EngineOptions::default(),
            register_bundled: true,
            hooks: HookOptions::default(),
            grace: Duration::from_secs(30),
            header_timeout: crate::api::serve::HEADER_TIMEOUT,
            max_connections: crate::api::serve::MAX_CONNECTIONS,
            body: Default::default(),
            model_plans: Default::default(),
            webhooks_deny_private: false,
            alerts: Vec::new(),
            alert_interval: Duration::from_secs(15),
        }
    }
}
