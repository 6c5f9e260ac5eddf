//! The plugin registry: named plugins, their immutable versions, the live version of each, and
//! per-plugin call statistics.
//!
//! Persistence: a plugin is its record at `plugins/{name}/meta.json`; component bytes are stored
//! by digest and the compiled artifact by engine hash + digest (see `storage`). The record write
//! is the commit point of an upload: until it lands, a crash leaves at most an unreferenced blob.
//!
//! Hot swap: the live version is an `Arc` behind a lock. A call clones the `Arc` when it starts,
//! so swapping in a new version never disturbs calls already running on the old one; the old
//! `InstancePre` is freed when its last call ends. Each version carries its own concurrency
//! semaphore sized by its limits.

use super::storage::Storage;
use crate::runtime::component::{Prepared, ValidationError, World};
use crate::runtime::invoke::{self, Call, CallStats, InvokeError, Outcome, Target};
use crate::runtime::limits::{LimitOverrides, Limits};
use crate::runtime::{Compiled, Runtime};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;

/// One immutable version of a plugin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionRecord {
    pub version: u32,
    pub digest: String,
    pub size: u64,
    pub world: World,
    /// Seconds since the Unix epoch.
    pub uploaded_at: u64,
    pub compile_ms: f64,
    /// Limits set at upload for this version (the rest come from the host defaults).
    #[serde(default)]
    pub overrides: LimitOverrides,
}

/// What is stored per plugin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginRecord {
    pub name: String,
    pub live: u32,
    pub versions: Vec<VersionRecord>,
}

impl PluginRecord {
    fn live_version(&self) -> Option<&VersionRecord> {
        self.versions.iter().find(|v| v.version == self.live)
    }
}

/// How a live version got into memory.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LoadedFrom {
    /// Compiled with Cranelift in this process.
    Compiled,
    /// Deserialized from the compiled-artifact cache.
    Cache,
}

/// The version that serves calls.
pub struct LiveVersion {
    pub version: u32,
    pub digest: String,
    pub limits: Limits,
    pub prepared: Prepared,
    pub loaded_from: LoadedFrom,
    pub load_time: Duration,
    slots: Arc<Semaphore>,
}

/// Call counters of a plugin since the host started.
#[derive(Debug, Default)]
pub struct Stats {
    calls: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    traps: AtomicU64,
    rejected_busy: AtomicU64,
    in_flight: AtomicU64,
    total_us: AtomicU64,
    fuel_total: AtomicU64,
    fuel_last: AtomicU64,
    memory_peak: AtomicU64,
    instantiate_us_total: AtomicU64,
}

/// A snapshot of [`Stats`] for the API.
#[derive(Debug, Clone, Serialize)]
pub struct StatsView {
    pub calls: u64,
    pub ok: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub traps: u64,
    pub rejected_busy: u64,
    pub in_flight: u64,
    pub mean_ms: f64,
    pub mean_instantiate_us: f64,
    pub fuel_total: u64,
    pub fuel_last: u64,
    pub memory_peak_bytes: u64,
}

impl Stats {
    fn record(&self, stats: &CallStats, result: &Result<Outcome, InvokeError>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(_) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                match e {
                    InvokeError::Timeout(_) => self.timeouts.fetch_add(1, Ordering::Relaxed),
                    InvokeError::Trap(_) | InvokeError::MemoryLimit { .. } => {
                        self.traps.fetch_add(1, Ordering::Relaxed)
                    }
                    _ => 0,
                };
                self.errors.fetch_add(1, Ordering::Relaxed)
            }
        };
        self.total_us
            .fetch_add(stats.total.as_micros() as u64, Ordering::Relaxed);
        self.instantiate_us_total
            .fetch_add(stats.instantiate.as_micros() as u64, Ordering::Relaxed);
        self.fuel_total.fetch_add(stats.fuel, Ordering::Relaxed);
        self.fuel_last.store(stats.fuel, Ordering::Relaxed);
        self.memory_peak
            .fetch_max(stats.memory_peak, Ordering::Relaxed);
    }

    pub fn view(&self) -> StatsView {
        let calls = self.calls.load(Ordering::Relaxed);
        let per = |total: u64| {
            if calls == 0 {
                0.0
            } else {
                total as f64 / calls as f64
            }
        };
        StatsView {
            calls,
            ok: self.ok.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            traps: self.traps.load(Ordering::Relaxed),
            rejected_busy: self.rejected_busy.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            mean_ms: per(self.total_us.load(Ordering::Relaxed)) / 1000.0,
            mean_instantiate_us: per(self.instantiate_us_total.load(Ordering::Relaxed)),
            fuel_total: self.fuel_total.load(Ordering::Relaxed),
            fuel_last: self.fuel_last.load(Ordering::Relaxed),
            memory_peak_bytes: self.memory_peak.load(Ordering::Relaxed),
        }
    }
}

