//! The plugin registry: named plugins, their immutable versions, the live version of each, and
//! per-plugin call statistics.
//!
//! Persistence: a plugin is its record at `plugins/{name}/meta.json`; component bytes are stored
//! by digest and the compiled artifact by engine hash + digest (see `storage`), with a local copy
//! of the artifact in the data dir that restarts map instead of copying. The record write is the
//! commit point of an upload: until it lands, a crash leaves at most an unreferenced blob.
//!
//! Hot swap: the live version is an `Arc` behind a lock. A call clones the `Arc` when it starts,
//! so swapping in a new version never disturbs calls already running on the old one; the old
//! `InstancePre` is freed when its last call ends.
//!
//! Admission: a call first takes one of its plugin's `max_concurrency` slots (one semaphore per
//! plugin, kept across swaps unless the limit changes), then, with the pooling allocator, one of
//! the engine's instance slots, both within `queue_timeout`; past it the caller gets 503.
//! Anonymous calls of a public HTTP function take slots of their own instead, and count against
//! their own rate and quota, so callers without a token cannot crowd out token holders.

pub mod governor;
pub mod reads;
pub mod records;
pub mod seal;
mod stats;

pub use records::{PluginRecord, Settings, VersionRecord};
pub use stats::{Stats, StatsView};

use crate::ops::prometheus::Metrics;
use crate::platform::clock::now_secs;
use crate::platform::names::valid_name;
use crate::platform::storage::Storage;
use crate::runtime::Limits;
use crate::runtime::ModelRunner;
use crate::runtime::ObjectReader;
use crate::runtime::{Call, CallStats, InvokeError, Outcome, Target, invoke};
use crate::runtime::{Capabilities, Grants};
use crate::runtime::{Compiled, Runtime};
use crate::runtime::{HttpFinish, HttpTarget, handle_http};
use crate::runtime::{Prepared, ValidationError, World};
use anyhow::Context;
use records::{component_key, meta_key, write_atomic};
use serde::Serialize;
use sha2::{Digest, Sha256};
use stats::InFlight;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// How a live version got into memory.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LoadedFrom {
    /// Compiled with Cranelift in this process.
    Compiled,
    /// Mapped from the compiled-artifact cache.
    Cache,
}

/// The version that serves calls.
pub struct LiveVersion {
    pub version: u32,
    pub grants: Arc<Grants>,
    /// Environment variables the plugin sees through WASI.
    pub env: Arc<[(String, String)]>,
    /// HTTP functions only: callable without a token.
    pub public: bool,
    pub digest: String,
    pub limits: Limits,
    pub prepared: Prepared,
    pub loaded_from: LoadedFrom,
    pub load_time: Duration,
}

/// A registered plugin.
pub struct PluginEntry {
    pub name: Arc<str>,
    record: RwLock<PluginRecord>,
    live: RwLock<Arc<LiveVersion>>,
    /// `max_concurrency` permits, one semaphore for the life of the plugin (resized when a new
    /// version changes the limit), so a swap never lets more calls in than the limit.
    slots: Arc<Semaphore>,
    pub stats: Stats,
    /// Rate limit and quota counters.
    pub governor: governor::Governor,
    /// Slots and counters of anonymous calls to a public HTTP function, apart from token
    /// holders' so anonymous traffic cannot use up theirs ([`Limits::anonymous`]).
    public_slots: Arc<Semaphore>,
    pub public_governor: governor::Governor,
}

/// Who makes a call, for admission: token holders and anonymous callers of a public HTTP
/// function take separate slots and are counted against separate rates and quotas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Token,
    Anonymous,
}

impl PluginEntry {
    fn new(record: PluginRecord, live: LiveVersion) -> Self {
        let slots = Semaphore::new(live.limits.max_concurrency.max(1) as usize);
        let public_slots = Semaphore::new(live.limits.anonymous().max_concurrency as usize);
        PluginEntry {
            name: record.name.as_str().into(),
            record: RwLock::new(record),
            live: RwLock::new(Arc::new(live)),
            slots: Arc::new(slots),
            stats: Stats::default(),
            governor: Default::default(),
            public_slots: Arc::new(public_slots),
            public_governor: Default::default(),
        }
    }

