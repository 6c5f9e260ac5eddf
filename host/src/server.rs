//! Assembling a host from a [`HostConfig`]: runtime, storage, registry, tokens, bundled plugins,
//! then the API on a TCP listener.

use crate::api::{self, AppState};
use crate::config::HostConfig;
use crate::ingest::events::embedded::StoreQueue;
use crate::ingest::hooks::Hooks;
use crate::models::runner::PluginModels;
use crate::models::train::{self as jobs, Jobs};
use crate::models::versions::ModelRegistry;
use crate::ops::notify::Notifier;
use crate::ops::notify::alerts::{self, Alerts};
use crate::ops::notify::webhooks::Webhooks;
use crate::pipelines::Pipelines;
use crate::platform::storage::Storage;
use crate::platform::tokens::{Bootstrap, Tokens};
use crate::plugins::governor::PluginLimits;
use crate::plugins::{Registry, RegistryOptions, seal};
use crate::runtime::{ModelRunner, Runtime};
use crate::warehouse::Warehouse;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;

/// The tokio runtime a host runs on.
///
/// Plugin calls run wasm on the worker threads, yielding at every epoch tick (10 ms). Tokio polls
/// its timer and I/O driver only every `event_interval` scheduler ticks (61 by default), which
/// with 10 ms ticks would leave timers — queue timeouts, deadlines of host calls — and new
/// connections waiting for most of a second while plugins are busy. Polling the driver every
/// other tick bounds that at ~20 ms for a few µs per tick.
pub fn runtime_builder() -> tokio::runtime::Builder {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all().event_interval(2);
    b
}

