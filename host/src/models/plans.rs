//! The loaded tract plans of model versions, bounded: at most `max_plans` versions and
//! `max_bytes` of ONNX behind them stay loaded, least recently used first out. A version
//! evicted while requests run on it stays alive for them (they hold its `Arc`) and is loaded
//! again by the next request. Loads and evictions are counted for `/metrics`.

use super::onnx::LoadedModel;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::OnceCell;

/// A version's plan, loaded once by whichever request comes first.
pub type Plan = Arc<OnceCell<Arc<LoadedModel>>>;

type Key = (String, u32);

/// Bounds of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    pub max_plans: usize,
    /// Sum of the ONNX sizes of the loaded versions (a plan takes about that much or more).
    pub max_bytes: u64,
}

impl Default for PlanLimits {
    fn default() -> Self {
        PlanLimits {
            max_plans: 64,
            max_bytes: 4 << 30,
        }
    }
}

struct Slot {
    plan: Plan,
    bytes: u64,
    used: u64,
}

#[derive(Default)]
struct Inner {
    slots: HashMap<Key, Slot>,
    bytes: u64,
    clock: u64,
}

pub struct PlanCache {
    limits: PlanLimits,
    inner: Mutex<Inner>,
    pub loads: AtomicU64,
    pub evictions: AtomicU64,
}

impl PlanCache {
    pub fn new(limits: PlanLimits) -> Self {
        PlanCache {
            limits,
            inner: Mutex::default(),
            loads: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// The plan cell of `key` (`bytes` of ONNX), marked as used now; a new cell, making room
    /// for it, if the version is not in the cache.
    pub fn cell(&self, key: Key, bytes: u64) -> Plan {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.clock += 1;
        let now = inner.clock;
        if let Some(slot) = inner.slots.get_mut(&key) {
            slot.used = now;
            return slot.plan.clone();
        }
        let plan = Plan::default();
        self.make_room(&mut inner, bytes);
        inner.bytes += bytes;
        let slot = Slot {
            plan: plan.clone(),
            bytes,
            used: now,
        };
        inner.slots.insert(key, slot);
        plan
    }

    /// Counts a load of a plan into the cache.
    pub fn loaded(&self) {
        self.loads.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether `key` is loaded now.
    pub fn is_loaded(&self, key: &Key) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.slots.get(key).is_some_and(|s| s.plan.initialized())
    }

    pub fn remove(&self, key: &Key) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = inner.slots.remove(key) {
            inner.bytes -= slot.bytes;
        }
    }

    /// Versions loaded and their ONNX bytes.
    pub fn usage(&self) -> (usize, u64) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (inner.slots.len(), inner.bytes)
    }

    fn make_room(&self, inner: &mut Inner, incoming: u64) {
        while !inner.slots.is_empty()
            && (inner.slots.len() >= self.limits.max_plans
                || inner.bytes + incoming > self.limits.max_bytes)
        {
            let oldest = (inner.slots.iter())
                .min_by_key(|(_, s)| s.used)
                .map(|(k, _)| k.clone())
                .expect("not empty");
            if let Some(slot) = inner.slots.remove(&oldest) {
                inner.bytes -= slot.bytes;
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: u32) -> Key {
        ("m".to_string(), v)
    }

    #[test]
    fn least_recently_used_versions_go_first_by_count_and_by_bytes() {
        let cache = PlanCache::new(PlanLimits {
            max_plans: 3,
            max_bytes: 100,
        });
        for v in 1..=3 {
            cache.cell(key(v), 10);
        }
        cache.cell(key(1), 10); // 1 is now the most recent; 2 the least.
        cache.cell(key(4), 10);
        assert_eq!(cache.usage(), (3, 30));
        assert_eq!(cache.evictions.load(Ordering::Relaxed), 1);
        let inner = cache.inner.lock().unwrap();
        assert!(!inner.slots.contains_key(&key(2)));
        drop(inner);
        // A 90-byte version pushes out the least recent until it fits: one 10-byte one stays.
        cache.cell(key(5), 90);
        assert_eq!(cache.usage(), (2, 100));
        assert_eq!(cache.evictions.load(Ordering::Relaxed), 3);
        cache.remove(&key(5));
        assert_eq!(cache.usage(), (1, 10));
    }
}
