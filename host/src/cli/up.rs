//! `aimass up`: build a [`HostConfig`] from flags and environment, start, print where to connect.

use crate::api::auth_limit::AuthLimit;
use crate::api::body::BodyOptions;
use crate::config::HostConfig;
use crate::ingest::hooks::HookOptions;
use crate::models::plans::PlanLimits;
use crate::platform::storage::S3Options;
use crate::platform::tokens::{ADMIN_TOKEN_FILE, Bootstrap};
use crate::runtime::EngineOptions;
use crate::runtime::Limits;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Address to listen on.
    #[arg(long, env = "AIMASS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Object store: file://PATH, memory:// or s3://BUCKET [default: file://<data dir>/store]
    #[arg(long, env = "AIMASS_STORE")]
    pub store: Option<String>,
    /// Local directory for the generated admin token, the artifact key and the compiled cache.
    #[arg(long, env = "AIMASS_DATA_DIR", default_value = "./aimass-data")]
    pub data_dir: PathBuf,
    /// Key file compiled artifacts in the store are sealed with (default: artifact-key in the
    /// data dir, created on first start). Hosts sharing a store should share it.
    #[arg(long, env = "AIMASS_ARTIFACT_KEY_FILE")]
    pub artifact_key_file: Option<PathBuf>,
    /// Failed authentications allowed per client address per minute (and in a burst) before
    /// its requests get 429.
    #[arg(long, env = "AIMASS_AUTH_FAILURES_PER_MINUTE", default_value_t = AuthLimit::default().per_minute,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub auth_failures_per_minute: u32,
    /// S3 endpoint for s3:// stores (default: AWS, or AWS_ENDPOINT_URL).
    #[arg(long, env = "AIMASS_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region (default: AWS_REGION).
    #[arg(long, env = "AIMASS_S3_REGION")]
    pub s3_region: Option<String>,
    /// Default deadline per plugin call, in milliseconds.
    #[arg(long, env = "AIMASS_TIMEOUT_MS", default_value_t = Limits::default().timeout_ms)]
    pub timeout_ms: u64,
    /// Default total linear memory per instance, in MiB.
    #[arg(long, env = "AIMASS_MEMORY_MB", default_value_t = Limits::default().memory_bytes >> 20)]
    pub memory_mb: u64,
    /// Default largest output per call, in MiB.
    #[arg(long, env = "AIMASS_OUTPUT_MB", default_value_t = Limits::default().max_output_bytes >> 20)]
    pub output_mb: u64,
    /// Default instances of one plugin running at once.
    #[arg(long, env = "AIMASS_CONCURRENCY", default_value_t = Limits::default().max_concurrency)]
    pub concurrency: u32,
    /// How long a call waits for a free instance slot before 503, in milliseconds.
    #[arg(long, env = "AIMASS_QUEUE_TIMEOUT_MS", default_value_t = 1000)]
    pub queue_timeout_ms: u64,
    /// Largest request body, in MiB (413 beyond).
    #[arg(long, env = "AIMASS_MAX_BODY_MB", default_value_t = 128)]
    pub max_body_mb: usize,
    /// Instance pool capacity across all plugins.
    #[arg(long, env = "AIMASS_POOL_INSTANCES", default_value_t = 256)]
    pub pool_instances: u32,
    /// MiB of each pooled instance's memory kept resident between calls (reset by memset
    /// instead of page faults). Raise it for plugins working on large batches; costs that much
    /// RSS per pool slot that used it.
    #[arg(long, env = "AIMASS_POOL_KEEP_RESIDENT_MB", default_value_t = EngineOptions::default().keep_resident_bytes >> 20)]
    pub pool_keep_resident_mb: u64,
    /// Disable the pooling allocator (allocate instances on demand).
    #[arg(long)]
    pub no_pooling: bool,
    /// Do not register the bundled plugins.
    #[arg(long)]
    pub no_bundled: bool,
    /// How often watched prefixes are listed for changes, in milliseconds (0: no polling; rely
    /// on S3 notifications and writes through the host).
    #[arg(long, env = "AIMASS_POLL_INTERVAL_MS", default_value_t = 1000)]
    pub poll_interval_ms: u64,
    /// Most of the time the poller may spend listing, in percent: passes over large prefixes
    /// (~10 µs per object on local disk) then run less often than the interval.
    #[arg(long, env = "AIMASS_POLL_CPU_PERCENT", default_value_t = HookOptions::default().poll_cpu_percent,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub poll_cpu_percent: u32,
    /// Hook deliveries processed at once, across all hooks.
    #[arg(long, env = "AIMASS_HOOK_WORKERS", default_value_t = HookOptions::default().workers)]
    pub hook_workers: usize,
    /// On SIGTERM/Ctrl-C, seconds in-flight requests get to finish after the listener closes.
    #[arg(long, env = "AIMASS_GRACE_SECS", default_value_t = 30)]
    pub grace_secs: u64,
    /// Seconds a connection may take to send a request head, and so may sit idle between
    /// requests, before it is closed.
    #[arg(long, env = "AIMASS_HEADER_TIMEOUT_SECS", default_value_t = crate::api::serve::HEADER_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_secs: u64,
    /// Connections open at once; one more is answered 503 and closed.
    #[arg(long, env = "AIMASS_MAX_CONNECTIONS", default_value_t = crate::api::serve::MAX_CONNECTIONS as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Seconds a request body may take to arrive in full (408 after).
    #[arg(long, env = "AIMASS_BODY_TIMEOUT_SECS", default_value_t = BodyOptions::default().timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub body_timeout_secs: u64,
    /// MiB of request bodies held in memory at once across requests; a read past it waits up to
    /// 2 s, then gets 503 (at least --max-body-mb).
    #[arg(long, env = "AIMASS_MAX_INFLIGHT_BODY_MB", default_value_t = BodyOptions::default().budget_bytes >> 20)]
    pub max_inflight_body_mb: usize,
    /// Model versions kept loaded (tract plans) at once; the least recently used is unloaded
    /// first, and loaded again by its next request.
    #[arg(long, env = "AIMASS_MAX_LOADED_MODELS", default_value_t = PlanLimits::default().max_plans)]
    pub max_loaded_models: usize,
    /// MiB of ONNX (the files of the loaded versions) kept loaded at once.
    #[arg(long, env = "AIMASS_MAX_LOADED_MODEL_MB", default_value_t = PlanLimits::default().max_bytes >> 20)]
    pub max_loaded_model_mb: u64,
    /// Refuse webhook deliveries to loopback, private and link-local addresses (checked on the
    /// addresses connected to, so a name cannot lead there either).
    #[arg(long, env = "AIMASS_WEBHOOKS_DENY_PRIVATE")]
    pub webhooks_deny_private: bool,
    /// TOML file of alert rules (`[[alert]]` tables).
    #[arg(long, env = "AIMASS_ALERTS")]
    pub alerts: Option<PathBuf>,
    /// How often alert rules are evaluated, in milliseconds.
    #[arg(long, env = "AIMASS_ALERT_INTERVAL_MS", default_value_t = 15_000)]
    pub alert_interval_ms: u64,
    /// Log format.
    #[arg(long, env = "AIMASS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr through a writer thread: a request's access-log line is formatted on its