/// A host that is listening.
pub struct Running {
    pub addr: SocketAddr,
    pub bootstrap: Bootstrap,
    pub registry: Arc<Registry>,
    pub hooks: Arc<Hooks>,
    pub pooling: bool,
    pub loaded: usize,
    /// Cancelled when shutdown begins (a signal, or a caller cancelling it).
    pub shutdown: tokio_util::sync::CancellationToken,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// A host assembled but not yet serving: its router (a `tower` service, which the fuzz targets
/// drive in-process) and what [`start`] needs to run it.
pub struct Host {
    pub app: axum::Router,
    pub bootstrap: Bootstrap,
    pub registry: Arc<Registry>,
    pub hooks: Arc<Hooks>,
    pub pipelines: Arc<Pipelines>,
    pub pooling: bool,
    pub loaded: usize,
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// Build everything: runtime, store, registries, bundled plugins, the API router. Hooks and
/// pipeline triggers are not running yet; [`start`] starts them with the listener.
///
/// Services are built in dependency order, each handed what it uses at construction: the
/// notification bus and the model registry first, then the plugin registry (whose plugins call
/// served models), hooks, training jobs and pipelines.
pub async fn build(config: &HostConfig) -> anyhow::Result<Host> {
    let runtime = Arc::new(Runtime::new(&config.engine)?);
    let pooling = runtime.engine.pooling;
    let storage = Storage::open(&config.store_url, &config.s3)?;
    let bus = Arc::new(Notifier::default());
    let models = Arc::new(
        ModelRegistry::open(storage.clone(), config.model_plans, bus.clone())
            .await
            .context("loading the model registry")?,
    );
    let registry = plugin_registry(config, &runtime, &storage, &models)?;
    let loaded = registry.load_all().await?;
    if config.register_bundled {
        register_bundled(&registry).await?;
    }
    let warehouse = Arc::new(Warehouse::new(storage.clone()));
    let hooks = load_hooks(config, &storage, &registry, &warehouse, &bus).await?;
    let tokens = Arc::new(Tokens::load(storage.clone(), config.admin_token.as_deref()).await?);
    let bootstrap = tokens.bootstrap(&config.data_dir).await?;
    let info = host_info(config, &runtime, &storage).await;
    let deps = jobs::Deps {
        plugins: registry.clone(),
        models: models.clone(),
        warehouse,
        storage: storage.clone(),
    };
    let jobs = Arc::new(
        Jobs::open(deps.clone(), 1)
            .await
            .context("loading training jobs")?,
    );
    let webhooks = Webhooks::open(storage.clone(), config.webhooks_deny_private)
        .await
        .context("loading webhooks")?;
    webhooks.start(&bus);
    let pipelines = Pipelines::open(deps, bus.clone(), hooks.clone())
        .await
        .context("loading pipelines")?;
    let alerts = start_alerts(config, &registry, &hooks, &bus);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let state = AppState {
        registry: registry.clone(),
        models,
        jobs,
        pipelines: pipelines.clone(),
        webhooks,
        alerts,
        bus,
        shutdown: shutdown.clone(),
        tokens,
        auth_failures: Arc::new(api::auth_limit::AuthFailures::new(config.auth_limit)),
        streams: Default::default(),
        body_budget: Arc::new(api::body::BodyBudget::new(api::body::BodyOptions {
            // A body the host accepts must fit in the budget on its own.
            budget_bytes: (config.body.budget_bytes).max(config.max_body_bytes),
            ..config.body
        })),
        hooks: hooks.clone(),
        storage,
        info: Arc::new(info),
        // Anyone may ask: liveness only, nothing about the deployment.
        health: Arc::new(serde_json::json!({ "status": "ok" })),
        max_body_bytes: config.max_body_bytes,
    };
    Ok(Host {
        app: api::router(state),
        bootstrap,
        registry,
        hooks,
        pipelines,
        pooling,
        loaded,
        shutdown,
    })
}

/// The hooks as the store holds them, their interrupted deliveries recovered.
async fn load_hooks(
    config: &HostConfig,
    storage: &Storage,
    registry: &Arc<Registry>,
    warehouse: &Arc<Warehouse>,
    bus: &Arc<Notifier>,
) -> anyhow::Result<Arc<Hooks>> {
    let hooks = Arc::new(Hooks::new(
        storage.clone(),
        registry.clone(),
        warehouse.clone(),
        Arc::new(StoreQueue::new(storage.clone())),
        config.hooks.clone(),
        bus.clone(),
    ));
    let (hook_count, recovered) = hooks.load().await.context("loading hooks")?;
    if hook_count > 0 || recovered > 0 {
        tracing::info!(hooks = hook_count, recovered, "hooks loaded");
    }
    Ok(hooks)
}

/// Alert rules, evaluated on the plugin registry's and the hooks' figures.
fn start_alerts(
    config: &HostConfig,
    registry: &Arc<Registry>,
    hooks: &Arc<Hooks>,
    bus: &Arc<Notifier>,
) -> Arc<Alerts> {
    let alerts = Alerts::new(config.alerts.clone());
    let (registry, hooks) = (registry.clone(), hooks.clone());
    alerts.start(
        config.alert_interval,
        move || alert_sample(&registry, &hooks),
        bus.clone(),
    );
    alerts
}

/// The plugin registry, with the compiled-artifact seal and served models for the `inference`
/// import.
fn plugin_registry(
    config: &HostConfig,
    runtime: &Arc<Runtime>,
    storage: &Storage,
    models: &Arc<ModelRegistry>,
) -> anyhow::Result<Arc<Registry>> {
    let key_file =
        (config.artifact_key_file.clone()).unwrap_or_else(|| config.data_dir.join(seal::KEY_FILE));
    let seal = Arc::new(seal::Seal::load_or_create(&key_file)?);
    let opts = RegistryOptions {
        defaults: PluginLimits {
            call: config.limits,
            ..Default::default()
        },
        queue_timeout: config.queue_timeout,
        local_cache: config.data_dir.join("cache").join("compiled"),
        max_instances: runtime
            .engine
            .pooling
            .then_some(config.engine.max_instances),
        seal,
    };
    let runner: Arc<dyn ModelRunner> = Arc::new(PluginModels(models.clone()));
    Ok(Arc::new(Registry::new(
        runtime.clone(),
        storage.clone(),
        opts,
        Some(runner),
    )))
}

/// Register the plugins bundled in the binary (a newer bundled version replaces an older
/// bundled one, never an uploaded one).
async fn register_bundled(registry: &Registry) -> anyhow::Result<()> {
    for (name, bytes) in crate::bundled::PLUGINS {
        let registered = registry
            .register_bundled(name, bytes)
            .await
            .with_context(|| format!("registering bundled plugin {name}"))?;
        if let Some(o) = registered {
            tracing::info!(
                plugin = name,
                version = o.version,
                "bundled plugin registered"
            );
        }
    }
    Ok(())
}

/// What `GET /v1/info` tells a reader about the deployment.
async fn host_info(config: &HostConfig, runtime: &Runtime, storage: &Storage) -> serde_json::Value {
    let conditional_create = storage
        .probe_conditional_create()
        .await
        .unwrap_or_else(|e| {
            tracing::warn!("probing conditional create: {e:#}");
            false
        });
    serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "store": storage.url(),
        "pooling_allocator": runtime.engine.pooling,
        "engine_hash": runtime.engine.compatibility_hash(),
        // Whether create-only PUTs are honoured (Garage and some S3 servers ignore them).
        // Nothing relies on it; it tells operators whether a second writer could race.
        "store_conditional_create": conditional_create,
        "default_limits": PluginLimits {
            call: config.limits,
            ..Default::default()
        },
        "queue_timeout_ms": config.queue_timeout.as_millis() as u64,
        "max_body_bytes": config.max_body_bytes,
    })
}

