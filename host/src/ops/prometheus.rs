//! Prometheus metrics for `GET /metrics`, in the text exposition format.
//!
//! Two kinds of series:
//! - **recorded** as things happen (counters and histograms on the call paths): plugin calls by
//!   outcome, call and instantiate latency, fuel, traps by kind, HTTP-function
//!   responses by status class, OIP inference latency;
//! - **sampled** at scrape time from state the host already keeps (gauges): memory high-water
//!   per plugin, instance-pool occupancy, hook backlog, lag and dead letters, the poller's pass
//!   time and period, dynamic-batching counters, the allocator's bytes by kind, and the standard
//!   `process_*` series (RSS, CPU, threads, fds). Each scrape resets the labelled ones first, so
//!   deleted plugins, hooks and queues disappear.
//!
//! Label values are plugin, hook and model names, which the registries bound to 64 characters of
//! a small alphabet, so cardinality grows with what an admin registers, never with requests.

use crate::runtime::{CallStats, InvokeError};
use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Latency buckets in seconds: 50 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

/// Kinds of `aimass_security_events_total`.
pub const SECURITY_EVENTS: &[&str] = &["artifact_rejected", "component_rejected"];

/// Every series the host exports.
pub struct Metrics {
    registry: Registry,
    calls: CallSeries,
    served: ServedSeries,
    /// Gauges sampled at scrape time from the plugin registry, models and pipelines.
    pub host: HostGauges,
    /// Gauges sampled at scrape time from the hooks and the poller.
    pub ingest: IngestGauges,
}

/// Recorded on plugin call paths.
struct CallSeries {
    calls: IntCounterVec,
    call_seconds: HistogramVec,
    instantiate_seconds: HistogramVec,
    fuel: IntCounterVec,
    traps: IntCounterVec,
    http_responses: IntCounterVec,
    security: IntCounterVec,
}

/// Recorded as inference requests and pipeline runs end.
struct ServedSeries {
    inference_seconds: HistogramVec,
    inference_requests: IntCounterVec,
    pipeline_runs: IntCounterVec,
    pipeline_seconds: HistogramVec,
}

pub struct HostGauges {
    pub memory_peak: IntGaugeVec,
    pub pool_in_use: IntGauge,
    pub pool_capacity: IntGauge,
    pub batch_requests: IntGaugeVec,
    pub batch_runs: IntGaugeVec,
    /// The model-plan cache: versions loaded, their ONNX bytes, loads and evictions so far.
    pub model_plans: IntGaugeVec,
    /// The allocator's view of the heap (see [`super::memory`]).
    pub allocator_bytes: IntGaugeVec,
    /// Pipeline run records held in memory, and those only in the store.
    pub pipeline_run_records: IntGaugeVec,
}

pub struct IngestGauges {
    pub hook_pending: IntGaugeVec,
    pub hook_lag_seconds: GaugeVec,
    pub poll_pass_seconds: Gauge,
    pub poll_period_seconds: Gauge,
    pub hook_dead_letters: IntGaugeVec,
    pub hook_processed: IntGaugeVec,
}

fn register<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        r,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn int_gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    register(r, IntGauge::new(name, help).expect("valid metric"))
}

fn float_gauge(r: &Registry, name: &str, help: &str) -> Gauge {
    register(r, Gauge::new(name, help).expect("valid metric"))
}

fn histogram_with(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    register(r, HistogramVec::new(opts, labels).expect("valid metric"))
}