    pub fn record(&self) -> PluginRecord {
        self.record
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn live(&self) -> Arc<LiveVersion> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Make `live` the serving version (and `record` the stored state).
    fn swap(&self, record: PluginRecord, live: LiveVersion) {
        let old = self.live().limits;
        resize(
            &self.slots,
            old.max_concurrency.max(1),
            live.limits.max_concurrency.max(1),
        );
        resize(
            &self.public_slots,
            old.anonymous().max_concurrency,
            live.limits.anonymous().max_concurrency,
        );
        *self.record.write().unwrap_or_else(|e| e.into_inner()) = record;
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(live);
    }
}

/// Resize a semaphore of `old` permits to `new`: free permits go now, the rest as running calls
/// return them, so a swap never lets more calls in than the limit.
fn resize(slots: &Arc<Semaphore>, old: u32, new: u32) {
    if new > old {
        slots.add_permits((new - old) as usize);
    } else if new < old {
        let owed = (old - new) as usize - slots.forget_permits((old - new) as usize);
        if owed > 0 {
            let slots = slots.clone();
            tokio::spawn(async move {
                if let Ok(p) = slots.acquire_many_owned(owed as u32).await {
                    p.forget();
                }
            });
        }
    }
}

/// What an upload did.
#[derive(Debug, Clone, Serialize)]
pub struct UploadOutcome {
    pub name: String,
    pub version: u32,
    pub digest: String,
    pub world: World,
    pub size: u64,
    pub compile_ms: f64,
    /// False when the bytes and limits equal the live version's: nothing new was stored.
    pub created: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(
        "invalid plugin name {0:?}: use 1-64 characters a-z, 0-9, '-', '_' or '.', starting with a letter or digit"
    )]
    BadName(String),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("storage error: {0:#}")]
    Storage(anyhow::Error),
}

/// Why a call through the registry failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("no plugin named {0:?}")]
    NotFound(String),
    #[error("all {0} instance slots of this plugin are busy; retry shortly")]
    Busy(u32),
    #[error("all {0} instance slots of the host are busy; retry shortly")]
    HostBusy(u32),
    /// Rate limit or quota (429).
    #[error(transparent)]
    Limited(#[from] governor::Refusal),
    #[error(transparent)]
    Invoke(#[from] InvokeError),
}

/// Registry settings.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Limits of plugins that override nothing.
    pub defaults: Limits,
    /// How long a call waits for a free instance slot before 503.
    pub queue_timeout: Duration,
    /// Local directory of compiled artifacts. Loading maps these files (~0.5 ms for a 4 MB
    /// component) instead of copying artifacts out of the store (~10 ms); the store keeps the
    /// durable copy, so this is only a cache and may be deleted.
    pub local_cache: PathBuf,
    /// Capacity of the engine's instance pool (pooling allocator only): calls wait for one of
    /// these slots like for their plugin's own, instead of failing when the pool is full.
    pub max_instances: Option<u32>,
    /// The key compiled artifacts in the store are sealed with (see [`seal`]).
    pub seal: Arc<seal::Seal>,
}

pub struct Registry {
    runtime: Arc<Runtime>,
    storage: Storage,
    opts: RegistryOptions,
    engine_hash: String,
    plugins: RwLock<HashMap<String, Arc<PluginEntry>>>,
    /// Serialises uploads and deletes so record writes never race.
    writes: tokio::sync::Mutex<()>,
    instances: Option<(Arc<Semaphore>, u32)>,
    /// Served models, for the `inference` import.
    models: Option<Arc<dyn ModelRunner>>,
    /// The store as the `storage` import reads it (for plugins granted prefixes of it).
    objects: Arc<dyn ObjectReader>,
    /// Prometheus series of calls (shared with the API, which serves `/metrics`).
    metrics: Arc<Metrics>,
}

