//! Per-plugin resource limits and the memory limiter that enforces them.
//!
//! wasmtime's stock `StoreLimits` bounds each linear memory separately, so a component with
//! several memories (its own plus adapters', or a hostile one) could use N times the limit — the
//! problem Spin users hit (spin#3705). [`MemoryLimiter`] instead sums every memory's growth in the
//! store and refuses growth past the plugin's total, remembering that it did so, so the caller can
//! report "memory limit exceeded" rather than whatever trap the guest's allocator turns a failed
//! `memory.grow` into.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The limits one plugin runs under. Global defaults come from the host configuration; each field
/// can be overridden per plugin at upload (`PUT /v1/plugins/{name}?timeout_ms=...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Wall-clock deadline for one invocation, instantiation included. Past it the call is stopped
    /// — by epoch interruption in wasm code, by a timer while blocked in a host call — and the
    /// caller gets 504.
    pub timeout_ms: u64,
    /// Total bytes of linear memory across ALL of an instance's memories.
    pub memory_bytes: u64,
    /// Largest output a call may return; larger outputs are an error, never a truncation.
    pub max_output_bytes: u64,
    /// Instances of this plugin that may run at once; further callers queue (bounded) then get 503.
    pub max_concurrency: u32,
    /// Outbound HTTP requests one call may send (to hosts it was granted); past it the guest
    /// gets `connection-limit-reached`.
    #[serde(default = "default_outbound_requests")]
    pub max_outbound_requests: u32,
    /// Largest outbound HTTP response body a call may receive; past it the guest gets
    /// `HTTP-response-body-size`.
    #[serde(default = "default_outbound_response_bytes")]
    pub max_outbound_response_bytes: u64,
}

fn default_outbound_requests() -> u32 {
    Limits::default().max_outbound_requests
}

fn default_outbound_response_bytes() -> u64 {
    Limits::default().max_outbound_response_bytes
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout_ms: 10_000,
            memory_bytes: 512 << 20,
            max_output_bytes: 128 << 20,
            max_concurrency: 8,
            max_outbound_requests: 16,
            max_outbound_response_bytes: 16 << 20,
        }
    }
}

impl Limits {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Apply the overrides that are set.
    pub fn with_overrides(mut self, o: &LimitOverrides) -> Limits {
        if let Some(v) = o.timeout_ms {
            self.timeout_ms = v;
        }
        if let Some(v) = o.memory_bytes {
            self.memory_bytes = v;
        }
        if let Some(v) = o.max_output_bytes {
            self.max_output_bytes = v;
        }
        if let Some(v) = o.max_concurrency {
            self.max_concurrency = v;
        }
        if let Some(v) = o.max_outbound_requests {
            self.max_outbound_requests = v;
        }
        if let Some(v) = o.max_outbound_response_bytes {
            self.max_outbound_response_bytes = v;
        }
        self
    }
}

/// Per-plugin overrides of [`Limits`], as stored in the plugin's metadata.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_outbound_requests: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_outbound_response_bytes: Option<u64>,
}

/// A `ResourceLimiter` bounding the SUM of all linear memories of a store.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit: u64,
    used: u64,
    peak: u64,
    exceeded: bool,
}

impl MemoryLimiter {
    pub fn new(limit: u64) -> Self {
        MemoryLimiter {
            limit,
            used: 0,
            peak: 0,
            exceeded: false,
        }
    }

    /// Whether a growth was refused because of the limit.
    pub fn exceeded(&self) -> bool {
        self.exceeded
    }

    /// Highest total linear memory seen, in bytes.
    pub fn peak(&self) -> u64 {
        self.peak
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Past the memory's own maximum (its type, or the pool's slot size) wasmtime would fail
        // the growth anyway; refusing it here keeps it out of the total. Not our limit: no flag.
        if maximum.is_some_and(|m| desired > m) {
            return Ok(false);
        }
        let delta = desired.saturating_sub(current) as u64;
        if self.used.saturating_add(delta) > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        self.used += delta;
        self.peak = self.peak.max(self.used);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables cost a pointer per element; a million elements is far beyond any real plugin.
        Ok(desired <= 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::{Config, Engine, Instance, Module, Store};

    /// A core module with two memories, each allowed to grow to 100 pages by its own type, and
    /// exports that grow either one: a per-memory limit would allow 2x the total.
    const TWO_MEMORIES: &str = r#"
        (module
          (memory $a 1 100)
          (memory $b 1 100)
          (func (export "grow_a") (param i32) (result i32) (memory.grow $a (local.get 0)))
          (func (export "grow_b") (param i32) (result i32) (memory.grow $b (local.get 0))))
    "#;

    fn instance(limit: u64) -> (Store<MemoryLimiter>, Instance) {
        let mut config = Config::new();
        config.wasm_multi_memory(true);
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, TWO_MEMORIES).unwrap();
        let mut store = Store::new(&engine, MemoryLimiter::new(limit));
        store.limiter(|l| l);
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        (store, instance)
    }

    #[test]
    fn limit_is_the_total_across_memories() {
        const PAGE: u64 = 65536;
        // 10 pages in total: the two initial pages plus 8 more.
        let (mut store, instance) = instance(10 * PAGE);
        let grow_a = instance
            .get_typed_func::<i32, i32>(&mut store, "grow_a")
            .unwrap();
        let grow_b = instance
            .get_typed_func::<i32, i32>(&mut store, "grow_b")
            .unwrap();
        assert_eq!(grow_a.call(&mut store, 5).unwrap(), 1, "a: 1 -> 6 pages");
        assert!(!store.data().exceeded());
        // b alone would be far under the limit, but a + b would be 6 + 5 = 11 pages.
        assert_eq!(grow_b.call(&mut store, 4).unwrap(), -1, "b refused");
        assert!(store.data().exceeded());
        assert_eq!(
            grow_b.call(&mut store, 3).unwrap(),
            1,
            "b: 1 -> 4, total 10"
        );
        assert_eq!(store.data().peak(), 10 * PAGE);
    }

    #[test]
    fn growth_refused_by_the_memory_type_is_not_counted() {
        const PAGE: u64 = 65536;
        let (mut store, instance) = instance(1000 * PAGE);
        let grow_a = instance
            .get_typed_func::<i32, i32>(&mut store, "grow_a")
            .unwrap();
        // Past memory a's own maximum (100 pages): wasmtime fails it after the limiter said yes.
        assert_eq!(grow_a.call(&mut store, 500).unwrap(), -1);
        assert!(!store.data().exceeded());
        assert_eq!(grow_a.call(&mut store, 99).unwrap(), 1);
        // 2 initial pages + 99: the refused 500 pages count neither in use nor in the peak.
        assert_eq!(store.data().peak(), 101 * PAGE);
    }

    #[test]
    fn overrides_replace_only_what_is_set() {
        let base = Limits::default();
        let o = LimitOverrides {
            timeout_ms: Some(5),
            ..Default::default()
        };
        let l = base.with_overrides(&o);
        assert_eq!(l.timeout_ms, 5);
        assert_eq!(l.memory_bytes, base.memory_bytes);
    }
}
