//! Per-plugin call counters (since the host started), and the guard that keeps `in_flight` right
//! when a caller goes away mid-call.

use crate::runtime::invoke::{CallStats, InvokeError, Outcome};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Stats {
    calls: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    traps: AtomicU64,
    cancelled: AtomicU64,
    pub(super) rejected_busy: AtomicU64,
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
    /// Calls whose caller disconnected before they finished (the instance was dropped).
    pub cancelled: u64,
    pub rejected_busy: u64,
    pub in_flight: u64,
    pub mean_ms: f64,
    pub mean_instantiate_us: f64,
    pub fuel_total: u64,
    pub fuel_last: u64,
    pub memory_peak_bytes: u64,
}

/// Counts a call as in flight until dropped; a call dropped before [`InFlight::finish`] is
/// counted as cancelled.
pub struct InFlight<'a> {
    stats: &'a Stats,
    finished: bool,
}

impl<'a> InFlight<'a> {
    pub fn start(stats: &'a Stats) -> Self {
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            stats,
            finished: false,
        }
    }

    pub fn finish(mut self, stats: &CallStats, result: &Result<Outcome, InvokeError>) {
        self.finished = true;
        self.stats.record(stats, result);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        if !self.finished {
            self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Stats {
    fn record(&self, stats: &CallStats, result: &Result<Outcome, InvokeError>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(_) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let kind = match e {
                    InvokeError::Timeout(_) => Some(&self.timeouts),
                    InvokeError::Trap(_) | InvokeError::MemoryLimit { .. } => Some(&self.traps),
                    _ => None,
                };
                if let Some(counter) = kind {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        let add = |c: &AtomicU64, v: u64| c.fetch_add(v, Ordering::Relaxed);
        add(&self.total_us, stats.total.as_micros() as u64);
        add(
            &self.instantiate_us_total,
            stats.instantiate.as_micros() as u64,
        );
        add(&self.fuel_total, stats.fuel);
        self.fuel_last.store(stats.fuel, Ordering::Relaxed);
        self.memory_peak
            .fetch_max(stats.memory_peak, Ordering::Relaxed);
    }

    pub fn view(&self) -> StatsView {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let calls = get(&self.calls);
        let per = |total: u64| {
            if calls == 0 {
                0.0
            } else {
                total as f64 / calls as f64
            }
        };
        StatsView {
            calls,
            ok: get(&self.ok),
            errors: get(&self.errors),
            timeouts: get(&self.timeouts),
            traps: get(&self.traps),
            cancelled: get(&self.cancelled),
            rejected_busy: get(&self.rejected_busy),
            in_flight: get(&self.in_flight),
            mean_ms: per(get(&self.total_us)) / 1000.0,
            mean_instantiate_us: per(get(&self.instantiate_us_total)),
            fuel_total: get(&self.fuel_total),
            fuel_last: get(&self.fuel_last),
            memory_peak_bytes: get(&self.memory_peak),
        }
    }
}
