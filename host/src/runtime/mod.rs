//! The runtime core: one engine, one linker, and the machinery to compile, prepare and call
//! plugins under limits. Nothing here knows about HTTP or storage; capabilities and the API build
//! on [`Runtime`].
//!
//! - [`engine`]: the wasmtime `Engine` (pooling allocator, CoW images, epoch ticker, fuel metric).
//! - [`limits`]: per-plugin limits and the total-memory limiter.
//! - [`state`]: per-call store data and the host side of the plugin imports.
//! - [`component`]: upload validation, world detection, `InstancePre` preparation.
//! - [`invoke`]: one call, from store creation to a classified result.
//! - [`http`]: one request to an HTTP function (`wasi:http/proxy`), streamed both ways.
//! - [`grants`], [`outbound`], [`inference`], [`objects`]: what a plugin may reach, and the hooks
//!   that enforce it on outbound HTTP, model calls and store reads.

pub mod bindings;
pub mod component;
pub mod engine;
pub mod grants;
pub mod http;
pub mod inference;
pub mod invoke;
pub mod limits;
pub mod objects;
pub mod outbound;
pub mod state;

use component::{Prepared, ValidationError};
use engine::{EngineOptions, HostEngine};
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