impl Registry {
    /// A registry whose plugins reach `models` through the `inference` import (their grants
    /// still decide which); `None` serves no models.
    pub fn new(
        runtime: Arc<Runtime>,
        storage: Storage,
        opts: RegistryOptions,
        models: Option<Arc<dyn ModelRunner>>,
    ) -> Registry {
        let engine_hash = runtime.engine.compatibility_hash();
        let instances = opts
            .max_instances
            .map(|n| (Arc::new(Semaphore::new(n as usize)), n));
        Registry {
            runtime,
            objects: Arc::new(storage.clone()),
            storage,
            opts,
            engine_hash,
            plugins: RwLock::new(HashMap::new()),
            writes: tokio::sync::Mutex::new(()),
            instances,
            models,
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// The host's metrics (calls recorded here; the API adds the rest).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// `(slots held, capacity)` of the engine's instance pool; `None` without pooling.
    pub fn pool_usage(&self) -> Option<(u32, u32)> {
        self.instances
            .as_ref()
            .map(|(sem, n)| (n.saturating_sub(sem.available_permits() as u32), *n))
    }

    pub fn defaults(&self) -> Limits {
        self.opts.defaults
    }

    fn compiled_key(&self, digest: &str) -> String {
        format!("compiled/{}/{digest}.cwasm", self.engine_hash)
    }

    fn local_artifact(&self, digest: &str) -> PathBuf {
        self.opts
            .local_cache
            .join(&self.engine_hash)
            .join(format!("{digest}.cwasm"))
    }

    /// Load every stored plugin's live version, from the compiled cache when possible. A record
    /// that cannot be read or loaded is logged and skipped: one bad plugin never stops the host.
    pub async fn load_all(&self) -> anyhow::Result<usize> {
        let keys = self.storage.list("plugins").await?;
        let mut n = 0;
        for key in keys.iter().filter(|k| k.ends_with("/meta.json")) {
            let record = match self.storage.get_json::<PluginRecord>(key).await {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(key, "skipping unreadable plugin record: {e:#}");
                    continue;
                }
            };
            match self.load_record(record).await {
                Ok(()) => n += 1,
                Err(e) => tracing::error!(key, "could not load plugin: {e:#}"),
            }
        }
        Ok(n)
    }

    async fn load_record(&self, record: PluginRecord) -> anyhow::Result<()> {
        let v = record
            .live_version()
            .context("record names no live version")?
            .clone();
        let (compiled, from) = self.load_version(&v.digest).await?;
        tracing::info!(plugin = record.name, version = v.version, loaded_from = ?from,
            ms = compiled.load_time.as_secs_f64() * 1e3, "plugin loaded");
        let live = self.live_version(&v, compiled, from);
        let name = record.name.clone();
        let entry = Arc::new(PluginEntry::new(record, live));
        self.plugins
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, entry);
        Ok(())
    }