fn histogram(r: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    histogram_with(r, name, help, labels, LATENCY_BUCKETS)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl CallSeries {
    fn register(r: &Registry) -> CallSeries {
        let security = counter(
            r,
            "aimass_security_events_total",
            "Defences that fired, by kind (artifact_rejected: a compiled artifact from the \
             store failed its seal and was recompiled; component_rejected: stored component \
             bytes did not match their digest)",
            &["kind"],
        );
        // Every kind is exported from the start (at 0), so a scrape can tell "none" from "absent".
        for kind in SECURITY_EVENTS {
            security.with_label_values(&[kind]);
        }
        let plugin = &["plugin"];
        CallSeries {
            calls: counter(
                r,
                "aimass_plugin_calls_total",
                "Plugin calls by outcome (ok, timeout, trap, memory_limit, plugin_error, invalid_input, output_too_large, busy, rate_limited, quota_exceeded, host_error)",
                &["plugin", "outcome"],
            ),
            call_seconds: histogram(
                r,
                "aimass_plugin_call_duration_seconds",
                "Duration of plugin calls, instantiation included",
                plugin,
            ),
            instantiate_seconds: histogram(
                r,
                "aimass_plugin_instantiate_seconds",
                "Time to instantiate a plugin for a call",
                plugin,
            ),
            fuel: counter(
                r,
                "aimass_plugin_fuel_consumed_total",
                "Fuel (wasm instructions, roughly) consumed by a plugin's calls",
                plugin,
            ),
            traps: counter(
                r,
                "aimass_plugin_traps_total",
                "Calls stopped by a trap, by kind (stack_overflow, unreachable, memory_limit, timeout, other)",
                &["plugin", "kind"],
            ),
            http_responses: counter(
                r,
                "aimass_http_function_responses_total",
                "Responses of HTTP functions by status class",
                &["function", "class"],
            ),
            security,
        }
    }
}

impl ServedSeries {
    fn register(r: &Registry) -> ServedSeries {
        ServedSeries {
            inference_seconds: histogram(
                r,
                "aimass_inference_duration_seconds",
                "OIP inference requests, parse to response",
                &["model"],
            ),
            inference_requests: counter(
                r,
                "aimass_inference_requests_total",
                "OIP inference requests by result (ok, error)",
                &["model", "result"],
            ),
            pipeline_runs: counter(
                r,
                "aimass_pipeline_runs_total",
                "Pipeline runs ended, by outcome (succeeded, failed, cancelled)",
                &["pipeline", "outcome"],
            ),
            pipeline_seconds: histogram_with(
                r,
                "aimass_pipeline_run_duration_seconds",
                "Duration of pipeline runs, start to end, by outcome",
                &["pipeline", "outcome"],
                &[
                    0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
                ],
            ),
        }
    }
}

impl HostGauges {
    fn register(r: &Registry) -> HostGauges {
        let version = &["model", "version"];
        HostGauges {
            memory_peak: gauge(
                r,
                "aimass_plugin_memory_peak_bytes",
                "Highest total linear memory of any call of a plugin",
                &["plugin"],
            ),
            pool_in_use: int_gauge(
                r,
                "aimass_instance_pool_in_use",
                "Instance-pool slots held by running calls",
            ),
            pool_capacity: int_gauge(
                r,
                "aimass_instance_pool_capacity",
                "Instance-pool slots (0 without the pooling allocator)",
            ),
            batch_requests: gauge(
                r,
                "aimass_inference_batched_requests",
                "Requests served through a model version's dynamic batcher",
                version,
            ),
            batch_runs: gauge(
                r,
                "aimass_inference_batches",
                "Model runs of a dynamic batcher (requests / batches = mean batch size)",
                version,
            ),
            model_plans: gauge(
                r,
                "aimass_model_plan_cache",
                "Loaded tract plans of model versions, by kind: loaded (versions in memory), \
                 onnx_bytes (their ONNX size), loads and evictions (since start; least recently \
                 used versions leave past the cache's count or size bound)",
                &["kind"],
            ),
            allocator_bytes: gauge(
                r,
                "aimass_allocator_bytes",
                "Heap bytes by the allocator's account: allocated (live), active (pages of live \
                 allocations), resident (in RAM, freed but not yet returned included), retained \
                 (mapped for reuse, not in RAM)",
                &["kind"],
            ),
            pipeline_run_records: gauge(
                r,
                "aimass_pipeline_run_records",
                "Pipeline run records by place: memory (unfinished runs and the last finished \
                 ones per pipeline) or store_only (older finished runs, read when asked for)",
                &["place"],
            ),
        }
    }
}

impl IngestGauges {
    fn register(r: &Registry) -> IngestGauges {
        let hook = &["hook"];
        IngestGauges {
            hook_pending: gauge(
                r,
                "aimass_hook_pending_events",
                "Events of a hook accepted and not yet finished",
                hook,
            ),
            hook_lag_seconds: register(
                r,
                GaugeVec::new(
                    Opts::new(
                        "aimass_hook_lag_seconds",
                        "Age of the oldest pending event of a hook",
                    ),
                    hook,
                )
                .expect("valid metric"),
            ),
            poll_pass_seconds: float_gauge(
                r,
                "aimass_poll_pass_seconds",
                "Duration of the poller's last pass over the watched prefixes",
            ),
            poll_period_seconds: float_gauge(
                r,
                "aimass_poll_period_seconds",
                "Time from the start of the poller's last pass to the next (longer than the interval \
                 when passes are expensive)",
            ),
            hook_dead_letters: gauge(
                r,
                "aimass_hook_dead_letters",
                "Events of a hook in its dead-letter store",
                hook,
            ),
            hook_processed: gauge(
                r,
                "aimass_hook_processed_events",
                "Events a hook processed since the host started",
                hook,
            ),
        }
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        // The standard process series (RSS, CPU, threads, open fds), as every Prometheus client
        // library exports them.
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("unique metric");
        Metrics {
            calls: CallSeries::register(&r),
            served: ServedSeries::register(&r),
            host: HostGauges::register(&r),
            ingest: IngestGauges::register(&r),
            registry: r,
        }
    }

    /// Samples the allocator's statistics into `aimass_allocator_bytes`, if the binary installed
    /// a reader.
    pub fn sample_allocator(&self) {
        if let Some(stats) = super::memory::allocator_stats() {
            for (kind, bytes) in stats.kinds() {
                let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
                self.host
                    .allocator_bytes
                    .with_label_values(&[kind])
                    .set(bytes);
            }
        }
    }

    /// A finished plugin call (any world).
    pub fn record_call(&self, plugin: &str, stats: &CallStats, result: Result<(), &InvokeError>) {
        let outcome = match result {
            Ok(()) => "ok",
            Err(e) => {
                if let Some(kind) = trap_kind(e) {
                    self.calls.traps.with_label_values(&[plugin, kind]).inc();
                }
                outcome(e)
            }
        };
        self.calls.calls.with_label_values(&[plugin, outcome]).inc();
        self.calls
            .call_seconds
            .with_label_values(&[plugin])
            .observe(stats.total.as_secs_f64());
        if !stats.instantiate.is_zero() {
            self.calls
                .instantiate_seconds
                .with_label_values(&[plugin])
                .observe(stats.instantiate.as_secs_f64());
        }
        if stats.fuel > 0 {
            self.calls
                .fuel
                .with_label_values(&[plugin])
                .inc_by(stats.fuel);
        }
    }

    /// A defence fired (see `aimass_security_events_total` for the kinds).
    pub fn record_security(&self, kind: &str) {
        self.calls.security.with_label_values(&[kind]).inc();
    }

    /// A pipeline run ended.
    pub fn record_pipeline_run(&self, pipeline: &str, outcome: &str, seconds: f64) {
        self.served
            .pipeline_runs
            .with_label_values(&[pipeline, outcome])
            .inc();
        self.served
            .pipeline_seconds
            .with_label_values(&[pipeline, outcome])
            .observe(seconds);
    }

    /// A call refused by its plugin's rate limit or quota (429); `outcome` names which
    /// (`rate_limited`, `quota_exceeded`).
    pub fn record_limited(&self, plugin: &str, outcome: &str) {
        self.calls.calls.with_label_values(&[plugin, outcome]).inc();
    }

    /// A call refused for want of a slot (503).
    pub fn record_busy(&self, plugin: &str) {
        self.calls.calls.with_label_values(&[plugin, "busy"]).inc();
    }

    /// An HTTP function answered with `status`.
    pub fn record_http(&self, function: &str, status: u16) {
        let class = match status / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        };
        self.calls
            .http_responses
            .with_label_values(&[function, class])
            .inc();
    }

    /// An OIP inference request on `model` took `seconds`.
    pub fn record_inference(&self, model: &str, seconds: f64, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.served
            .inference_requests
            .with_label_values(&[model, result])
            .inc();
        if ok {
            self.served
                .inference_seconds
                .with_label_values(&[model])
                .observe(seconds);
        }
    }

    /// The text exposition of every series.
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding of gathered metrics");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

fn outcome(e: &InvokeError) -> &'static str {
    match e {
        InvokeError::Timeout { .. } => "timeout",
        InvokeError::MemoryLimit { .. } => "memory_limit",
        InvokeError::Trap(_) => "trap",
        InvokeError::OutputTooLarge { .. } => "output_too_large",
        InvokeError::InvalidInput(_) | InvokeError::InvalidConfig(_) => "invalid_input",
        InvokeError::Plugin(_) => "plugin_error",
        InvokeError::PoolExhausted => "busy",
        InvokeError::WrongWorld(_) | InvokeError::Host(_) => "host_error",
    }
}

