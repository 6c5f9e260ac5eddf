//! Running one pipeline run's steps. Each of `collect` and `clean[i]` reads the previous step's
//! dataset and writes its own (named by run id and step, so parallel runs never collide); the
//! training steps (`split` to `publish`) are one training job whose phases are mapped onto them.
//!
//! Resume: a step whose state is `succeeded` in the stored record is skipped and its dataset
//! reused; a step that was interrupted starts over from an empty output dataset; the training
//! steps restart together from `split`, since a half-trained grid keeps no state worth saving.

use super::record::{Run, Step, StepState, dataset};
use crate::models::train::run::run as train;
use crate::models::train::{Candidate, Deps, Phase, Report};
use crate::ops::notify::Notifier;
use crate::platform::clock::now_ms;
use crate::platform::formats::encode_ipc;
use crate::platform::names::digest;
use crate::plugins::CallError;
use crate::runtime::Progress;
use crate::runtime::Source as PluginSource;
use crate::runtime::{Call, Outcome};
use crate::warehouse::PartLineage;
use serde_json::json;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

type Res<T> = Result<T, String>;

/// What a run needs from the host.
pub(super) struct Ctx {
    pub deps: Deps,
    pub bus: Arc<Notifier>,
}

/// A run in memory: its record, the trainer's live progress, how to cancel it, and the writer
/// that persists each change in order.
pub(super) struct LiveRun {
    pub run: Mutex<Run>,
    pub progress: Arc<Mutex<Progress>>,
    pub cancel: tokio_util::sync::CancellationToken,
    saver: Mutex<Option<watch::Sender<Run>>>,
    saved: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

pub(super) fn run_key(id: &str) -> String {
    format!("pipelines/runs/{id}.json")
}

impl LiveRun {
    /// A run whose record every [`LiveRun::update`] persists, latest version last. A run that
    /// already ended gets no writer: nothing changes it but retention, which writes itself.
    pub fn new(run: Run, ctx: &Ctx) -> Arc<LiveRun> {
        if run.state.is_terminal() {
            return Arc::new(LiveRun {
                run: Mutex::new(run),
                progress: Arc::default(),
                cancel: Default::default(),
                saver: Mutex::new(None),
                saved: tokio::sync::Mutex::new(None),
            });
        }
        let (tx, mut rx) = watch::channel(run.clone());
        let storage = ctx.deps.storage.clone();
        let writer = tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let run = rx.borrow_and_update().clone();
                if let Err(e) = storage.put_json(&run_key(&run.id), &run).await {
                    tracing::error!(run = run.id, "saving the run record: {e:#}");
                }
            }
        });
        Arc::new(LiveRun {
            run: Mutex::new(run),
            progress: Arc::default(),
            cancel: Default::default(),
            saver: Mutex::new(Some(tx)),
            saved: tokio::sync::Mutex::new(Some(writer)),
        })
    }

    pub fn snapshot(&self) -> Run {
        self.run.lock().unwrap().clone()
    }

    /// Change the record and queue it for saving.
    pub fn update<T>(&self, f: impl FnOnce(&mut Run) -> T) -> T {
        let mut run = self.run.lock().unwrap();
        let out = f(&mut run);
        if let Some(tx) = &*self.saver.lock().unwrap() {
            tx.send_replace(run.clone());
        }
        out
    }

    /// Wait until the last change is stored; no change is saved after this.
    pub async fn flush(&self) {
        self.saver.lock().unwrap().take();
        if let Some(w) = self.saved.lock().await.take() {
            let _ = w.await;
        }
    }

    fn step_event(&self, bus: &Notifier, i: usize) {
        let (run, pipeline, step) = {
            let r = self.run.lock().unwrap();
            (r.id.clone(), r.pipeline.clone(), r.steps[i].clone())
        };
        bus.emit(
            "run.step",
            json!({"run": run, "pipeline": pipeline, "step": step.id, "state": step.state,
                "duration_ms": step.duration_ms, "metrics": step.metrics, "error": step.error}),
        );
    }

    fn start(&self, bus: &Notifier, i: usize, input: Option<String>, output: Option<String>) {
        self.update(|r| {
            let s = &mut r.steps[i];
            s.state = StepState::Running;
            s.started_ms = Some(now_ms());
            s.finished_ms = None;
            s.duration_ms = None;
            s.error = None;
            s.input = input;
            s.output = output;
        });
        self.step_event(bus, i);
    }

    fn finish(&self, bus: &Notifier, i: usize, outcome: Res<(serde_json::Value, Vec<String>)>) {
        self.update(|r| {
            let s = &mut r.steps[i];
            let now = now_ms();
            s.finished_ms = Some(now);
            s.duration_ms = s.started_ms.map(|t| now.saturating_sub(t));
            match outcome {
                Ok((metrics, logs)) => {
                    s.state = StepState::Succeeded;
                    s.metrics = metrics;
                    s.logs = logs;
                }
                Err(e) => {
                    s.state = StepState::Failed;
                    s.error = Some(e);
                }
            }
        });
        self.step_event(bus, i);
    }

    fn index(&self, id: &str) -> Option<usize> {
        self.run
            .lock()
            .unwrap()
            .steps
            .iter()
            .position(|s| s.id == id)
    }

    fn running(&self) -> Option<usize> {
        let r = self.run.lock().unwrap();
        r.steps.iter().position(|s| s.state == StepState::Running)
    }
}

