//! aimass: a WebAssembly plugin host for ML data pipelines.
//!
//! The crate is layered so the architecture shows in the tree; dependencies point down only:
//!
//! - [`api`] and [`cli`] — the HTTP API (axum) and the `aimass` command line, on top of:
//! - the centres of the platform, each with a small public surface:
//!   - [`plugins`] — the plugin registry: upload, compiled cache, admission, governance, calls;
//!   - [`ingest`] — data collection: object events, the poller, and the hooks they fire;
//!   - [`warehouse`] — Parquet datasets and their catalog;
//!   - [`models`] — training, evaluation, the versioned model registry and ONNX serving;
//!   - [`pipelines`] — declarative flows over all of these;
//!   - [`ops`] — Prometheus metrics, memory, notifications and alerts;
//! - [`platform`] — what every centre stands on: storage, tokens, names, formats, the clock;
//! - [`runtime`] — the core: engine, limits, instances, invocation. Knows nothing about HTTP or
//!   storage.
//!
//! [`config`] holds every knob; [`server`] assembles a host from it; [`bundled`] carries the
//! reference plugins inside the binary.

pub mod api;
pub mod bundled;
pub mod cli;
pub mod client;
pub mod config;
pub mod ingest;
pub mod models;
pub mod ops;
pub mod pipelines;
pub mod platform;
pub mod plugins;
pub mod runtime;
pub mod server;
pub mod warehouse;

#[cfg(test)]
mod layering;

/// Unit tests run on the binary's allocator (jemalloc, see `main.rs`), so what a test measures of
/// an in-memory index is what the host would hold.
#[cfg(test)]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Bytes live on this thread: allocated minus freed, by jemalloc's size classes. For tests that
/// bound what an in-memory index costs per entry (single-threaded, so nothing else counts).
#[cfg(test)]
pub(crate) fn thread_live_bytes() -> i64 {
    use tikv_jemalloc_ctl::thread::{allocatedp, deallocatedp};
    let a = allocatedp::read().expect("jemalloc stats").get();
    let d = deallocatedp::read().expect("jemalloc stats").get();
    a as i64 - d as i64
}
