//! A plugin in memory: its record, its live version (swapped whole on upload) and its stats.

use super::{PluginRecord, Stats, governor};

use super::governor::PluginLimits;
use crate::runtime::Grants;
use crate::runtime::Prepared;
use serde::Serialize;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Semaphore;

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
    pub limits: PluginLimits,
    pub prepared: Prepared,
    pub loaded_from: LoadedFrom,
    pub load_time: Duration,
}

/// A registered plugin.
pub struct PluginEntry {
    pub name: Arc<str>,
    pub(super) record: RwLock<PluginRecord>,
    pub(super) live: RwLock<Arc<LiveVersion>>,
    /// `max_concurrency` permits, one semaphore for the life of the plugin (resized when a new
    /// version changes the limit), so a swap never lets more calls in than the limit.
    pub(super) slots: Arc<Semaphore>,
    pub stats: Stats,
    /// Rate limit and quota counters.
    pub governor: governor::Governor,
    /// Slots and counters of anonymous calls to a public HTTP function, apart from token
    /// holders' so anonymous traffic cannot use up theirs ([`Limits::anonymous`]).
    pub(super) public_slots: Arc<Semaphore>,
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
    pub(super) fn new(record: PluginRecord, live: LiveVersion) -> Self {
        let slots = Semaphore::new(live.limits.call.max_concurrency.max(1) as usize);
        let public_slots = Semaphore::new(live.limits.anonymous().call.max_concurrency as usize);
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
    pub(super) fn swap(&self, record: PluginRecord, live: LiveVersion) {
        let old = self.live().limits;
        resize(
            &self.slots,
            old.call.max_concurrency.max(1),
            live.limits.call.max_concurrency.max(1),
        );
        resize(
            &self.public_slots,
            old.anonymous().call.max_concurrency,
            live.limits.anonymous().call.max_concurrency,
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