/// Call a plugin; `make` builds the call (again, when the plugin's rate limit or quota made it
/// wait).
async fn call(
    ctx: &Ctx,
    plugin: &str,
    make: impl Fn() -> Call,
    config: Vec<(String, String)>,
    timeout_ms: Option<u64>,
) -> Res<Outcome> {
    let entry = ctx
        .deps
        .plugins
        .get(plugin)
        .ok_or_else(|| format!("plugin `{plugin}` no longer exists"))?;
    loop {
        let live = entry.live();
        let version = live.version;
        match ctx
            .deps
            .plugins
            .call_queued(&entry, live, make(), config.clone(), timeout_ms)
            .await
        {
            // Over the plugin's rate limit or quota: wait, like a hook delivery does (the run
            // can still be cancelled meanwhile).
            Err(CallError::Limited(r)) => tokio::time::sleep(r.retry_after()).await,
            other => return other.map_err(|e| format!("{plugin} v{version}: {e}")),
        }
    }
}

/// All rows of a dataset as one Arrow IPC stream.
async fn read_ipc(ctx: &Ctx, name: &str) -> Res<(Vec<u8>, u64)> {
    let (schema, batches) = ctx
        .deps
        .warehouse
        .rows(name, 0, u64::MAX)
        .await
        .map_err(|e| format!("reading dataset `{name}`: {e:#}"))?
        .ok_or_else(|| format!("dataset `{name}` does not exist"))?;
    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
    Ok((encode_ipc(&schema, &batches)?, rows))
}

async fn fresh(ctx: &Ctx, name: &str) -> Res<()> {
    ctx.deps
        .warehouse
        .delete(name)
        .await
        .map(|_| ())
        .map_err(|e| format!("clearing dataset `{name}`: {e:#}"))
}

fn lineage(source: String) -> PartLineage {
    PartLineage {
        source: Some(source),
        ..Default::default()
    }
}

/// `collect`: the source's objects through the collector (one part per object), or a copy of
/// the source dataset.
async fn collect(ctx: &Ctx, run: &Run, out: &str) -> Res<(serde_json::Value, Vec<String>)> {
    fresh(ctx, out).await?;
    let src = &run.spec.source;
    let wh = &ctx.deps.warehouse;
    if let Some(ds) = &src.dataset {
        let (schema, batches) = wh
            .rows(ds, 0, u64::MAX)
            .await
            .map_err(|e| format!("reading dataset `{ds}`: {e:#}"))?
            .ok_or_else(|| format!("source.dataset: no dataset named `{ds}`"))?;
        let m = wh
            .commit_batches(
                out,
                "0",
                schema,
                batches,
                lineage(format!("datasets/{ds}/")),
            )
            .await
            .map_err(|e| e.to_string())?;
        return Ok((json!({"source_dataset": ds, "rows": m.rows}), vec![]));
    }
    let prefix = src.prefix.as_deref().unwrap_or_default();
    let collector = src.collector.as_deref().unwrap_or_default();
    let mut objects: Vec<_> = ctx
        .deps
        .storage
        .list_info(prefix)
        .await
        .map_err(|e| format!("listing {prefix}: {e:#}"))?
        .into_iter()
        .filter(|o| src.suffix.as_deref().is_none_or(|s| o.key.ends_with(s)))
        .collect();
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    if objects.is_empty() {
        return Err(format!(
            "no objects under `{prefix}`{}",
            src.suffix
                .as_deref()
                .map(|s| format!(" ending in `{s}`"))
                .unwrap_or_default()
        ));
    }
    let config = super::spec::pairs(&src.config);
    let (mut rows, mut bytes, mut logs) = (0u64, 0u64, Vec::new());
    for o in &objects {
        let Some(data) = ctx
            .deps
            .storage
            .get(&o.key)
            .await
            .map_err(|e| format!("reading {}: {e:#}", o.key))?
        else {
            continue; // deleted since the listing
        };
        bytes += data.len() as u64;
        let source = || {
            Call::Collect(PluginSource {
                content_type: crate::ingest::hooks::worker::content_type(&o.key).into(),
                name: Some(o.key.clone()),
                data: data.to_vec(),
            })
        };
        let outcome = call(ctx, collector, source, config.clone(), None)
            .await
            .map_err(|e| format!("{}: {e}", o.key))?;
        logs.extend(outcome.logs.into_iter().map(|l| format!("{}: {l}", o.key)));
        let id = digest(&[&o.key, o.etag.as_deref().unwrap_or("")]);
        let m = wh
            .commit(out, &id, outcome.output, lineage(o.key.clone()))
            .await
            .map_err(|e| format!("{}: {e}", o.key))?;
        rows += m.rows;
    }
    Ok((
        json!({"objects": objects.len(), "bytes": bytes, "rows": rows}),
        logs,
    ))
}

