//! aimass: a WebAssembly plugin host for ML data pipelines.
//!
//! The crate is layered so the architecture shows in the tree:
//!
//! - [`runtime`] — the core: engine, store, limits, instance pre-cache, invocation. Knows nothing
//!   about HTTP or storage.
//! - [`capabilities`] — what the host offers on top: object storage, the plugin registry, tokens,
//!   data formats (later: events, the warehouse, models, HTTP functions).
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