    /// The compiled component of `digest`: mapped from the cache if an artifact exists and loads,
    /// else compiled again from the stored component (and cached again).
    async fn load_version(&self, digest: &str) -> anyhow::Result<(Compiled, LoadedFrom)> {
        // The digest names local files and store keys: only a sha256 in hex may.
        anyhow::ensure!(records::valid_digest(digest), "invalid digest {digest:?}");
        if let Some(path) = self.cached_artifact(digest).await? {
            let rt = self.runtime.clone();
            let p = path.clone();
            match tokio::task::spawn_blocking(move || rt.load_compiled_file(&p)).await? {
                Ok(c) => return Ok((c, LoadedFrom::Cache)),
                Err(e) => {
                    tracing::warn!(digest, "cached artifact unusable, recompiling: {e:#}");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let bytes = self
            .storage
            .get(&component_key(digest))
            .await?
            .context("component bytes missing from the store")?;
        if hex::encode(Sha256::digest(&bytes)) != digest {
            self.metrics.record_security("component_rejected");
            anyhow::bail!("stored component bytes do not match their digest {digest}");
        }
        let (c, _) = self.compile_and_cache(bytes.to_vec(), digest).await?;
        Ok((c, LoadedFrom::Compiled))
    }

    fn live_version(&self, v: &VersionRecord, c: Compiled, from: LoadedFrom) -> LiveVersion {
        LiveVersion {
            version: v.version,
            digest: v.digest.clone(),
            limits: self.opts.defaults.with_overrides(&v.overrides),
            grants: Arc::new(v.grants.clone()),
            env: v.env.iter().cloned().collect(),
            public: v.public,
            prepared: c.prepared,
            loaded_from: from,
            load_time: c.load_time,
        }
    }

    /// A local file holding the compiled artifact of `digest`, fetched from the store into the
    /// local cache if only the store has it with a valid seal; `None` otherwise (an artifact
    /// whose seal fails is counted, and replaced when the caller recompiles).
    async fn cached_artifact(&self, digest: &str) -> anyhow::Result<Option<PathBuf>> {
        let path = self.local_artifact(digest);
        if path.exists() {
            return Ok(Some(path));
        }
        let Some(stored) = self.storage.get(&self.compiled_key(digest)).await? else {
            return Ok(None);
        };
        match self.opts.seal.open(&self.engine_hash, digest, &stored) {
            Some(artifact) => {
                write_atomic(&path, artifact)?;
                Ok(Some(path))
            }
            None => {
                self.metrics.record_security("artifact_rejected");
                tracing::warn!(
                    digest,
                    "stored compiled artifact has no valid seal; recompiling"
                );
                Ok(None)
            }
        }
    }

    /// Compile off the async threads, then store the artifact (object store and local cache) for
    /// later restarts.
    async fn compile_and_cache(
        &self,
        bytes: Vec<u8>,
        digest: &str,
    ) -> Result<(Compiled, Vec<u8>), UploadError> {
        let rt = self.runtime.clone();
        let (compiled, artifact) = tokio::task::spawn_blocking(move || {
            let c = rt.compile(&bytes)?;
            let artifact = c
                .component
                .serialize()
                .map_err(|e| ValidationError::Invalid(format!("{e:#}")))?;
            Ok::<_, ValidationError>((c, artifact))
        })
        .await
        .map_err(|e| UploadError::Storage(e.into()))??;
        let sealed = self.opts.seal.seal(&self.engine_hash, digest, &artifact);
        self.storage
            .put(&self.compiled_key(digest), sealed)
            .await
            .map_err(UploadError::Storage)?;
        write_atomic(&self.local_artifact(digest), &artifact).map_err(UploadError::Storage)?;
        Ok((compiled, artifact))
    }

    /// Validate, store and compile a component, and make it the live version of `name`.
    ///
    /// Not cancellation-safe across its commit point: the API runs it in its own task so a
    /// client hanging up cannot leave the store and memory disagreeing.
    pub async fn upload(
        &self,
        name: &str,
        bytes: Vec<u8>,
        settings: Settings,
    ) -> Result<UploadOutcome, UploadError> {
        self.upload_as(name, bytes, settings, false).await
    }

    /// Register a plugin bundled in the binary, unless that would replace something an admin
    /// did: a missing plugin is registered; one whose live version is an older bundled one is
    /// upgraded; an uploaded version (or a stored record that failed to load) is left alone.
    pub async fn register_bundled(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<Option<UploadOutcome>, UploadError> {
        let live_is_bundled = match self.get(name) {
            Some(entry) => entry.record().live_version().is_some_and(|v| v.bundled),
            None => !self
                .storage
                .exists(&meta_key(name))
                .await
                .map_err(UploadError::Storage)?,
        };
        if !live_is_bundled {
            return Ok(None);
        }
        let o = self
            .upload_as(name, bytes.to_vec(), Settings::default(), true)
            .await?;
        Ok(o.created.then_some(o))
    }

    async fn upload_as(
        &self,
        name: &str,
        bytes: Vec<u8>,
        settings: Settings,
        bundled: bool,
    ) -> Result<UploadOutcome, UploadError> {
        if !valid_name(name) {
            return Err(UploadError::BadName(name.to_string()));
        }
        let digest = hex::encode(Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        // Cheap checks first, so garbage never reaches the compiler.
        crate::runtime::check_header(&bytes)?;

        let _guard = self.writes.lock().await;
        let existing = self.get(name);
        // A plugin not in memory may still have a stored record (it failed to load): continue
        // its history rather than overwrite it.
        let mut record = match &existing {
            Some(entry) => entry.record(),
            None => self
                .storage
                .get_json::<PluginRecord>(&meta_key(name))
                .await
                .map_err(UploadError::Storage)?
                .unwrap_or_else(|| PluginRecord::new(name)),
        };
        if existing.is_some()
            && let Some(live) = record.live_version()
            && live.digest == digest
            && live.settings() == settings
        {
            return Ok(UploadOutcome {
                name: name.to_string(),
                version: live.version,
                digest,
                world: live.world,
                size,
                compile_ms: 0.0,
                created: false,
            });
        }

        let (compiled, _) = self.compile_and_cache(bytes.clone(), &digest).await?;
        let world = compiled.prepared.world();
        let compile_ms = compiled.load_time.as_secs_f64() * 1e3;
        let key = component_key(&digest);
        if !self
            .storage
            .exists(&key)
            .await
            .map_err(UploadError::Storage)?
        {
            self.storage
                .put(&key, bytes)
                .await
                .map_err(UploadError::Storage)?;
        }
        let version = record.next_version();
        let v = VersionRecord {
            version,
            digest: digest.clone(),
            size,
            world,
            uploaded_at: now_secs(),
            compile_ms,
            overrides: settings.overrides,
            bundled,
            grants: settings.grants,
            env: settings.env,
            public: settings.public,
        };
        record.versions.push(v.clone());
        record.live = version;
        // Commit point.
        self.storage
            .put_json(&meta_key(name), &record)
            .await
            .map_err(UploadError::Storage)?;

        let live = self.live_version(&v, compiled, LoadedFrom::Compiled);
        match existing {
            Some(entry) => entry.swap(record, live),
            None => {
                let entry = Arc::new(PluginEntry::new(record, live));
                self.plugins
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.to_string(), entry);
            }
        }
        tracing::info!(plugin = name, version, %world, compile_ms, "plugin uploaded");
        Ok(UploadOutcome {
            name: name.to_string(),
            version,
            digest,
            world,
            size,
            compile_ms,
            created: true,
        })
    }

    pub fn get(&self, name: &str) -> Option<Arc<PluginEntry>> {
        self.plugins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub fn list(&self) -> Vec<Arc<PluginEntry>> {
        let mut v: Vec<_> = self
            .plugins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Remove a plugin. Calls already running finish; its blobs stay (content-addressed, possibly
    /// shared) until a garbage collection.
    pub async fn delete(&self, name: &str) -> anyhow::Result<bool> {
        let _guard = self.writes.lock().await;
        if self.get(name).is_none() {
            return Ok(false);
        }
        self.storage.delete(&meta_key(name)).await?;
        self.plugins
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(true)
    }

    /// Run a call on a given version of a plugin (the one the caller looked at), waiting at most
    /// `queue_timeout` in total for a plugin slot and an engine instance slot.
    pub async fn call_version(
        &self,
        entry: &PluginEntry,
        live: Arc<LiveVersion>,
        call: Call,
        config: Vec<(String, String)>,
    ) -> Result<Outcome, CallError> {
        let deadline = tokio::time::Instant::now() + self.opts.queue_timeout;
        self.call_inner(entry, live, call, config, Some(deadline), None)
            .await
    }

    /// Run a call for background work (hooks): wait for slots as long as it takes, so queued
    /// events respect the plugin's concurrency limit instead of failing with "busy", and
    /// optionally use another deadline than the plugin's.
    pub async fn call_queued(
        &self,
        entry: &PluginEntry,
        live: Arc<LiveVersion>,
        call: Call,
        config: Vec<(String, String)>,
        timeout_ms: Option<u64>,
    ) -> Result<Outcome, CallError> {
        self.call_inner(entry, live, call, config, None, timeout_ms)
            .await
    }

    /// Take a slot of the plugin and one of the engine's instance pool, waiting until `deadline`
    /// (or as long as it takes without one); past it the caller gets 503.
    async fn admit(
        &self,
        entry: &PluginEntry,
        live: &LiveVersion,
        deadline: Option<tokio::time::Instant>,
        caller: Caller,
    ) -> Result<Admission, CallError> {
        /// Wait for a permit until the deadline, or forever without one.
        async fn wait(
            sem: &Arc<Semaphore>,
            deadline: Option<tokio::time::Instant>,
        ) -> Option<tokio::sync::OwnedSemaphorePermit> {
            match deadline {
                Some(d) => tokio::time::timeout_at(d, sem.clone().acquire_owned())
                    .await
                    .ok()?
                    .ok(),
                None => sem.clone().acquire_owned().await.ok(),
            }
        }
        let (limits, governor, slots) = match caller {
            Caller::Token => (live.limits, &entry.governor, &entry.slots),
            Caller::Anonymous => (
                live.limits.anonymous(),
                &entry.public_governor,
                &entry.public_slots,
            ),
        };
        if let Err(refusal) = governor.admit(&limits) {
            self.metrics.record_limited(&entry.name, refusal.outcome());
            return Err(refusal.into());
        }
        let busy = |e: CallError| {
            entry.stats.rejected_busy.fetch_add(1, Ordering::Relaxed);
            self.metrics.record_busy(&entry.name);
            e
        };
        let plugin_slot = wait(slots, deadline)
            .await
            .ok_or_else(|| busy(CallError::Busy(limits.max_concurrency)))?;
        let instance_slot = match &self.instances {
            Some((slots, n)) => Some(
                wait(slots, deadline)
                    .await
                    .ok_or_else(|| busy(CallError::HostBusy(*n)))?,
            ),
            None => None,
        };
        Ok(Admission {
            _plugin: plugin_slot,
            _instance: instance_slot,
        })
    }

    fn capabilities(&self, live: &LiveVersion) -> Capabilities {
        Capabilities {
            models: self.models.clone(),
            objects: (!live.grants.storage.is_empty()).then(|| self.objects.clone()),
            grants: live.grants.clone(),
            env: live.env.clone(),
        }
    }

    async fn call_inner(
        &self,
        entry: &PluginEntry,
        live: Arc<LiveVersion>,
        call: Call,
        config: Vec<(String, String)>,
        deadline: Option<tokio::time::Instant>,
        timeout_ms: Option<u64>,
    ) -> Result<Outcome, CallError> {
        let admission = self.admit(entry, &live, deadline, Caller::Token).await?;
        let in_flight = InFlight::start(&entry.stats);
        let mut limits = live.limits;
        if let Some(t) = timeout_ms {
            limits.timeout_ms = t;
        }
        let target = Target {
            name: &entry.name,
            version: live.version,
            prepared: &live.prepared,
            limits,
            caps: self.capabilities(&live),
        };
        let span = invocation_span(&entry.name, &live);
        let (result, stats) = tracing::Instrument::instrument(
            invoke(
                self.runtime.engine(),
                self.runtime.engine.consume_fuel,
                target,
                call,
                config,
            ),
            span.clone(),
        )
        .await;
        drop(admission);
        in_flight.finish(&stats, result.as_ref().map(|_| ()));
        self.metrics
            .record_call(&entry.name, &stats, result.as_ref().map(|_| ()));
        let _in = span.enter();
        match &result {
            Err(e) => tracing::warn!("call failed: {e}"),
            Ok(_) => tracing::debug!(
                ms = stats.total.as_secs_f64() * 1e3,
                fuel = stats.fuel,
                memory_peak = stats.memory_peak,
                "call finished"
            ),
        }
        Ok(result?)
    }

    /// Serve one HTTP request with an HTTP function (`World::Http`) version, after admission like
    /// any call. The response head comes back as soon as the guest sets it; the body streams
    /// while the guest runs, and the slots are held until it returns.
    pub async fn call_http<B>(
        &self,
        entry: &Arc<PluginEntry>,
        live: Arc<LiveVersion>,
        req: hyper::Request<B>,
        caller: Caller,
    ) -> Result<hyper::Response<HyperOutgoingBody>, CallError>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let Prepared::Http(pre) = &live.prepared else {
            return Err(InvokeError::WrongWorld(format!(
                "plugin {:?} is a {}, not an HTTP function",
                &*entry.name,
                live.prepared.world()
            ))
            .into());
        };
        let deadline = tokio::time::Instant::now() + self.opts.queue_timeout;
        let admission = self.admit(entry, &live, Some(deadline), caller).await?;
        let target = HttpTarget {
            name: entry.name.clone(),
            version: live.version,
            pre: pre.clone(),
            limits: live.limits,
            caps: self.capabilities(&live),
        };
        let mut call = HttpCall::start(entry.clone());
        let version = live.version;
        let metrics = self.metrics.clone();
        let finish: HttpFinish = Box::new(move |stats, result| {
            drop(admission);
            call.end(&stats, result);
            metrics.record_call(&call.entry.name, &stats, result);
            if let Err(e) = result {
                tracing::warn!(plugin = &*call.entry.name, version, "call failed: {e}");
            }
        });
        // No `invoke` span here: a request already gets its access-log line, and creating and
        // formatting a span per request cost HTTP functions 10–25% of their throughput.
        Ok(handle_http(
            self.runtime.engine(),
            self.runtime.engine.consume_fuel,
            target,
            req,
            finish,
        )
        .await?)
    }
}

/// The span of one data-plugin invocation: every log line of the call — the plugin's own, the
/// host's about it — carries the plugin, version, world and a call id (`--log-format json`
/// shows them as fields). Call ids are per process.
fn invocation_span(plugin: &str, live: &LiveVersion) -> tracing::Span {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    tracing::info_span!(
        "invoke",
        plugin,
        version = live.version,
        world = %live.prepared.world(),
        call = NEXT.fetch_add(1, Ordering::Relaxed),
    )
}

/// An HTTP function's call as its statistics see it: in flight from the request until its task
/// reports the end, which may be after the response head went out; counted as cancelled if the
/// task is dropped without reporting (a panic), so `in_flight` never leaks.
struct HttpCall {
    entry: Arc<PluginEntry>,
    ended: bool,
}

impl HttpCall {
    fn start(entry: Arc<PluginEntry>) -> Self {
        entry.stats.begin();
        HttpCall {
            entry,
            ended: false,
        }
    }

    fn end(&mut self, stats: &CallStats, result: Result<(), &InvokeError>) {
        self.ended = true;
        self.entry.stats.end(stats, result);
    }
}

impl Drop for HttpCall {
    fn drop(&mut self) {
        if !self.ended {
            self.entry.stats.abandon();
        }
    }
}

/// A call's place in its plugin's concurrency limit and in the engine's instance pool, released
/// when dropped.
struct Admission {
    _plugin: tokio::sync::OwnedSemaphorePermit,
    _instance: Option<tokio::sync::OwnedSemaphorePermit>,
}
