//! Calls through the registry: admission (the plugin's and the engine's slots, the governor),
//! the capabilities a call is handed, and the collector/cleaner/transform/trainer and HTTP call
//! paths.

use super::{Caller, LiveVersion, PluginEntry, Registry, governor};

use super::stats::InFlight;
use crate::runtime::Capabilities;
use crate::runtime::Prepared;
use crate::runtime::{Call, CallStats, InvokeError, Outcome, Target, invoke};
use crate::runtime::{HttpFinish, HttpTarget, handle_http};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// Why a call through the registry failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("no plugin named {0:?}")]
    NotFound(String),
    #[error("all {0} instance slots of this plugin are busy; retry shortly")]
    Busy(u32),
    #[error("all {0} instance slots of the host are busy; retry shortly")]
    HostBusy(u32),
    /// Rate limit or quota (429).
    #[error(transparent)]
    Limited(#[from] governor::Refusal),
    #[error(transparent)]
    Invoke(#[from] InvokeError),
}

impl Registry {
    /// Run a call on a given version of a plugin (the one the caller looked at), waiting at most
    /// `queue_timeout` in total for a plugin slot and an engine instance slot.
    pub async fn call_version(
        &self,
        entry: &PluginEntry,
        live: Arc<LiveVersion>,
        call: Call,
        config: Vec<(String, String)>,
    ) -> Result<Outcome, CallError> {
        let deadline = tokio::time::Instant::now() + self.opts.queue_timeout;
        self.call_inner(entry, live, call, config, Some(deadline), None)
            .await
    }

    /// Run a call for background work (hooks): wait for slots as long as it takes, so queued
    /// events respect the plugin's concurrency limit instead of failing with "busy", and
    /// optionally use another deadline than the plugin's.
    pub async fn call_queued(
        &self,
        entry: &PluginEntry,
        live: Arc<LiveVersion>,
        call: Call,
        config: Vec<(String, String)>,
        timeout_ms: Option<u64>,
    ) -> Result<Outcome, CallError> {
        self.call_inner(entry, live, call, config, None, timeout_ms)
            .await
    }

    /// Take a slot of the plugin and one of the engine's instance pool, waiting until `deadline`
    /// (or as long as it takes without one); past it the caller gets 503.
    async fn admit(
        &self,
        entry: &PluginEntry,
        live: &LiveVersion,
        deadline: Option<tokio::time::Instant>,
        caller: Caller,
    ) -> Result<Admission, CallError> {
        /// Wait for a permit until the deadline, or forever without one.
        async fn wait(
            sem: &Arc<Semaphore>,
            deadline: Option<tokio::time::Instant>,
        ) -> Option<tokio::sync::OwnedSemaphorePermit> {
            match deadline {
                Some(d) => tokio::time::timeout_at(d, sem.clone().acquire_owned())
                    .await
                    .ok()?
                    .ok(),
                None => sem.clone().acquire_owned().await.ok(),
            }
        }
        let (limits, governor, slots) = match caller {
            Caller::Token => (live.limits, &entry.governor, &entry.slots),
            Caller::Anonymous => (
                live.limits.anonymous(),
                &entry.public_governor,
                &entry.public_slots,
            ),
        };
        if let Err(refusal) = governor.admit(&limits.governance) {
            self.metrics.record_limited(&entry.name, refusal.outcome());
            return Err(refusal.into());
        }
        let busy = |e: CallError| {
            entry.stats.rejected_busy.fetch_add(1, Ordering::Relaxed);
            self.metrics.record_busy(&entry.name);
            e
        };
        let plugin_slot = wait(slots, deadline)
            .await
            .ok_or_else(|| busy(CallError::Busy(limits.call.max_concurrency)))?;
        let instance_slot = match &self.instances {
            Some((slots, n)) => Some(
                wait(slots, deadline)
                    .await
                    .ok_or_else(|| busy(CallError::HostBusy(*n)))?,
            ),
            None => None,
        };
        Ok(Admission {
            _plugin: plugin_slot,
            _instance: instance_slot,
        })
    }

    pub(super) fn capabilities(&self, live: &LiveVersion) -> Capabilities {
        Capabilities {
            models: self.models.clone(),
            objects: (!live.grants.storage.is_empty()).then(|| self.objects.clone()),
            grants: live.grants.clone(),
            env: live.env.clone(),
        }
    }

    pub(super) async fn call_inner(
        &self,
        entry: &PluginEntry,
        live: Arc<LiveVersion>,
        call: Call,
        config: Vec<(String, String)>,
        deadline: Option<tokio::time::Instant>,
        timeout_ms: Option<u64>,
    ) -> Result<Outcome, CallError> {
        let admission = self.admit(entry, &live, deadline, Caller::Token).await?;
        let in_flight = InFlight::start(&entry.stats);
        let mut limits = live.limits.call;
        if let Some(t) = timeout_ms {
            limits.timeout_ms = t;
        }
        let target = Target {
            name: &entry.name,
            version: live.version,
            prepared: &live.prepared,
            limits,
            caps: self.capabilities(&live),
        };
        let span = invocation_span(&entry.name, &live);
        let (result, stats) = tracing::Instrument::instrument(
            invoke(
                self.runtime.engine(),
                self.runtime.engine.consume_fuel,
                target,
                call,
                config,
            ),
            span.clone(),
        )
        .await;
        drop(admission);
        in_flight.finish(&stats, result.as_ref().map(|_| ()));
        self.metrics
            .record_call(&entry.name, &stats, result.as_ref().map(|_| ()));
        let _in = span.enter();
        match &result {
            Err(e) => tracing::warn!("call failed: {e}"),
            Ok(_) => tracing::debug!(
                ms = stats.total.as_secs_f64() * 1e3,
                fuel = stats.fuel,
                memory_peak = stats.memory_peak,
                "call finished"
            ),
        }
        Ok(result?)
    }

    /// Serve one HTTP request with an HTTP function (`World::Http`) version, after admission like
    /// any call. The response head comes back as soon as the guest sets it; the body streams
    /// while the guest runs, and the slots are held until it returns.
    pub async fn call_http<B>(
        &self,
        entry: &Arc<PluginEntry>,
        live: Arc<LiveVersion>,
        req: hyper::Request<B>,
        caller: Caller,
    ) -> Result<hyper::Response<HyperOutgoingBody>, CallError>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let Prepared::Http(pre) = &live.prepared else {
            return Err(InvokeError::WrongWorld(format!(
                "plugin {:?} is a {}, not an HTTP function",
                &*entry.name,
                live.prepared.world()
            ))
            .into());
        };
        let deadline = tokio::time::Instant::now() + self.opts.queue_timeout;
        let admission = self.admit(entry, &live, Some(deadline), caller).await?;
        let target = HttpTarget {
            name: entry.name.clone(),
            version: live.version,
            pre: pre.clone(),
            limits: live.limits.call,
            caps: self.capabilities(&live),
        };
        let mut call = HttpCall::start(entry.clone());
        let version = live.version;
        let metrics = self.metrics.clone();
        let finish: HttpFinish = Box::new(move |stats, result| {
            drop(admission);
            call.end(&stats, result);
            metrics.record_call(&call.entry.name, &stats, result);
            if let Err(e) = result {
                tracing::warn!(plugin = &*call.entry.name, version, "call failed: {e}");
            }
        });
        // No `invoke` span here: a request already gets its access-log line, and creating and
        // formatting a span per request cost HTTP functions 10–25% of their throughput.
        Ok(handle_http(
            self.runtime.engine(),
            self.runtime.engine.consume_fuel,
            target,
            req,
            finish,
        )
        .await?)
    }
}

