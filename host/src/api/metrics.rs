//! `GET /metrics`: the Prometheus text exposition (format 0.0.4). Needs the `reader` role, so a
//! scrape config names a token (`authorization: {credentials: <token>}`).
//!
//! Recorded series come from the call paths; the gauges below are sampled here, at scrape time,
//! from state the host keeps anyway, so an idle host costs nothing between scrapes.

use super::AppState;
use super::auth::{Authed, READER};
use crate::ops::prometheus::{HostGauges, IngestGauges};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

pub async fn scrape(_: Authed<READER>, State(state): State<AppState>) -> impl IntoResponse {
    let m = state.registry.metrics();
    m.sample_allocator();
    sample_plugins(&state, &m.host);
    sample_ingest(&state, &m.ingest);
    sample_models_and_pipelines(&state, &m.host);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.encode(),
    )
}

fn sample_plugins(state: &AppState, g: &HostGauges) {
    let (in_use, capacity) = state.registry.pool_usage().unwrap_or((0, 0));
    g.pool_in_use.set(i64::from(in_use));
    g.pool_capacity.set(i64::from(capacity));
    g.memory_peak.reset();
    for e in state.registry.list() {
        g.memory_peak
            .with_label_values(&[&*e.name])
            .set(e.stats.view().memory_peak_bytes as i64);
    }
}

fn sample_ingest(state: &AppState, g: &IngestGauges) {
    for v in [&g.hook_pending, &g.hook_dead_letters, &g.hook_processed] {
        v.reset();
    }
    g.hook_lag_seconds.reset();
    let (pass, period) = state.hooks.poll_stats();
    g.poll_pass_seconds.set(pass.as_secs_f64());
    g.poll_period_seconds.set(period.as_secs_f64());
    for record in state.hooks.list() {
        let Some(s) = state.hooks.status(&record.name) else {
            continue;
        };
        let hook = [record.name.as_str()];
        g.hook_pending
            .with_label_values(&hook)
            .set(s.pending as i64);
        g.hook_dead_letters
            .with_label_values(&hook)
            .set(s.dead_lettered as i64);
        g.hook_processed
            .with_label_values(&hook)
            .set(s.processed as i64);
        g.hook_lag_seconds
            .with_label_values(&hook)
            .set(s.lag_ms as f64 / 1e3);
    }
}

fn sample_models_and_pipelines(state: &AppState, g: &HostGauges) {
    let (loaded, bytes, loads, evictions) = state.models.plan_stats();
    for (kind, n) in [
        ("loaded", loaded as u64),
        ("onnx_bytes", bytes),
        ("loads", loads),
        ("evictions", evictions),
    ] {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        g.model_plans.with_label_values(&[kind]).set(n);
    }
    let (memory, stored) = state.pipelines.record_counts();
    for (place, n) in [("memory", memory), ("store_only", stored)] {
        g.pipeline_run_records
            .with_label_values(&[place])
            .set(n as i64);
    }
    g.batch_requests.reset();
    g.batch_runs.reset();
    for (model, version, requests, batches) in state.models.all_batch_stats() {
        let labels = [model.as_str(), &version.to_string()];
        g.batch_requests
            .with_label_values(&labels)
            .set(requests as i64);
        g.batch_runs.with_label_values(&labels).set(batches as i64);
    }
}
