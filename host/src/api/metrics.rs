//! `GET /metrics`: the Prometheus text exposition (format 0.0.4). Needs the `reader` role, so a
//! scrape config names a token (`authorization: {credentials: <token>}`).
//!
//! Recorded series come from the call paths; the gauges below are sampled here, at scrape time,
//! from state the host keeps anyway, so an idle host costs nothing between scrapes.

use super::AppState;
use super::auth::{Authed, READER};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

pub async fn scrape(_: Authed<READER>, State(state): State<AppState>) -> impl IntoResponse {
    let m = state.registry.metrics();
    let (in_use, capacity) = state.registry.pool_usage().unwrap_or((0, 0));
    m.pool_in_use.set(i64::from(in_use));
    m.pool_capacity.set(i64::from(capacity));
    m.sample_allocator();
    for g in [
        &m.memory_peak,
        &m.hook_pending,
        &m.hook_dead_letters,
        &m.hook_processed,
        &m.batch_requests,
        &m.batch_runs,
    ] {
        g.reset();
    }
    m.hook_lag_seconds.reset();
    let (pass, period) = state.hooks.poll_stats();
    m.poll_pass_seconds.set(pass.as_secs_f64());
    m.poll_period_seconds.set(period.as_secs_f64());
    for e in state.registry.list() {
        m.memory_peak
            .with_label_values(&[&*e.name])
            .set(e.stats.view().memory_peak_bytes as i64);
    }
    for record in state.hooks.list() {
        let Some(s) = state.hooks.status(&record.name) else {
            continue;
        };
        let hook = [record.name.as_str()];
        m.hook_pending
            .with_label_values(&hook)
            .set(s.pending as i64);
        m.hook_dead_letters
            .with_label_values(&hook)
            .set(s.dead_lettered as i64);
        m.hook_processed
            .with_label_values(&hook)
            .set(s.processed as i64);
        m.hook_lag_seconds
            .with_label_values(&hook)
            .set(s.lag_ms as f64 / 1e3);
    }
    let (loaded, bytes, loads, evictions) = state.models.plan_stats();
    for (kind, n) in [
        ("loaded", loaded as u64),
        ("onnx_bytes", bytes),
        ("loads", loads),
        ("evictions", evictions),
    ] {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        m.model_plans.with_label_values(&[kind]).set(n);
    }
    let (memory, stored) = state.pipelines.record_counts();
    for (place, n) in [("memory", memory), ("store_only", stored)] {
        (m.pipeline_run_records.with_label_values(&[place])).set(n as i64);
    }
    for (model, version, requests, batches) in state.models.all_batch_stats() {
        let labels = [model.as_str(), &version.to_string()];
        m.batch_requests
            .with_label_values(&labels)
            .set(requests as i64);
        m.batch_runs.with_label_values(&labels).set(batches as i64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.encode(),
    )
}
