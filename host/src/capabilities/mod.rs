//! Capabilities the host offers on top of the runtime core: where state lives ([`storage`], and
//! what plugins may read of it: [`plugin_reads`]), the plugins it serves ([`registry`]), who may
//! do what ([`tokens`]), the tabular formats callers speak ([`formats`]), object events
//! ([`events`]) and the hooks they fire ([`hooks`]), and the Parquet datasets hooks write
//! ([`warehouse`]), models: training, registry and serving ([`models`]), declarative flows over
//! all of these ([`pipelines`]), what the host tells its users ([`notify`]: SSE, webhooks), and
//! the Prometheus series of it all ([`metrics`], with the memory breakdown of [`memory`]).

pub mod events;
pub mod formats;
pub mod hooks;
pub mod ipc_guard;
pub mod local_layout;
pub mod memory;
pub mod metrics;
pub mod models;
pub mod notify;
pub mod pipelines;
pub mod plugin_reads;
pub mod registry;
pub mod storage;
pub mod tokens;
pub mod warehouse;