/// A registered plugin.
pub struct PluginEntry {
    pub name: Arc<str>,
    record: RwLock<PluginRecord>,
    live: RwLock<Arc<LiveVersion>>,
    pub stats: Stats,
}

impl PluginEntry {
    pub fn record(&self) -> PluginRecord {
        self.record
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn live(&self) -> Arc<LiveVersion> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
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
}

pub struct Registry {
    runtime: Arc<Runtime>,
    storage: Storage,
    opts: RegistryOptions,
    engine_hash: String,
    plugins: RwLock<HashMap<String, Arc<PluginEntry>>>,
    /// Serialises uploads and deletes so record writes never race.
    writes: tokio::sync::Mutex<()>,
}

pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-_.".contains(c))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Write a file so readers see all of it or nothing: temp file in the same directory, then rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().context("cache path has a parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".{}.tmp", rand::random::<u64>()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

fn meta_key(name: &str) -> String {
    format!("plugins/{name}/meta.json")
}

fn component_key(digest: &str) -> String {
    format!("components/{digest}.wasm")
}

impl Registry {
    pub fn new(runtime: Arc<Runtime>, storage: Storage, opts: RegistryOptions) -> Registry {
        let engine_hash = runtime.engine.compatibility_hash();
        Registry {
            runtime,
            storage,
            opts,
            engine_hash,
            plugins: RwLock::new(HashMap::new()),
            writes: tokio::sync::Mutex::new(()),
        }
    }

    pub fn defaults(&self) -> Limits {
        self.opts.defaults
    }

    fn compiled_key(&self, digest: &str) -> String {
        format!("compiled/{}/{digest}.cwasm", self.engine_hash)
    }

