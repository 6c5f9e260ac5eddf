//! Per-plugin call counters (since the host started), and the guard that keeps `in_flight` right
//! when a caller goes away mid-call. HTTP functions also count responses by status class and
//! time to the response head in a latency histogram.

use crate::runtime::{CallStats, InvokeError};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
    /// HTTP functions: responses by status class (1xx..5xx).
    status: [AtomicU64; 5],
    /// HTTP functions: requests by time to the response head, one counter per bucket of
    /// [`LATENCY_BUCKETS_MS`] plus one for slower requests.
    latency: [AtomicU64; LATENCY_BUCKETS_MS.len() + 1],
}

/// Upper bounds (ms) of the latency histogram's buckets.
pub const LATENCY_BUCKETS_MS: [f64; 12] = [
    0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 1000.0, 10000.0,
];

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
    /// HTTP functions only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpStatsView>,
}

/// Request counters of an HTTP function.
#[derive(Debug, Clone, Serialize)]
pub struct HttpStatsView {
    pub requests: u64,
    /// Responses by status class: `{"2xx": n, ...}` (classes never seen are left out).
    pub status: std::collections::BTreeMap<String, u64>,
    /// Time to the response head: `[upper bound in ms (null: above the last), count]` per bucket.
    pub latency_ms: Vec<(Option<f64>, u64)>,
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

    pub fn finish(mut self, stats: &CallStats, result: Result<(), &InvokeError>) {
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
    /// A call that is not tied to its caller (an HTTP function's task) starts.
    pub fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// The call started with [`Stats::begin`] ended.
    pub fn end(&self, stats: &CallStats, result: Result<(), &InvokeError>) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.record(stats, result);
    }

    /// The call started with [`Stats::begin`] was dropped without ending (its task panicked).
    pub fn abandon(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.cancelled.fetch_add(1, Ordering::Relaxed);
    }

    /// An HTTP function answered with `status` after `latency` (to the response head).
    pub fn record_response(&self, status: u16, latency: Duration) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.status[class].fetch_add(1, Ordering::Relaxed);
        let ms = latency.as_secs_f64() * 1e3;
        let bucket = LATENCY_BUCKETS_MS
            .iter()
            .position(|&b| ms <= b)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
    }

    fn http_view(&self) -> Option<HttpStatsView> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let requests: u64 = self.status.iter().map(get).sum();
        if requests == 0 {
            return None;
        }
        let status = self
            .status
            .iter()
            .enumerate()
            .filter(|(_, c)| get(c) > 0)
            .map(|(i, c)| (format!("{}xx", i + 1), get(c)))
            .collect();
        let latency_ms = self
            .latency
            .iter()
            .enumerate()
            .map(|(i, c)| (LATENCY_BUCKETS_MS.get(i).copied(), get(c)))
            .collect();
        Some(HttpStatsView {
            requests,
            status,
            latency_ms,
        })
    }

    fn record(&self, stats: &CallStats, result: Result<(), &InvokeError>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(_) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                let kind = match e {
                    InvokeError::Timeout { .. } => Some(&self.timeouts),
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
            http: self.http_view(),
        }
    }
}