/// `clean[i]`: the whole input table through the cleaner.
async fn clean(
    ctx: &Ctx,
    run: &Run,
    i: usize,
    input: &str,
    out: &str,
) -> Res<(serde_json::Value, Vec<String>)> {
    fresh(ctx, out).await?;
    let step = &run.spec.clean[i];
    let (ipc, rows_in) = read_ipc(ctx, input).await?;
    let outcome = call(
        ctx,
        &step.plugin,
        || Call::Clean(ipc.clone()),
        step.config_pairs(),
        step.timeout_ms,
    )
    .await?;
    let m = ctx
        .deps
        .warehouse
        .commit(
            out,
            "0",
            outcome.output,
            lineage(format!("datasets/{input}/")),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok((
        json!({"rows_in": rows_in, "rows_out": m.rows,
               "removed": rows_in.saturating_sub(m.rows),
               "fuel": outcome.stats.fuel, "memory_peak": outcome.stats.memory_peak,
               "plugin_ms": outcome.stats.total.as_secs_f64() * 1e3}),
        outcome.logs,
    ))
}

/// Maps training phases onto the run's steps.
struct Steps<'a> {
    ctx: &'a Ctx,
    live: &'a LiveRun,
    candidates: Mutex<Vec<Candidate>>,
}

impl Report for Steps<'_> {
    fn phase(&self, phase: Phase) {
        let id = match &phase {
            Phase::Reading | Phase::Splitting => "split".to_string(),
            Phase::Transforming { index, .. } => format!("transform[{index}]"),
            Phase::Training { .. } => "train".into(),
            Phase::Evaluating => "evaluate".into(),
            Phase::Storing | Phase::Gating => "publish".into(),
        };
        if let Phase::Training { candidate, of } = phase {
            self.live.update(|r| {
                if let Some(s) = r.steps.iter_mut().find(|s| s.id == "train") {
                    s.metrics = json!({"candidate": candidate + 1, "of": of});
                }
            });
        }
        let Some(next) = self.live.index(&id) else {
            return;
        };
        match self.live.running() {
            Some(cur) if cur == next => return,
            Some(cur) => self
                .live
                .finish(&self.ctx.bus, cur, Ok((json!(null), vec![]))),
            None => {}
        }
        self.live.start(&self.ctx.bus, next, None, None);
    }

    fn candidate(&self, c: Candidate) {
        self.candidates.lock().unwrap().push(c);
    }

    fn progress_cell(&self) -> Arc<Mutex<Progress>> {
        self.live.progress.clone()
    }
}

/// Run every step not yet done. `Err` is the failing step's error, already recorded on it.
pub(super) async fn execute(ctx: &Ctx, live: &LiveRun) -> Res<()> {
    let run = live.snapshot();
    let done = |i: usize| run.steps[i].state == StepState::Succeeded;
    let mut input = None;
    let mut index = 0;
    // Data steps: collect, clean[i].
    for i in 0..=run.spec.clean.len() {
        let step = &run.steps[index];
        let out = dataset(&run.id, &step.id);
        if !done(index) {
            live.start(&ctx.bus, index, input.clone(), Some(out.clone()));
            let outcome = match &input {
                None => collect(ctx, &run, &out).await,
                Some(inp) => clean(ctx, &run, i - 1, inp, &out).await,
            };
            let failed = outcome.as_ref().err().cloned();
            live.finish(&ctx.bus, index, outcome);
            if let Some(e) = failed {
                return Err(format!("{}: {e}", step.id));
            }
        }
        input = Some(out);
        index += 1;
    }
    // Training steps.
    let input = input.expect("collect ran");
    live.update(|r| {
        for s in &mut r.steps[index..] {
            *s = Step::new(s.id.clone(), s.plugin.clone());
        }
        r.steps[index].input = Some(input.clone());
    });
    let steps = Steps {
        ctx,
        live,
        candidates: Mutex::default(),
    };
    let outcome = train(&ctx.deps, &run.spec.train_request(&input), &steps).await;
    let current = live.running();
    let result = match outcome {
        Ok(r) => r,
        Err(e) => {
            let at = current.unwrap_or(index);
            live.finish(&ctx.bus, at, Err(e.clone()));
            return Err(format!("{}: {e}", run.steps[at].id));
        }
    };
    if let Some(cur) = current {
        live.finish(&ctx.bus, cur, Ok((json!(null), vec![])));
    }
    let candidates = steps.candidates.into_inner().unwrap();
    let model = json!({"model": result.model, "version": result.version,
        "alias": result.alias, "published": result.published,
        "gate_failures": result.gate_failures});
    live.update(|r| {
        for s in &mut r.steps[index..] {
            s.metrics = match s.id.as_str() {
                "split" => json!(result.split),
                "train" => {
                    json!({"metric": result.metric, "validation_score": result.validation_score,
                    "hyperparameters": result.hyperparameters, "candidates": candidates})
                }
                "evaluate" => json!(result.test_scores),
                "publish" => model.clone(),
                _ => s.metrics.take(),
            };
        }
        r.model = Some(model.clone());
    });
    Ok(())
}