/// own thread but written (batched) by another, so a busy HTTP function does not pay a `write`
/// syscall per request (measured: ~17% of hello-function throughput at concurrency 64). Not
/// lossy: when the writer falls behind, logging waits rather than dropping lines. The guard
/// flushes what is queued when the host exits.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AIMASS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("aimass-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    guard
}

/// The host's configuration from `up`'s flags: alert rules read from their file, the default
/// store placed in the data dir.
fn host_config(args: UpArgs) -> anyhow::Result<HostConfig> {
    let alerts = match &args.alerts {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
            crate::ops::notify::alerts::parse(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => Vec::new(),
    };
    let store_url = match args.store {
        Some(url) => url,
        None => {
            let (url, moved) = crate::platform::local_layout::default_store(&args.data_dir)?;
            if moved > 0 {
                tracing::info!(
                    moved,
                    store = url,
                    "moved the store out of the data dir's root"
                );
            }
            url
        }
    };
    Ok(HostConfig {
        listen: args.listen,
        store_url,
        s3: S3Options {
            endpoint: args.s3_endpoint,
            region: args.s3_region,
            ..Default::default()
        },
        data_dir: args.data_dir,
        artifact_key_file: args.artifact_key_file,
        auth_limit: AuthLimit {
            burst: args.auth_failures_per_minute,
            per_minute: args.auth_failures_per_minute,
        },
        admin_token: std::env::var("AIMASS_TOKEN").ok(),
        limits: Limits {
            timeout_ms: args.timeout_ms,
            memory_bytes: args.memory_mb << 20,
            max_output_bytes: args.output_mb << 20,
            max_concurrency: args.concurrency,
            ..Limits::default()
        },
        queue_timeout: Duration::from_millis(args.queue_timeout_ms),
        max_body_bytes: args.max_body_mb << 20,
        engine: EngineOptions {
            pooling: !args.no_pooling,
            max_instances: args.pool_instances,
            keep_resident_bytes: args.pool_keep_resident_mb << 20,
            ..Default::default()
        },
        register_bundled: !args.no_bundled,
        hooks: HookOptions {
            poll_interval: (args.poll_interval_ms > 0)
                .then(|| Duration::from_millis(args.poll_interval_ms)),
            poll_cpu_percent: args.poll_cpu_percent,
            workers: args.hook_workers,
        },
        grace: Duration::from_secs(args.grace_secs),
        header_timeout: Duration::from_secs(args.header_timeout_secs),
        max_connections: args.max_connections as usize,
        body: BodyOptions {
            timeout: Duration::from_secs(args.body_timeout_secs),
            budget_bytes: args.max_inflight_body_mb << 20,
            ..BodyOptions::default()
        },
        model_plans: PlanLimits {
            max_plans: args.max_loaded_models.max(1),
            max_bytes: args.max_loaded_model_mb << 20,
        },
        webhooks_deny_private: args.webhooks_deny_private,
        alerts,
        alert_interval: Duration::from_millis(args.alert_interval_ms.max(100)),
    })
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let _log_guard = init_logging(args.log_format);
    let config = host_config(args)?;
    let data_dir = config.data_dir.clone();
    let store = config.store_url.clone();
    let running = crate::server::start(config).await?;
    banner(&running, &store, &data_dir)?;
    running.server.await??;
    Ok(())
}

/// What `up` prints once listening: the address, the store, and how to authenticate.
fn banner(
    running: &crate::server::Running,
    store: &str,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "aimass listening on http://{}", running.addr)?;
    writeln!(
        out,
        "store {store}; {} plugins loaded; pooling allocator {}",
        running.registry.list().len(),
        if running.pooling { "on" } else { "off" }
    )?;
    match &running.bootstrap {
        Bootstrap::FromEnv => writeln!(out, "auth: the admin token is $AIMASS_TOKEN")?,
        Bootstrap::Existing => writeln!(
            out,
            "auth: use the admin token in {} (the CLI finds it), or set AIMASS_TOKEN",
            data_dir.join(ADMIN_TOKEN_FILE).display()
        )?,
        // The token itself stays out of stdout, which CI and container logs keep.
        Bootstrap::Generated { file, .. } => {
            writeln!(
                out,
                "auth: generated an admin token into {} (mode 0600); the CLI reads it from there",
                file.display()
            )?;
            writeln!(
                out,
                "      curl -H \"Authorization: Bearer $(cat {})\" http://{}/v1/plugins",
                file.display(),
                running.addr
            )?;
        }
    }
    Ok(())
}