/// Build everything and start serving in a background task.
pub async fn start(config: HostConfig) -> anyhow::Result<Running> {
    let Host {
        app,
        bootstrap,
        registry,
        hooks,
        pipelines,
        pooling,
        loaded,
        shutdown,
    } = build(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    // Pipelines first: they register their object triggers before the dispatcher runs.
    pipelines.start();
    hooks.start(shutdown.clone(), pipelines.trigger_sink());
    let server = tokio::spawn(serve(
        listener,
        app,
        shutdown.clone(),
        config.grace,
        api::serve::ServeOptions {
            header_timeout: config.header_timeout,
            max_connections: config.max_connections,
        },
        pipelines,
    ));
    Ok(Running {
        addr,
        bootstrap,
        registry,
        hooks,
        pooling,
        loaded,
        shutdown,
        server,
    })
}

/// Serve until a signal (or `shutdown` is cancelled), then drain: the listener closes at once,
/// hooks stop taking deliveries (pending ones stay queued in the store), pipeline runs stop at
/// the host's exit and resume from their last completed step at the next start, and in-flight
/// requests get `grace` to finish before the host exits anyway.
async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: tokio_util::sync::CancellationToken,
    grace: std::time::Duration,
    opts: api::serve::ServeOptions,
    pipelines: Arc<Pipelines>,
) -> std::io::Result<()> {
    let token = shutdown.clone();
    let server = api::serve::serve(listener, app, opts, async move {
        tokio::select! {
            _ = shutdown_signal() => token.cancel(),
            _ = token.cancelled() => {}
        }
    });
    let deadline = async {
        shutdown.cancelled().await;
        let runs = pipelines.active();
        tracing::info!(
            grace_s = grace.as_secs_f64(),
            pipeline_runs = runs,
            "shutting down: listener closed, finishing in-flight requests; pipeline runs \
             resume at the next start"
        );
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        () = server => {
            tracing::info!("shut down cleanly");
            Ok(())
        }
        _ = deadline => {
            tracing::warn!("grace period over: exiting with requests still in flight");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The figures alert rules watch: calls and failures per plugin, dead letters per hook.
fn alert_sample(registry: &Registry, hooks: &Hooks) -> alerts::Sample {
    let plugins = registry
        .list()
        .iter()
        .map(|e| {
            let v = e.stats.view();
            (e.name.to_string(), (v.calls, v.errors))
        })
        .collect();
    let hooks = hooks
        .list()
        .iter()
        .filter_map(|r| {
            hooks
                .status(&r.name)
                .map(|s| (r.name.clone(), s.dead_lettered))
        })
        .collect();
    alerts::Sample { plugins, hooks }
}
