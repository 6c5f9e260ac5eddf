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
use crate::platform::storage::Storage;
use crate::runtime::ModelRunner;
use crate::runtime::ObjectReader;
use crate::runtime::Runtime;
use governor::PluginLimits;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Semaphore;

mod cache;
mod calls;
mod entry;
mod upload;

pub use calls::CallError;
pub use entry::{Caller, LiveVersion, LoadedFrom, PluginEntry};
pub use upload::{UploadError, UploadOutcome};

/// Registry settings.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Limits of plugins that override nothing.
    pub defaults: PluginLimits,
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

    pub fn defaults(&self) -> PluginLimits {
        self.opts.defaults
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
}
