//! The runtime core: one engine, one linker, and the machinery to compile, prepare and call
//! plugins under limits. Nothing here knows about HTTP or storage; the centres build on
//! [`Runtime`] and the surface re-exported here, and the submodules stay private:
//!
//! - `engine`: the wasmtime `Engine` (pooling allocator, CoW images, epoch ticker, fuel metric);
//! - `limits`: per-plugin limits and the total-memory limiter;
//! - `component`: upload validation, world detection, `InstancePre` preparation;
//! - `invoke`: one call, from store creation to a classified result; `http`: one request to an
//!   HTTP function (`wasi:http/proxy`), streamed both ways;
//! - `state`: per-call store data and the host side of the plugin imports, with `inference`,
//!   `objects` and `outbound` enforcing the plugin's `grants` on model calls, store reads and
//!   outbound HTTP through the traits in `caps`.

mod bindings;
mod caps;
mod component;
mod dataset;
mod engine;
mod grants;
mod http;
mod inference;
mod invoke;
mod limits;
mod objects;
mod outbound;
mod progress;
mod state;

pub use bindings::inference::Tensor;
pub use bindings::types::{PluginError, Source};
pub use caps::{Capabilities, ModelRunner, ObjectReader, Read};
pub use component::{Prepared, ValidationError, World, check_header};
pub use dataset::DatasetReader;
pub use engine::{EngineOptions, HostEngine};
pub use grants::{Grants, valid_host_pattern, valid_storage_prefix};
pub use http::{Finish as HttpFinish, HttpTarget, handle as handle_http};
pub use invoke::{Call, CallStats, InvokeError, Outcome, Target, invoke};
pub use limits::{LimitOverrides, Limits};
pub use outbound::restricted;
pub use progress::Progress;
pub use state::KEPT_LOG_LINES;

/// The generated bindings and per-call state, for benchmarks that call a component straight
/// through wasmtime to measure the floor under the host's own call path.
#[doc(hidden)]
pub mod raw {
    pub use super::bindings::{cleaner::Cleaner, trainer::Trainer};
    pub use super::state::HostState;
}

use state::HostState;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker};

/// The engine and the linker every plugin is instantiated against.
pub struct Runtime {
    pub engine: HostEngine,
    linker: Linker<HostState>,
}

/// A compiled and prepared component.
pub struct Compiled {
    pub component: Component,
    pub prepared: Prepared,
    /// Time spent compiling (or loading from the compiled cache).
    pub load_time: Duration,
}

impl Runtime {
    pub fn new(opts: &EngineOptions) -> anyhow::Result<Self> {
        let engine = HostEngine::new(opts)?;
        // Outbound HTTPS (wasmtime-wasi-http's client) needs one process-wide rustls provider:
        // two are compiled in (ring from wasi-http, aws-lc-rs from reqwest), so name one.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let mut linker = Linker::new(&engine.engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        // Only the `wasi:http` interfaces: the WASI ones above already include what the proxy
        // world needs. Collectors and HTTP functions may import them (see `component`).
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        // The trainer world imports every aimass interface, so this links all of them.
        bindings::trainer::Trainer::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        Ok(Runtime { engine, linker })
    }

    pub fn engine(&self) -> &wasmtime::Engine {
        &self.engine.engine
    }

    /// Compile from component bytes (Cranelift). Blocking: call from `spawn_blocking`.
    pub fn compile(&self, bytes: &[u8]) -> Result<Compiled, ValidationError> {
        component::check_header(bytes)?;
        let t0 = Instant::now();
        let component = Component::new(self.engine(), bytes)
            .map_err(|e| ValidationError::Invalid(format!("{e:#}")))?;
        let load_time = t0.elapsed();
        let prepared = component::prepare(&self.linker, &component)?;
        Ok(Compiled {
            component,
            prepared,
            load_time,
        })
    }

    /// Load a previously serialized artifact (`Component::serialize`) made by an engine with the
    /// same compatibility hash.
    pub fn load_compiled(&self, artifact: &[u8]) -> anyhow::Result<Compiled> {
        let t0 = Instant::now();
        // SAFETY: artifacts are produced by `Component::serialize` of this host and stored under a
        // key that includes the engine's compatibility hash; wasmtime still checks the header.
        let component = unsafe { Component::deserialize(self.engine(), artifact) };
        self.prepare_loaded(component, t0)
    }

    /// Like [`Runtime::load_compiled`] from a local file, which wasmtime maps instead of copying:
    /// code pages come straight from the page cache and memory images are mapped from the file.
    pub fn load_compiled_file(&self, path: &std::path::Path) -> anyhow::Result<Compiled> {
        let t0 = Instant::now();
        // SAFETY: as for `load_compiled`; the file is written by this host (atomically renamed
        // into place) and never modified afterwards.
        let component = unsafe { Component::deserialize_file(self.engine(), path) };
        self.prepare_loaded(component, t0)
    }

    fn prepare_loaded(
        &self,
        component: wasmtime::Result<Component>,
        t0: Instant,
    ) -> anyhow::Result<Compiled> {
        let component = component.map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let load_time = t0.elapsed();
        let prepared = component::prepare(&self.linker, &component)?;
        Ok(Compiled {
            component,
            prepared,
            load_time,
        })
    }
}