fn trap_kind(e: &InvokeError) -> Option<&'static str> {
    Some(match e {
        InvokeError::Timeout { .. } => "timeout",
        InvokeError::MemoryLimit { .. } => "memory_limit",
        InvokeError::Trap(m) if m.starts_with("stack overflow") => "stack_overflow",
        InvokeError::Trap(m) if m.starts_with("unreachable") => "unreachable",
        InvokeError::Trap(_) => "other",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn calls_are_counted_by_outcome_and_trap_kind() {
        let m = Metrics::new();
        let stats = CallStats {
            instantiate: Duration::from_micros(20),
            total: Duration::from_micros(300),
            fuel: 1000,
            memory_peak: 1 << 20,
        };
        m.record_call("p", &stats, Ok(()));
        m.record_call(
            "p",
            &stats,
            Err(&InvokeError::Trap("stack overflow".into())),
        );
        m.record_busy("p");
        let text = m.encode();
        assert!(text.contains(r#"aimass_plugin_calls_total{outcome="ok",plugin="p"} 1"#));
        assert!(text.contains(r#"aimass_plugin_calls_total{outcome="trap",plugin="p"} 1"#));
        assert!(text.contains(r#"aimass_plugin_calls_total{outcome="busy",plugin="p"} 1"#));
        assert!(text.contains(r#"aimass_plugin_traps_total{kind="stack_overflow",plugin="p"} 1"#));
        assert!(text.contains(r#"aimass_plugin_fuel_consumed_total{plugin="p"} 2000"#));
        assert!(text.contains(r#"aimass_plugin_call_duration_seconds_count{plugin="p"} 2"#));
    }
}
