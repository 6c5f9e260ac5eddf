//! Dynamic batching (Triton's `dynamic_batching`): requests for one model version that arrive
//! close together are concatenated along the batch axis, run once, and the outputs split back.
//!
//! A batch closes when it holds `max_batch_size` rows or `max_queue_delay_us` after its first
//! request arrived, whichever is first; a request larger than the limit runs alone. One batch
//! runs at a time per version (on the version's batching thread) while the next one fills, so under
//! concurrency the model runs fewer, larger calls — less per-call overhead per row. It is off by
//! default: alone, a request waits up to the delay for company that never comes.
//!
//! Only models whose every input and output has a variable first dimension (and fixed others)
//! can be batched; for the others the setting is ignored. A request with no rows runs alone. If
//! a batch fails, each of its requests is run again alone, so one bad request fails only itself;
//! a panic in the model answers its batch with errors and the queue goes on.

use super::onnx::LoadedModel;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;
use tract_onnx::prelude::*;

/// Per-model batching settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batching {
    pub max_batch_size: usize,
    pub max_queue_delay_us: u64,
}

impl Batching {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=65_536).contains(&self.max_batch_size) {
            return Err("max_batch_size must be 1..=65536".into());
        }
        if self.max_queue_delay_us > 1_000_000 {
            return Err("max_queue_delay_us must be at most 1000000 (1 s)".into());
        }
        Ok(())
    }
}

/// Whether `model` can be batched: every input and output has a variable first dimension and
/// fixed others, so any two requests that fit the signature can be concatenated.
pub fn batchable(model: &LoadedModel) -> bool {
    let s = &model.signature;
    s.inputs
        .iter()
        .chain(&s.outputs)
        .all(|t| t.shape.first() == Some(&-1) && t.shape[1..].iter().all(|d| *d >= 0))
}

/// Why a batched call failed: the queue was full (503, retry) or the model failed (500).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("the batching queue of this model is full; retry shortly")]
    Full,
    #[error("{0}")]
    Failed(String),
}

type Reply = oneshot::Sender<Result<TVec<Tensor>, String>>;

struct Job {
    inputs: TVec<Tensor>,
    rows: usize,
    reply: Reply,
}

/// The queue in front of one loaded version.
pub struct Batcher {
    tx: std::sync::mpsc::SyncSender<Job>,
    stats: Arc<BatchStats>,
    config: Batching,
}

/// How much batching happened: `requests / batches` is the mean batch size in requests.
#[derive(Debug, Default, Serialize)]
pub struct BatchStats {
    pub requests: AtomicU64,
    pub batches: AtomicU64,
    pub rows: AtomicU64,
}

impl Batcher {
    /// Start the version's batching thread. A thread of its own, not a tokio task: tokio's
    /// timers tick in milliseconds, and queue delays are typically a few hundred microseconds
    /// (`recv_timeout` waits on a futex with microsecond precision). The thread also runs the
    /// model, so a batch costs no hop to the blocking pool; it ends when the batcher is dropped.
    pub fn start(model: Arc<LoadedModel>, cfg: Batching) -> Batcher {
        let (tx, rx) = std::sync::mpsc::sync_channel(4096);
        let stats = Arc::new(BatchStats::default());
        let s = stats.clone();
        std::thread::Builder::new()
            .name("aimass-batcher".into())
            .spawn(move || run(&model, cfg, &rx, &s))
            .expect("spawning a batcher thread");
        Batcher {
            tx,
            stats,
            config: cfg,
        }
    }

    /// The settings this queue runs with.
    pub fn config(&self) -> Batching {
        self.config
    }

    pub fn stats(&self) -> &BatchStats {
        &self.stats
    }

    /// Run `inputs` as part of a batch; returns this request's rows of every output.
    pub async fn infer(&self, inputs: TVec<Tensor>) -> Result<TVec<Tensor>, BatchError> {
        let rows = inputs
            .first()
            .and_then(|t| t.shape().first().copied())
            .unwrap_or(0);
        let (reply, rx) = oneshot::channel();
        let job = Job {
            inputs,
            rows,
            reply,
        };
        self.tx.try_send(job).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(_) => BatchError::Full,
            std::sync::mpsc::TrySendError::Disconnected(_) => {
                BatchError::Failed("the batcher stopped".into())
            }
        })?;
        rx.await
            .map_err(|_| BatchError::Failed("the model failed on this batch".into()))?
            .map_err(BatchError::Failed)
    }
}

fn run(
    model: &LoadedModel,
    cfg: Batching,
    rx: &std::sync::mpsc::Receiver<Job>,
    stats: &BatchStats,
) {
    let delay = Duration::from_micros(cfg.max_queue_delay_us);
    let mut carry: Option<Job> = None;
    loop {
        let first = match carry.take() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
        };
        let deadline = std::time::Instant::now() + delay;
        let mut rows = first.rows;
        let alone = rows == 0;
        let mut batch = vec![first];
        while !alone && rows < cfg.max_batch_size {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(j) = rx.recv_timeout(left) else { break };
            if j.rows == 0 || rows + j.rows > cfg.max_batch_size {
                carry = Some(j);
                break;
            }
            rows += j.rows;
            batch.push(j);
        }
        stats
            .requests
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.rows.fetch_add(rows as u64, Ordering::Relaxed);
        // A panic in tract drops the batch's reply channels (each request gets an error) and
        // the queue goes on serving.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| execute(model, batch)));
    }
}

/// Concatenate, run once, split. If the batch fails, run each request alone.
fn execute(model: &LoadedModel, batch: Vec<Job>) {
    if batch.len() == 1 {
        let job = batch.into_iter().next().expect("one");
        let out = run_one(model, job.inputs);
        let _ = job.reply.send(out);
        return;
    }
    let inputs: Result<TVec<TValue>, String> = (0..batch[0].inputs.len())
        .map(|i| {
            let parts: Vec<&Tensor> = batch.iter().map(|j| &j.inputs[i]).collect();
            Tensor::stack_tensors(0, &parts)
                .map(TValue::from)
                .map_err(|e| format!("{e:#}"))
        })
        .collect();
    match inputs.and_then(|inputs| model.run(inputs).map_err(|e| format!("{e:#}"))) {
        Err(_) => batch.into_iter().for_each(|j| {
            let out = run_one(model, j.inputs);
            let _ = j.reply.send(out);
        }),
        Ok(outputs) => {
            let mut start = 0;
            for j in batch {
                let mine: Result<TVec<Tensor>, String> = outputs
                    .iter()
                    .map(|o| {
                        o.slice(0, start, start + j.rows)
                            .map_err(|e| format!("{e:#}"))
                    })
                    .collect();
                start += j.rows;
                let _ = j.reply.send(mine);
            }
        }
    }
}

fn run_one(model: &LoadedModel, inputs: TVec<Tensor>) -> Result<TVec<Tensor>, String> {
    let out = model
        .run(inputs.into_iter().map(TValue::from).collect())
        .map_err(|e| format!("{e:#}"))?;
    Ok(out.into_iter().map(|v| v.into_tensor()).collect())
}
