//! Running one call of a prepared plugin: new store, instantiate from the `InstancePre`, call,
//! and turn whatever went wrong into an [`InvokeError`] the API can map to a status code.

use super::bindings::types::{PluginError, Source};
use super::component::Prepared;
use super::dataset::DatasetReader;
use super::engine::EPOCH_TICK;
use super::limits::Limits;
use super::progress::Progress;
use super::state::{HostState, truncate};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

/// What to ask of the plugin.
pub enum Call {
    /// Collector: raw bytes → Arrow.
    Collect(Source),
    /// Cleaner: Arrow → Arrow.
    Clean(Vec<u8>),
    /// Transform: fit on the data, then apply to the same data.
    FitApply(Vec<u8>),
    /// Transform: fit only; the output is the fitted state.
    Fit(Vec<u8>),
    /// Transform: apply a fitted state.
    Apply { input: Vec<u8>, state: Vec<u8> },
    /// Trainer: train over a dataset; the output is the ONNX model.
    Train(DatasetReader),
}

/// The result of a successful call and what it cost.
#[derive(Debug)]
pub struct Outcome {
    /// Arrow IPC stream (or fitted state for `Fit`, ONNX for `Train`).
    pub output: Vec<u8>,
    /// Fitted state, for `FitApply`.
    pub state: Option<Vec<u8>>,
    /// Trainer metadata, for `Train`.
    pub metadata: Vec<(String, String)>,
    /// The plugin's last progress report.
    pub progress: Progress,
    /// What the plugin logged through `aimass:plugin/logging`, formatted (first
    /// [`KEPT_LOG_LINES`](super::KEPT_LOG_LINES) lines; all of them also went to the host's log).
    pub logs: Vec<String>,
    pub stats: CallStats,
}

/// Measurements of one call, successful or not.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallStats {
    pub instantiate: Duration,
    pub total: Duration,
    pub fuel: u64,
    pub memory_peak: u64,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// `elapsed_ms` is when the host actually stopped the call (start to interrupt), so callers
    /// and tests can see how closely the deadline was kept.
    #[error("plugin exceeded its deadline of {limit_ms} ms (stopped after {elapsed_ms} ms)")]
    Timeout { limit_ms: u64, elapsed_ms: u64 },
    #[error("plugin exceeded its memory limit of {limit} bytes")]
    MemoryLimit { limit: u64 },
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// `size` is unknown when the copy out of the guest was refused part-way (see
    /// `hostcall_fuel`).
    #[error(
        "plugin output{} exceeds the limit of {limit} bytes",
        size.map(|s| format!(" of {s} bytes")).unwrap_or_default()
    )]
    OutputTooLarge { size: Option<u64>, limit: u64 },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    #[error("plugin failed: {0}")]
    Plugin(String),
    #[error("no free instance slot in the pool")]
    PoolExhausted,
    #[error("this call does not fit the plugin's world: {0}")]
    WrongWorld(String),
    #[error("host error: {0}")]
    Host(String),
}

/// Longest plugin error message passed on to callers and logs.
const MAX_ERROR_MESSAGE: usize = 4096;

impl From<PluginError> for InvokeError {
    fn from(e: PluginError) -> Self {
        let cut = |m: String| truncate(&m, MAX_ERROR_MESSAGE).to_string();
        match e {
            PluginError::InvalidInput(m) => InvokeError::InvalidInput(cut(m)),
            PluginError::InvalidConfig(m) => InvokeError::InvalidConfig(cut(m)),
            PluginError::Internal(m) => InvokeError::Plugin(cut(m)),
        }
    }
}

/// Identity of the plugin version being called, for logs.
pub struct Target<'a> {
    pub name: &'a Arc<str>,
    pub version: u32,
    pub prepared: &'a Prepared,
    pub limits: Limits,
    /// Served models and the plugin's grants (`Default`: none).
    pub caps: super::caps::Capabilities,
}

/// Plugin configuration as the bindings take it.
type Config = Vec<(String, String)>;

type Res<T> = wasmtime::Result<Result<T, PluginError>>;