    /// Load every stored plugin's live version, from the compiled cache when possible.
    pub async fn load_all(&self) -> anyhow::Result<usize> {
        let keys = self.storage.list("plugins").await?;
        let mut n = 0;
        for key in keys.iter().filter(|k| k.ends_with("/meta.json")) {
            let Some(record) = self.storage.get_json::<PluginRecord>(key).await? else {
                continue;
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
        let (compiled, from) = match self.cached_artifact(&v.digest).await? {
            Some(path) => {
                let rt = self.runtime.clone();
                let c = tokio::task::spawn_blocking(move || rt.load_compiled_file(&path)).await??;
                (c, LoadedFrom::Cache)
            }
            None => {
                let bytes = self
                    .storage
                    .get(&component_key(&v.digest))
                    .await?
                    .context("component bytes missing")?;
                let (c, _) = self.compile_and_cache(bytes.to_vec(), &v.digest).await?;
                (c, LoadedFrom::Compiled)
            }
        };
        tracing::info!(plugin = record.name, version = v.version, loaded_from = ?from,
            ms = compiled.load_time.as_secs_f64() * 1e3, "plugin loaded");
        let live = self.live_version(&v, compiled, from);
        let entry = Arc::new(PluginEntry {
            name: record.name.as_str().into(),
            record: RwLock::new(record.clone()),
            live: RwLock::new(Arc::new(live)),
            stats: Stats::default(),
        });
        self.plugins
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(record.name.clone(), entry);
        Ok(())
    }

    fn live_version(&self, v: &VersionRecord, c: Compiled, from: LoadedFrom) -> LiveVersion {
        let limits = self.opts.defaults.with_overrides(&v.overrides);
        LiveVersion {
            version: v.version,
            digest: v.digest.clone(),
            limits,
            prepared: c.prepared,
            loaded_from: from,
            load_time: c.load_time,
            slots: Arc::new(Semaphore::new(limits.max_concurrency.max(1) as usize)),
        }
    }

    fn local_artifact(&self, digest: &str) -> PathBuf {
        self.opts
            .local_cache
            .join(&self.engine_hash)
            .join(format!("{digest}.cwasm"))
    }

    /// A local file holding the compiled artifact of `digest`, fetched from the store into the
    /// local cache if only the store has it; `None` if neither has it.
    async fn cached_artifact(&self, digest: &str) -> anyhow::Result<Option<PathBuf>> {
        let path = self.local_artifact(digest);
        if path.exists() {
            return Ok(Some(path));
        }
        match self.storage.get(&self.compiled_key(digest)).await? {
            Some(bytes) => {
                write_atomic(&path, &bytes)?;
                Ok(Some(path))
            }
            None => Ok(None),
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
        self.storage
            .put(&self.compiled_key(digest), artifact.clone())
            .await
            .map_err(UploadError::Storage)?;
        write_atomic(&self.local_artifact(digest), &artifact).map_err(UploadError::Storage)?;
        Ok((compiled, artifact))
    }

    /// Validate, store and compile a component, and make it the live version of `name`.
    pub async fn upload(
        &self,
        name: &str,
        bytes: Vec<u8>,
        overrides: LimitOverrides,
    ) -> Result<UploadOutcome, UploadError> {
        if !valid_name(name) {
            return Err(UploadError::BadName(name.to_string()));
        }
        let digest = hex::encode(Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        // Cheap checks first, so garbage never reaches the compiler.
        crate::runtime::component::check_header(&bytes)?;

        let _guard = self.writes.lock().await;
        let existing = self.get(name);
        if let Some(entry) = &existing {
            let rec = entry.record();
            if let Some(live) = rec.live_version()
                && live.digest == digest
                && live.overrides == overrides
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
        let mut record = existing
            .as_ref()
            .map(|e| e.record())
            .unwrap_or(PluginRecord {
                name: name.to_string(),
                live: 0,
                versions: Vec::new(),
            });
        let version = record.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        let v = VersionRecord {
            version,
            digest: digest.clone(),
            size,
            world,
            uploaded_at: now_secs(),
            compile_ms,
            overrides,
        };
        record.versions.push(v.clone());
        record.live = version;
        // Commit point.
        self.storage
            .put_json(&meta_key(name), &record)
            .await
            .map_err(UploadError::Storage)?;

        let live = Arc::new(self.live_version(&v, compiled, LoadedFrom::Compiled));
        match existing {
            Some(entry) => {
                *entry.record.write().unwrap_or_else(|e| e.into_inner()) = record;
                *entry.live.write().unwrap_or_else(|e| e.into_inner()) = live;
            }
            None => {
                let entry = Arc::new(PluginEntry {
                    name: name.into(),
                    record: RwLock::new(record),
                    live: RwLock::new(live),
                    stats: Stats::default(),
                });
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

    /// Run a call on the live version of `name`, waiting a bounded time for a free slot.
    pub async fn call(
        &self,
        name: &str,
        call: Call,
        config: Vec<(String, String)>,
    ) -> Result<(Outcome, Arc<LiveVersion>), CallError> {
        let entry = self
            .get(name)
            .ok_or_else(|| CallError::NotFound(name.to_string()))?;
        let live = entry.live();
        let permit =
            match tokio::time::timeout(self.opts.queue_timeout, live.slots.clone().acquire_owned())
                .await
            {
                Ok(Ok(p)) => p,
                _ => {
                    entry.stats.rejected_busy.fetch_add(1, Ordering::Relaxed);
                    return Err(CallError::Busy(live.limits.max_concurrency));
                }
            };
        entry.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let target = Target {
            name: &entry.name,
            version: live.version,
            prepared: &live.prepared,
            limits: live.limits,
        };
        let (result, stats) = invoke::invoke(
            self.runtime.engine(),
            self.runtime.engine.consume_fuel,
            target,
            call,
            config,
        )
        .await;
        drop(permit);
        entry.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        entry.stats.record(&stats, &result);
        if let Err(e) = &result {
            tracing::warn!(plugin = name, version = live.version, "call failed: {e}");
        }
        Ok((result?, live))
    }
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn names() {
        assert!(valid_name("csv-collector"));
        assert!(valid_name("a.b_c-1"));
        assert!(!valid_name(""));
        assert!(!valid_name("-x"));
        assert!(!valid_name("Upper"));
        assert!(!valid_name("../etc"));
        assert!(!valid_name(&"x".repeat(65)));
    }
}
