//! aimass: a WebAssembly plugin host for ML data pipelines.
//!
//! The crate is layered so the architecture shows in the tree:
//!
//! - [`runtime`] — the core: engine, store, limits, instance pre-cache, invocation. Knows nothing
//!   about HTTP or storage.
//! - [`capabilities`] — what the host offers on top: object storage, the plugin registry, tokens,
//!   data formats, object events and hooks, the warehouse, models, pipelines, notifications.
//! - [`api`] — the axum HTTP API over the capabilities.
//! - [`cli`] — the `aimass` command line: `up` serves, the rest talks to a running host.
//!
//! [`config`] holds every knob; [`server`] assembles a host from it; [`bundled`] carries the
//! reference plugins inside the binary.

pub mod api;
pub mod bundled;
pub mod capabilities;
pub mod cli;
pub mod config;
pub mod runtime;
pub mod server;

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