/// Instantiate and call. Never panics on guest misbehaviour; every failure is an `InvokeError`.
pub async fn invoke(
    engine: &Engine,
    consume_fuel: bool,
    target: Target<'_>,
    call: Call,
    config: Vec<(String, String)>,
) -> (Result<Outcome, InvokeError>, CallStats) {
    let start = Instant::now();
    let limits = target.limits;
    let state = HostState::new(
        target.name.clone(),
        target.version,
        &limits,
        start + limits.timeout(),
        target.caps.clone(),
    );
    let mut store = new_store(engine, consume_fuel, state);
    store.set_hostcall_fuel(hostcall_fuel(&limits));

    let mut stats = CallStats::default();
    let run = run(&mut store, target.prepared, call, &config, &mut stats);
    let result = match tokio::time::timeout(timer_budget(&limits), run).await {
        Ok(result) => result,
        Err(_) => Err(timer_expired(&mut store)),
    };
    measure(&store, &mut stats, start, consume_fuel);

    let result = match result {
        Ok(Ok(outcome)) => {
            let size = outcome.output.len() as u64;
            if size > limits.max_output_bytes {
                Err(InvokeError::OutputTooLarge {
                    size: Some(size),
                    limit: limits.max_output_bytes,
                })
            } else {
                let progress = store
                    .data()
                    .progress
                    .lock()
                    .map(|p| p.clone())
                    .unwrap_or_default();
                Ok(Outcome {
                    stats,
                    progress,
                    logs: std::mem::take(&mut store.data_mut().logs),
                    ..outcome
                })
            }
        }
        Ok(Err(plugin_error)) => Err(plugin_error.into()),
        Err(e) => Err(classify(e, store.data(), limits, stats.total)),
    };
    (result, stats)
}

/// Slack over the output limit for everything else a result carries (metadata, error text).
const RESULT_OVERHEAD: u64 = 1 << 20;

/// The most bytes one guest-to-host call may copy out of the guest: the plugin's output limit
/// plus a little. wasmtime's default (128 MiB) would refuse legitimate outputs under a larger
/// limit, and let a plugin with a small limit make the host copy 128 MiB before the size check
/// refuses it; tied to the limit, an oversized result is refused during the copy instead.
pub(super) fn hostcall_fuel(limits: &Limits) -> usize {
    usize::try_from(limits.max_output_bytes.saturating_add(RESULT_OVERHEAD)).unwrap_or(usize::MAX)
}

/// The message of wasmtime's error when a copy out of the guest runs past [`hostcall_fuel`].
/// Matched as text: wasmtime has no error type for it (the containment tests fail if it
/// changes).
const HOSTCALL_FUEL_EXHAUSTED: &str =
    "too much data is being copied between the host and the guest";

/// How long a call may take by the timer. Epochs only interrupt wasm code; a guest blocked in an
/// async host call (a WASI sleep or poll, a slow HTTP body) is stopped by this timer instead, one
/// epoch tick after the deadline: the latest the epoch check stops wasm code, so both paths end a
/// call within timeout + 10 ms (plus scheduling).
pub(super) fn timer_budget(limits: &Limits) -> Duration {
    limits.timeout() + EPOCH_TICK
}

/// The error of a call whose timer ran out; marks the store so [`classify`] reports a timeout.
pub(super) fn timer_expired(store: &mut Store<HostState>) -> wasmtime::Error {
    store.data_mut().deadline_hit = true;
    wasmtime::Error::msg("deadline exceeded in a host call")
}

/// Fill in what a finished call cost, from its store.
pub(super) fn measure(
    store: &Store<HostState>,
    stats: &mut CallStats,
    start: Instant,
    consume_fuel: bool,
) {
    stats.total = start.elapsed();
    if consume_fuel {
        stats.fuel = u64::MAX - store.get_fuel().unwrap_or(u64::MAX);
    }
    stats.memory_peak = store.data().limiter.peak();
}

/// A store for one call: the total-memory limiter, fuel as a metric, and the epoch callback that
/// interrupts the guest at its deadline and yields to tokio on every tick before it.
pub(super) fn new_store(engine: &Engine, consume_fuel: bool, state: HostState) -> Store<HostState> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    if consume_fuel {
        // Fuel is a metric here, not a limit: deadlines are enforced by epochs.
        let _ = store.set_fuel(u64::MAX);
    }
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut cx| {
        if Instant::now() >= cx.data().deadline {
            cx.data_mut().deadline_hit = true;
            Ok(UpdateDeadline::Interrupt)
        } else {
            // Yield to tokio at every tick so long calls share the worker threads fairly.
            Ok(UpdateDeadline::Yield(1))
        }
    });
    store
}

