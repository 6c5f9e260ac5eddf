//! What a plugin's `Store` holds for one invocation, and the host side of the `aimass:plugin`
//! imports (logging, progress, dataset reader).
//!
//! A fresh `HostState` is made per call: the WASI context grants nothing but the environment set
//! at upload (no preopens, no args, no sockets; stdout is discarded and stderr is captured into a
//! small buffer so a guest panic message can be shown in the error), outbound HTTP goes through
//! the plugin's [`OutboundPolicy`], and the limiter starts from zero.

use super::bindings::{dataset, logging, progress, types};
use super::caps::Capabilities;
use super::dataset::DatasetReader;
use super::limits::{Limits, MemoryLimiter};
use super::outbound::OutboundPolicy;
use super::progress::Progress;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Log lines of one call kept for the caller (pipeline run records show them per step).
pub const KEPT_LOG_LINES: usize = 200;

/// At most this many log records per call reach the host log; the rest are counted and dropped.
const MAX_LOG_RECORDS: u32 = 1000;
/// Longest log message kept, in bytes.
const MAX_LOG_MESSAGE: usize = 4096;
/// Structured fields kept per record (each key cut at 64 bytes, each value at 256).
const MAX_LOG_FIELDS: usize = 32;

/// `s` cut to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
/// Bytes of guest stderr kept: the tail, where a panic message ends up.
const STDERR_CAPTURE: usize = 8192;

/// Guest stderr: accepts every write (a chatty plugin never fails on a full pipe) and keeps only
/// the last [`STDERR_CAPTURE`] bytes.
#[derive(Clone, Default)]
struct StderrTail(Arc<Mutex<Vec<u8>>>);

