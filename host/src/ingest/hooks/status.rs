//! Per-hook counters and event latency, for `GET /v1/hooks/{name}` and the benchmarks.
//!
//! Counters are since this host started; what must survive a restart (pending work, dead
//! letters) is read from the queue instead.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Latency samples kept for the percentiles.
const LATENCY_SAMPLES: usize = 8192;

#[derive(Default)]
pub struct HookStats {
    pub processed: AtomicU64,
    pub duplicates: AtomicU64,
    pub superseded: AtomicU64,
    pub retracted: AtomicU64,
    pub skipped: AtomicU64,
    /// Failed attempts (each retry counts).
    pub failed: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub in_flight: AtomicU64,
    last_error: Mutex<Option<(u64, String)>>,
    /// Event accepted → plugin output committed, µs.
    latencies: Mutex<VecDeque<u64>>,
}

/// Event latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Latency {
    pub samples: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl HookStats {
    pub fn error(&self, at_ms: u64, message: &str) {
        *self.last_error.lock().unwrap() = Some((at_ms, message.to_string()));
    }

    pub fn last_error(&self) -> Option<(u64, String)> {
        self.last_error.lock().unwrap().clone()
    }

    pub fn record_latency(&self, us: u64) {
        let mut l = self.latencies.lock().unwrap();
        if l.len() == LATENCY_SAMPLES {
            l.pop_front();
        }
        l.push_back(us);
    }

    /// Percentiles over the most recent samples (nearest rank).
    pub fn latency(&self) -> Option<Latency> {
        let mut v: Vec<u64> = self.latencies.lock().unwrap().iter().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let q = |p: f64| {
            let i = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
            v[i] as f64 / 1000.0
        };
        Some(Latency {
            samples: v.len(),
            p50_ms: q(0.50),
            p90_ms: q(0.90),
            p99_ms: q(0.99),
            max_ms: *v.last().unwrap() as f64 / 1000.0,
        })
    }

    pub fn reset_latency(&self) {
        self.latencies.lock().unwrap().clear();
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Relaxed)
    }

    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = HookStats::default();
        assert!(s.latency().is_none());
        for us in 1..=100u64 {
            s.record_latency(us * 1000);
        }
        let l = s.latency().unwrap();
        assert_eq!(
            (l.samples, l.p50_ms, l.p99_ms, l.max_ms),
            (100, 50.0, 99.0, 100.0)
        );
    }
}