async fn run(
    store: &mut Store<HostState>,
    prepared: &Prepared,
    call: Call,
    config: &Config,
    stats: &mut CallStats,
) -> Res<Outcome> {
    let t0 = Instant::now();
    let ok = |output: Vec<u8>| Outcome {
        output,
        state: None,
        metadata: Vec::new(),
        progress: Progress::default(),
        logs: Vec::new(),
        stats: CallStats::default(),
    };
    match (prepared, call) {
        (Prepared::Collector(pre), Call::Collect(source)) => {
            let inst = pre.instantiate_async(&mut *store).await?;
            stats.instantiate = t0.elapsed();
            Ok(inst
                .call_collect(&mut *store, &source, config)
                .await?
                .map(ok))
        }
        (Prepared::Cleaner(pre), Call::Clean(input)) => {
            let inst = pre.instantiate_async(&mut *store).await?;
            stats.instantiate = t0.elapsed();
            Ok(inst.call_clean(&mut *store, &input, config).await?.map(ok))
        }
        (
            Prepared::Transform(pre),
            call @ (Call::FitApply(_) | Call::Fit(_) | Call::Apply { .. }),
        ) => {
            let inst = pre.instantiate_async(&mut *store).await?;
            stats.instantiate = t0.elapsed();
            match call {
                Call::Fit(data) => Ok(inst.call_fit(&mut *store, &data, config).await?.map(ok)),
                Call::Apply { input, state } => Ok(inst
                    .call_apply(&mut *store, &input, &state, config)
                    .await?
                    .map(ok)),
                Call::FitApply(data) => {
                    let state = match inst.call_fit(&mut *store, &data, config).await? {
                        Ok(s) => s,
                        Err(e) => return Ok(Err(e)),
                    };
                    let out = inst.call_apply(&mut *store, &data, &state, config).await?;
                    Ok(out.map(|output| Outcome {
                        state: Some(state),
                        ..ok(output)
                    }))
                }
                _ => unreachable!("matched above"),
            }
        }
        (Prepared::Trainer(pre), Call::Train(reader)) => {
            if let Some(watch) = &reader.watch {
                store.data_mut().progress = watch.clone();
            }
            let inst = pre.instantiate_async(&mut *store).await?;
            stats.instantiate = t0.elapsed();
            let handle = store.data_mut().table().push(reader)?;
            let model = inst.call_train(&mut *store, handle, config).await?;
            Ok(model.map(|m| Outcome {
                metadata: m.metadata,
                ..ok(m.onnx)
            }))
        }
        (p, _) => Err(wasmtime::Error::new(WrongWorldError(format!(
            "plugin is a {}",
            p.world()
        )))),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct WrongWorldError(String);

/// What a failed call's error means. `elapsed` is the call's duration so far, reported with a
/// timeout.
pub(super) fn classify(
    e: wasmtime::Error,
    state: &HostState,
    limits: Limits,
    elapsed: Duration,
) -> InvokeError {
    if state.deadline_hit {
        return InvokeError::Timeout {
            limit_ms: limits.timeout_ms,
            elapsed_ms: elapsed.as_millis() as u64,
        };
    }
    if state.limiter.exceeded() {
        return InvokeError::MemoryLimit {
            limit: state.limiter.limit(),
        };
    }
    if format!("{e:#}").contains(HOSTCALL_FUEL_EXHAUSTED) {
        return InvokeError::OutputTooLarge {
            size: None,
            limit: limits.max_output_bytes,
        };
    }
    if let Some(w) = e.downcast_ref::<WrongWorldError>() {
        return InvokeError::WrongWorld(w.0.clone());
    }
    if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        return InvokeError::PoolExhausted;
    }
    if let Some(trap) = e.downcast_ref::<Trap>() {
        let what = match trap {
            Trap::StackOverflow => "stack overflow".to_string(),
            Trap::UnreachableCodeReached => "unreachable code reached (a panic or abort)".into(),
            other => other.to_string(),
        };
        return match state.stderr_tail() {
            Some(tail) => InvokeError::Trap(format!("{what}: {tail}")),
            None => InvokeError::Trap(what),
        };
    }
    InvokeError::Trap(format!("{e:#}"))
}