impl StderrTail {
    fn contents(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn append(&self, buf: &[u8]) {
        let mut tail = self.0.lock().unwrap_or_else(|e| e.into_inner());
        tail.extend_from_slice(buf);
        if tail.len() > STDERR_CAPTURE {
            let excess = tail.len() - STDERR_CAPTURE;
            tail.drain(..excess);
        }
    }
}

/// The WASIp2 stream the guest writes to: synchronous, so a write never waits for a task.
#[wasmtime_wasi::async_trait]
impl Pollable for StderrTail {
    async fn ready(&mut self) {}
}

impl OutputStream for StderrTail {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(1 << 20)
    }
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for StderrTail {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Store data for one invocation.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: MemoryLimiter,
    /// Wall-clock deadline; checked on every epoch tick.
    pub deadline: Instant,
    /// Set by the epoch callback when the deadline fired, so the resulting trap is reported as a
    /// timeout.
    pub deadline_hit: bool,
    pub plugin: Arc<str>,
    pub version: u32,
    logs_emitted: u32,
    pub logs_dropped: u32,
    /// The first log lines of the call, for the caller.
    pub logs: Vec<String>,
    pub progress: Arc<Mutex<Progress>>,
    /// Models, store, grants and environment of the plugin.
    pub caps: Capabilities,
    /// Largest object the `storage` import hands the guest (the plugin's output limit).
    pub max_read_bytes: u64,
    stderr: StderrTail,
    /// `wasi:http` state: field limits for headers, and the outbound policy as its hooks.
    http: WasiHttpCtx,
    pub outbound: OutboundPolicy,
}

impl HostState {
    /// State for one call of `plugin` under `limits`, ending at `deadline`. The WASI context sees
    /// the plugin's environment (set at upload) and nothing else of the host.
    pub fn new(
        plugin: Arc<str>,
        version: u32,
        limits: &Limits,
        deadline: Instant,
        caps: Capabilities,
    ) -> Self {
        let stderr = StderrTail::default();
        let mut wasi = WasiCtxBuilder::new();
        wasi.stderr(stderr.clone());
        if !caps.env.is_empty() {
            wasi.envs(&caps.env);
        }
        let outbound = OutboundPolicy::new(
            plugin.clone(),
            caps.grants.clone(),
            limits.max_outbound_requests,
            limits.max_outbound_response_bytes,
        );
        HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits.memory_bytes),
            deadline,
            deadline_hit: false,
            plugin,
            version,
            logs_emitted: 0,
            logs_dropped: 0,
            logs: Vec::new(),
            progress: Arc::new(Mutex::new(Progress::default())),
            caps,
            max_read_bytes: limits.max_output_bytes,
            stderr,
            http: WasiHttpCtx::new(),
            outbound,
        }
    }

    /// What the guest last said on stderr: the message of a Rust panic (`panicked at ...` and the
    /// lines after it, up to the backtrace note), or else the last non-empty line.
    pub fn stderr_tail(&self) -> Option<String> {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let summary = match text.rfind("panicked at") {
            Some(i) => text[i..]
                .lines()
                .take_while(|l| !l.starts_with("note:"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
            None => text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())?
                .trim()
                .to_string(),
        };
        Some(summary.chars().take(500).collect())
    }

    pub fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

impl types::Host for HostState {}

impl logging::Host for HostState {
    fn log(&mut self, level: logging::Level, message: String, fields: Vec<(String, String)>) {
        if self.logs_emitted >= MAX_LOG_RECORDS {
            self.logs_dropped += 1;
            return;
        }
        self.logs_emitted += 1;
        let message = truncate(&message, MAX_LOG_MESSAGE);
        let fields = fields
            .iter()
            .take(MAX_LOG_FIELDS)
            .map(|(k, v)| format!("{}={}", truncate(k, 64), truncate(v, 256)))
            .collect::<Vec<_>>()
            .join(" ");
        if self.logs.len() < KEPT_LOG_LINES {
            let sep = if fields.is_empty() { "" } else { " " };
            let lvl = match level {
                logging::Level::Trace => "trace",
                logging::Level::Debug => "debug",
                logging::Level::Info => "info",
                logging::Level::Warn => "warn",
                logging::Level::Error => "error",
            };
            self.logs.push(format!("{lvl}: {message}{sep}{fields}"));
        }
        let plugin = &*self.plugin;
        let version = self.version;
        match level {
            logging::Level::Trace => {
                tracing::trace!(target: "plugin", plugin, version, fields, "{message}")
            }
            logging::Level::Debug => {
                tracing::debug!(target: "plugin", plugin, version, fields, "{message}")
            }
            logging::Level::Info => {
                tracing::info!(target: "plugin", plugin, version, fields, "{message}")
            }
            logging::Level::Warn => {
                tracing::warn!(target: "plugin", plugin, version, fields, "{message}")
            }
            logging::Level::Error => {
                tracing::error!(target: "plugin", plugin, version, fields, "{message}")
            }
        }
    }
}

impl progress::Host for HostState {
    fn report(&mut self, done: u64, total: u64, message: String) {
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        p.done = done;
        p.total = total;
        p.message = message.chars().take(200).collect();
    }
}

impl dataset::Host for HostState {}

impl dataset::HostReader for HostState {
    fn schema(&mut self, r: Resource<DatasetReader>) -> wasmtime::Result<Vec<u8>> {
        Ok(self.table.get(&r)?.schema.clone())
    }

    fn row_count(&mut self, r: Resource<DatasetReader>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&r)?.rows)
    }

    fn next_batch(&mut self, r: Resource<DatasetReader>) -> wasmtime::Result<Option<Vec<u8>>> {
        let reader = self.table.get_mut(&r)?;
        let batch = reader.batches.get(reader.cursor).cloned();
        if batch.is_some() {
            reader.cursor += 1;
        }
        Ok(batch)
    }

    fn rewind(&mut self, r: Resource<DatasetReader>) -> wasmtime::Result<()> {
        self.table.get_mut(&r)?.cursor = 0;
        Ok(())
    }

    fn drop(&mut self, r: Resource<DatasetReader>) -> wasmtime::Result<()> {
        self.table.delete(r)?;
        Ok(())
    }
}