/// The span of one data-plugin invocation: every log line of the call — the plugin's own, the
/// host's about it — carries the plugin, version, world and a call id (`--log-format json`
/// shows them as fields). Call ids are per process.
fn invocation_span(plugin: &str, live: &LiveVersion) -> tracing::Span {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    tracing::info_span!(
        "invoke",
        plugin,
        version = live.version,
        world = %live.prepared.world(),
        call = NEXT.fetch_add(1, Ordering::Relaxed),
    )
}

/// An HTTP function's call as its statistics see it: in flight from the request until its task
/// reports the end, which may be after the response head went out; counted as cancelled if the
/// task is dropped without reporting (a panic), so `in_flight` never leaks.
struct HttpCall {
    entry: Arc<PluginEntry>,
    ended: bool,
}

impl HttpCall {
    pub(super) fn start(entry: Arc<PluginEntry>) -> Self {
        entry.stats.begin();
        HttpCall {
            entry,
            ended: false,
        }
    }

    pub(super) fn end(&mut self, stats: &CallStats, result: Result<(), &InvokeError>) {
        self.ended = true;
        self.entry.stats.end(stats, result);
    }
}

impl Drop for HttpCall {
    fn drop(&mut self) {
        if !self.ended {
            self.entry.stats.abandon();
        }
    }
}

/// A call's place in its plugin's concurrency limit and in the engine's instance pool, released
/// when dropped.
struct Admission {
    _plugin: tokio::sync::OwnedSemaphorePermit,
    _instance: Option<tokio::sync::OwnedSemaphorePermit>,
}
