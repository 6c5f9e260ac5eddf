//! Pipelines: a declarative collect → clean → transform → split → train → evaluate → publish
//! flow ([`spec`]), applied once and run many times — by hand, on a cron schedule, or when
//! objects land under its source prefix (continuous training).
//!
//! - Runs of one pipeline never exceed `runs.max_concurrent` (default 1): more wait, queued.
//!   Automatic triggers (cron, objects) arriving while an automatic run is still queued join it
//!   instead of queueing another, so a burst of 1000 uploads costs at most one extra run.
//! - Object triggers ride the hooks' durable queue ([`TriggerSink`](crate::ingest::hooks::TriggerSink), see `triggers`), so an event noticed just
//!   before a crash still starts its run after the restart.
//! - Every step boundary is stored; at start, runs the host stopped in the middle of are resumed
//!   from the last completed step (or marked failed with the reason when `runs.resume = false`).
//!   A run is never left `running` forever.
//! - Intermediate datasets are named by run and step; once a pipeline has more than `runs.keep`
//!   finished runs, the older runs' datasets are deleted (their records stay).
//! - Records of finished runs past the newest [`KEPT_RUN_RECORDS`] per pipeline (or `runs.keep`)
//!   leave memory and are read from the store when asked for.
//!
//! Cron schedules are evaluated in UTC while the host runs; schedules missed while it was down
//! are not caught up (like a Kubernetes CronJob without `startingDeadlineSeconds`).

mod exec;
pub mod record;
pub mod spec;
mod triggers;

use crate::ingest::hooks::Hooks;
use crate::models::train::Deps;
use crate::ops::notify::Notifier;
use crate::platform::clock::now_ms;
use crate::platform::names::valid_name;
use anyhow::Result;
use exec::{Ctx, LiveRun, run_key};
use record::{Run, RunState, RunSummary, StepState, Trigger, plan};
use serde::{Deserialize, Serialize};
use spec::PipelineSpec;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock, Weak};
use tokio::sync::Semaphore;

/// A pipeline as applied.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineRecord {
    pub name: String,
    pub spec: PipelineSpec,
    /// The file as applied (TOML or JSON).
    pub source: String,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// Why a pipeline request was refused.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Not a pipeline file (TOML/JSON syntax, unknown or mistyped field).
    #[error("{0}")]
    Malformed(String),
    /// A well-formed file that cannot run (unknown plugin, wrong world, bad cron...).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Too many runs waiting (429).
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Storage(#[from] anyhow::Error),
}

struct Entry {
    record: PipelineRecord,
    slots: Arc<Semaphore>,
    cron: Option<tokio::task::JoinHandle<()>>,
}

pub struct Pipelines {
    ctx: Ctx,
    hooks: Arc<Hooks>,
    pipelines: RwLock<BTreeMap<String, Entry>>,
    runs: Mutex<BTreeMap<String, Arc<LiveRun>>>,
    /// Finished runs whose records left memory ([`KEPT_RUN_RECORDS`]): id → (pipeline, created).
    /// Their records are read from the store when asked for.
    stored_only: Mutex<BTreeMap<String, (Arc<str>, u64)>>,
    /// Per pipeline, the automatically triggered run still waiting to start.
    queued_auto: Mutex<HashMap<String, String>>,
    /// Per pipeline, ids of the object events that triggered it lately: the same object version
    /// reported twice (a write through the API, then the poller) starts one run, not two.
    seen_events: Mutex<HashMap<String, VecDeque<String>>>,
    /// Serialises run creation with itself and with pipeline deletion: deciding to join a queued
    /// run and recording a new one is one step, so N triggers at once make one queued run.
    submits: tokio::sync::Mutex<()>,
    me: Weak<Pipelines>,
}

/// Runs of one pipeline that may wait to start; a manual run past it is refused (429).
/// Automatic triggers never add to the queue past one run (they join it).
pub const MAX_QUEUED_RUNS: usize = 16;

/// Finished runs per pipeline whose whole record (spec copy included) stays in memory, or its
/// `runs.keep` if larger; older records are read from the store when asked for.
pub const KEPT_RUN_RECORDS: usize = 50;

/// The run slots of a pipeline allowing `want` runs at once: one semaphore for the life of the
/// pipeline, resized, so runs already waiting on it and new ones share the new limit.
fn run_slots(existing: Option<&Entry>, want: usize) -> Arc<Semaphore> {
    let Some(e) = existing else {
        return Arc::new(Semaphore::new(want));
    };
    let had = e.record.spec.runs.max_concurrent as usize;
    if want > had {
        e.slots.add_permits(want - had);
    } else if want < had {
        let owed = (had - want) - e.slots.forget_permits(had - want);
        if owed > 0 {
            let slots = e.slots.clone();
            tokio::spawn(async move {
                if let Ok(p) = slots.acquire_many_owned(owed as u32).await {
                    p.forget();
                }
            });
        }
    }
    e.slots.clone()
}

fn spec_key(name: &str) -> String {
    format!("pipelines/specs/{name}.json")
}

impl Pipelines {
    /// Load pipelines and runs; runs a stop interrupted are resumed once [`Pipelines::start`]
    /// is called, or failed now.
    pub async fn open(deps: Deps, bus: Arc<Notifier>, hooks: Arc<Hooks>) -> Result<Arc<Pipelines>> {
        let storage = deps.storage.clone();
        let this = Arc::new_cyclic(|me| Pipelines {
            ctx: Ctx { deps, bus },
            hooks,
            pipelines: RwLock::default(),
            runs: Mutex::default(),
            stored_only: Mutex::default(),
            queued_auto: Mutex::default(),
            seen_events: Mutex::default(),
            submits: tokio::sync::Mutex::new(()),
            me: me.clone(),
        });
        for key in storage.list("pipelines/specs/").await? {
            let rec = match storage.get_json::<PipelineRecord>(&key).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(key, "skipping an unreadable pipeline record: {e:#}");
                    continue;
                }
            };
            if let Some(rec) = rec {
                let slots = Arc::new(Semaphore::new(rec.spec.runs.max_concurrent as usize));
                this.pipelines.write().unwrap().insert(
                    rec.name.clone(),
                    Entry {
                        record: rec,
                        slots,
                        cron: None,
                    },
                );
            }
        }
        for key in storage.list("pipelines/runs/").await? {
            let mut run = match storage.get_json::<Run>(&key).await {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(key, "skipping an unreadable run record: {e:#}");
                    continue;
                }
            };
            if !run.state.is_terminal() && !run.spec.runs.resume {
                let step = run.summary().step.unwrap_or_else(|| "queued".into());
                run.state = RunState::Failed;
                run.error = Some(format!(
                    "interrupted: the host stopped during `{step}` (runs.resume is off)"
                ));
                run.finished_ms = Some(now_ms());
                for s in run
                    .steps
                    .iter_mut()
                    .filter(|s| s.state == StepState::Running)
                {
                    s.state = StepState::Failed;
                    s.error = Some("interrupted by a host stop".into());
                }
                storage.put_json(&key, &run).await?;
            }
            let live = LiveRun::new(run.clone(), &this.ctx);
            this.runs.lock().unwrap().insert(run.id.clone(), live);
        }
        let names: BTreeSet<String> = (this.runs.lock().unwrap().values())
            .map(|r| r.snapshot().pipeline)
            .collect();
        for name in names {
            this.evict(&name);
        }
        Ok(this)
    }

    /// Start cron schedules, object triggers and the interrupted runs.
    pub fn start(self: &Arc<Self>) {
        let names: Vec<String> = self.pipelines.read().unwrap().keys().cloned().collect();
        for name in names {
            self.schedule(&name);
        }
        let interrupted: Vec<Arc<LiveRun>> = self
            .runs
            .lock()
            .unwrap()
            .values()
            .filter(|r| !r.snapshot().state.is_terminal())
            .cloned()
            .collect();
        for live in interrupted {
            let step = live.snapshot().summary().step;
            live.update(|r| {
                r.state = RunState::Queued;
                r.resumed += 1;
                for s in r.steps.iter_mut().filter(|s| s.state == StepState::Running) {
                    s.state = StepState::Pending;
                }
            });
            let r = live.snapshot();
            tracing::info!(
                run = r.id,
                pipeline = r.pipeline,
                step,
                "resuming an interrupted run"
            );
            self.spawn(live);
        }
    }

    /// Runs queued or running.
    pub fn active(&self) -> usize {
        let runs = self.runs.lock().unwrap();
        runs.values()
            .filter(|r| !r.snapshot().state.is_terminal())
            .count()
    }

    pub fn deps(&self) -> &Deps {
        &self.ctx.deps
    }

    /// Create or replace a pipeline from its file. Returns the record and whether it is new.
    pub async fn apply(
        &self,
        name: &str,
        text: &str,
        json: bool,
    ) -> Result<(PipelineRecord, bool), PipelineError> {
        if !valid_name(name) {
            return Err(PipelineError::Malformed(format!(
                "{name:?} is not a pipeline name (lowercase letters, digits, '-', '_', '.')"
            )));
        }
        let spec = spec::parse(text, json).map_err(PipelineError::Malformed)?;
        spec.validate(&self.ctx.deps).map_err(|e| {
            let path = e.split(':').next().unwrap_or_default();
            let at = (!json)
                .then(|| spec::locate(text, path))
                .flatten()
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            PipelineError::Invalid(format!("invalid pipeline: {e}{at}"))
        })?;
        if spec.triggers.on_new_objects
            && let Some(prefix) = &spec.source.prefix
        {
            self.hooks.watch(prefix).await?;
        }
        let now = now_ms();
        let created_ms = self
            .pipelines
            .read()
            .unwrap()
            .get(name)
            .map(|e| e.record.created_ms);
        let record = PipelineRecord {
            name: name.into(),
            spec,
            source: text.into(),
            created_ms: created_ms.unwrap_or(now),
            updated_ms: now,
        };
        self.ctx
            .deps
            .storage
            .put_json(&spec_key(name), &record)
            .await?;
        {
            let mut map = self.pipelines.write().unwrap();
            let slots = run_slots(map.get(name), record.spec.runs.max_concurrent as usize);
            if let Some(old) = map.insert(
                name.into(),
                Entry {
                    record: record.clone(),
                    slots,
                    cron: None,
                },
            ) && let Some(c) = old.cron
            {
                c.abort();
            }
        }
        self.schedule(name);
        Ok((record, created_ms.is_none()))
    }

    /// Remove a pipeline; refused while it has runs queued or running. Its runs stay.
    pub async fn delete(&self, name: &str) -> Result<bool, PipelineError> {
        let _no_new_runs = self.submits.lock().await;
        if !self.pipelines.read().unwrap().contains_key(name) {
            return Ok(false);
        }
        if let Some(r) = self
            .runs_of(name)
            .into_iter()
            .find(|r| !r.state.is_terminal())
        {
            return Err(PipelineError::Conflict(format!(
                "pipeline `{name}` has run {} {:?}; cancel it first",
                r.id, r.state
            )));
        }
        self.ctx.deps.storage.delete(&spec_key(name)).await?;
        if let Some(e) = self.pipelines.write().unwrap().remove(name)
            && let Some(c) = e.cron
        {
            c.abort();
        }
        Ok(true)
    }

    pub fn get(&self, name: &str) -> Option<PipelineRecord> {
        self.pipelines
            .read()
            .unwrap()
            .get(name)
            .map(|e| e.record.clone())
    }

    pub fn list(&self) -> Vec<PipelineRecord> {
        let map = self.pipelines.read().unwrap();
        map.values().map(|e| e.record.clone()).collect()
    }

    /// Next cron fire time, ms since the epoch.
    pub fn next_cron_ms(&self, name: &str) -> Option<u64> {
        let line = self.get(name)?.spec.triggers.cron?;
        let next = spec::cron(&line)
            .ok()?
            .find_next_occurrence(&chrono::Utc::now(), false)
            .ok()?;
        Some(next.timestamp_millis() as u64)
    }

    /// A run with the trainer's live progress.
    pub fn run(&self, id: &str) -> Option<(Run, crate::runtime::Progress)> {
        let live = self.runs.lock().unwrap().get(id)?.clone();
        let progress = live.progress.lock().unwrap().clone();
        Some((live.snapshot(), progress))
    }

    /// A run as stored, in memory or not (its live progress when in memory).
    pub async fn run_anywhere(
        &self,
        id: &str,
    ) -> Result<Option<(Run, crate::runtime::Progress)>, PipelineError> {
        if let Some(found) = self.run(id) {
            return Ok(Some(found));
        }
        if !self.stored_only.lock().unwrap().contains_key(id) {
            return Ok(None);
        }
        let run = self.ctx.deps.storage.get_json::<Run>(&run_key(id)).await?;
        Ok(run.map(|r| (r, Default::default())))
    }

    /// Runs of a pipeline, and the total; newest first, from `offset`, at most `limit`.
    pub async fn runs_page(
        &self,
        name: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<RunSummary>, usize), PipelineError> {
        let mut all: Vec<(u64, String, Option<RunSummary>)> = (self.runs_of(name).into_iter())
            .map(|r| (r.created_ms, r.id.clone(), Some(r)))
            .collect();
        all.extend(
            (self.stored_only.lock().unwrap().iter())
                .filter(|(_, (p, _))| &**p == name)
                .map(|(id, (_, created))| (*created, id.clone(), None)),
        );
        all.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
        let total = all.len();
        let mut page = Vec::new();
        for (_, id, summary) in all.into_iter().skip(offset).take(limit) {
            match summary {
                Some(s) => page.push(s),
                None => match self.ctx.deps.storage.get_json::<Run>(&run_key(&id)).await? {
                    Some(r) => page.push(r.summary()),
                    None => tracing::warn!(run = id, "a run record left the store"),
                },
            }
        }
        Ok((page, total))
    }

    /// Runs of a pipeline whose records are only in the store.
    pub fn stored_only_runs(&self, name: &str) -> usize {
        (self.stored_only.lock().unwrap().values())
            .filter(|(p, _)| &**p == name)
            .count()
    }

    /// Run records (in memory, only in the store), for `/metrics`.
    pub fn record_counts(&self) -> (usize, usize) {
        let memory = self.runs.lock().unwrap().len();
        (memory, self.stored_only.lock().unwrap().len())
    }

    /// Take the finished runs of `name` past the newest [`KEPT_RUN_RECORDS`] (or `runs.keep`)
    /// out of memory, once retention has dealt with their datasets; their records stay in the
    /// store.
    fn evict(&self, name: &str) {
        let keep = self.get(name).map(|p| p.spec.runs.keep);
        let limit = keep.unwrap_or(0).max(KEPT_RUN_RECORDS);
        let mut runs = self.runs.lock().unwrap();
        let mut finished: Vec<(u64, String, bool)> = (runs.values())
            .map(|l| l.snapshot())
            .filter(|r| r.pipeline == name && r.state.is_terminal())
            .map(|r| (r.created_ms, r.id, r.datasets_deleted || keep.is_none()))
            .collect();
        if finished.len() <= limit {
            return;
        }
        finished.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
        let name: Arc<str> = name.into();
        let mut stored = self.stored_only.lock().unwrap();
        for (created, id, _) in finished.into_iter().skip(limit).filter(|f| f.2) {
            runs.remove(&id);
            stored.insert(id, (name.clone(), created));
        }
    }

    /// Runs of a pipeline in memory, newest first: every run not yet finished, and the last
    /// finished ones.
    pub fn runs_of(&self, name: &str) -> Vec<RunSummary> {
        let runs: Vec<Arc<LiveRun>> = self.runs.lock().unwrap().values().cloned().collect();
        let mut v: Vec<RunSummary> = runs
            .iter()
            .map(|r| r.snapshot())
            .filter(|r| r.pipeline == name)
            .map(|r| r.summary())
            .collect();
        v.sort_by_key(|r| std::cmp::Reverse((r.created_ms, r.id.clone())));
        v
    }

    /// Runs of `name` waiting to start.
    fn queued_runs(&self, name: &str) -> usize {
        let runs = self.runs.lock().unwrap();
        (runs.values())
            .filter(|r| {
                let r = r.snapshot();
                r.pipeline == name && r.state == RunState::Queued
            })
            .count()
    }

    /// Start a run (manual: a new one, unless [`MAX_QUEUED_RUNS`] wait already; automatic:
    /// joins a queued automatic run).
    pub async fn submit(&self, name: &str, trigger: Trigger) -> Result<Run, PipelineError> {
        let _one_at_a_time = self.submits.lock().await;
        let spec = self
            .get(name)
            .ok_or_else(|| PipelineError::NotFound(format!("no pipeline named `{name}`")))?
            .spec;
        let automatic = trigger.kind != "manual";
        if !automatic {
            let queued = self.queued_runs(name);
            if queued >= MAX_QUEUED_RUNS {
                return Err(PipelineError::Busy(format!(
                    "pipeline `{name}` has {queued} runs queued already (at most \
                     {MAX_QUEUED_RUNS}); retry when some have started"
                )));
            }
        }
        if automatic {
            let queued = self.queued_auto.lock().unwrap().get(name).cloned();
            if let Some(live) = queued.and_then(|id| self.runs.lock().unwrap().get(&id).cloned()) {
                let cancelled = live.cancel.is_cancelled();
                let joined = live.update(|r| {
                    (r.state == RunState::Queued && !cancelled).then(|| {
                        r.trigger.coalesced += 1;
                        r.clone()
                    })
                });
                if let Some(run) = joined {
                    return Ok(run);
                }
            }
        }
        let run = Run {
            id: format!("{:016x}", rand::random::<u64>()),
            pipeline: name.into(),
            state: RunState::Queued,
            trigger,
            steps: plan(&spec),
            created_ms: now_ms(),
            started_ms: None,
            finished_ms: None,
            error: None,
            resumed: 0,
            model: None,
            datasets_deleted: false,
            spec,
        };
        self.ctx
            .deps
            .storage
            .put_json(&run_key(&run.id), &run)
            .await?;
        let live = LiveRun::new(run.clone(), &self.ctx);
        self.runs
            .lock()
            .unwrap()
            .insert(run.id.clone(), live.clone());
        if automatic {
            self.queued_auto
                .lock()
                .unwrap()
                .insert(name.into(), run.id.clone());
        }
        self.spawn(live);
        Ok(run)
    }

    /// Ask a run to stop; it ends `cancelled` at once if queued, else as soon as its current
    /// plugin call is abandoned.
    pub fn cancel(&self, id: &str) -> Result<Run, PipelineError> {
        let live = self.runs.lock().unwrap().get(id).cloned().ok_or_else(|| {
            match self.stored_only.lock().unwrap().contains_key(id) {
                true => PipelineError::Conflict(format!("run {id} already ended")),
                false => PipelineError::NotFound(format!("no run `{id}`")),
            }
        })?;
        let run = live.snapshot();
        if run.state.is_terminal() {
            return Err(PipelineError::Conflict(format!(
                "run {id} already ended ({:?})",
                run.state
            )));
        }
        live.cancel.cancel();
        Ok(run)
    }

    fn spawn(&self, live: Arc<LiveRun>) {
        let Some(this) = self.me.upgrade() else {
            return;
        };
        tokio::spawn(async move { this.drive(live).await });
    }

    async fn drive(self: Arc<Self>, live: Arc<LiveRun>) {
        let name = live.snapshot().pipeline;
        let slots = self
            .pipelines
            .read()
            .unwrap()
            .get(&name)
            .map(|e| e.slots.clone())
            .unwrap_or_else(|| Arc::new(Semaphore::new(1)));
        let permit = tokio::select! {
            p = slots.acquire_owned() => p.ok(),
            _ = live.cancel.cancelled() => None,
        };
        {
            let mut q = self.queued_auto.lock().unwrap();
            if q.get(&name) == Some(&live.snapshot().id) {
                q.remove(&name);
            }
        }
        let bus = &self.ctx.bus;
        let outcome = if permit.is_none() {
            Err(None)
        } else {
            live.update(|r| {
                r.state = RunState::Running;
                r.started_ms.get_or_insert_with(now_ms);
            });
            let r = live.snapshot();
            bus.emit(
                "run.started",
                serde_json::json!({"run": r.id, "pipeline": r.pipeline, "trigger": r.trigger,
                    "resumed": r.resumed}),
            );
            tokio::select! {
                r = exec::execute(&self.ctx, &live) => r.map_err(Some),
                _ = live.cancel.cancelled() => Err(None),
            }
        };
        let now = now_ms();
        let (state, kind) = match &outcome {
            Ok(()) => (RunState::Succeeded, "run.finished"),
            Err(Some(_)) => (RunState::Failed, "run.failed"),
            Err(None) => (RunState::Cancelled, "run.cancelled"),
        };
        live.update(|r| {
            r.state = state;
            r.finished_ms = Some(now);
            if let Err(Some(e)) = &outcome {
                r.error = Some(e.clone());
            }
            if state == RunState::Cancelled {
                r.error = Some("cancelled".into());
                for s in r.steps.iter_mut().filter(|s| s.state == StepState::Running) {
                    s.state = StepState::Cancelled;
                    s.finished_ms = Some(now);
                    s.duration_ms = s.started_ms.map(|t| now.saturating_sub(t));
                }
            }
        });
        live.flush().await;
        let r = live.snapshot();
        let secs = r
            .started_ms
            .map_or(0.0, |t| now.saturating_sub(t) as f64 / 1e3);
        self.ctx.deps.plugins.metrics().record_pipeline_run(
            &r.pipeline,
            &format!("{state:?}").to_lowercase(),
            secs,
        );
        bus.emit(
            kind,
            serde_json::json!({"run": r.id, "pipeline": r.pipeline, "state": r.state,
                "error": r.error, "model": r.model, "duration_ms": (secs * 1e3) as u64}),
        );
        drop(permit);
        self.retain(&r.pipeline).await;
        self.evict(&r.pipeline);
    }

    /// Delete the intermediate datasets of finished runs beyond the pipeline's `runs.keep`.
    async fn retain(&self, name: &str) {
        let Some(keep) = self.get(name).map(|p| p.spec.runs.keep) else {
            return;
        };
        let old: Vec<Arc<LiveRun>> = {
            let runs = self.runs.lock().unwrap();
            let mut finished: Vec<(u64, Arc<LiveRun>)> = runs
                .values()
                .map(|l| (l.snapshot(), l))
                .filter(|(r, _)| r.pipeline == name && r.state.is_terminal())
                .map(|(r, l)| (r.created_ms, l.clone()))
                .collect();
            finished.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
            finished.into_iter().skip(keep).map(|(_, l)| l).collect()
        };
        for live in old {
            let run = live.snapshot();
            if run.datasets_deleted {
                continue;
            }
            for ds in run.datasets() {
                if let Err(e) = self.ctx.deps.warehouse.delete(&ds).await {
                    tracing::warn!(run = run.id, dataset = ds, "retention: {e:#}");
                    return;
                }
            }
            let mut run = run;
            run.datasets_deleted = true;
            if let Err(e) = self
                .ctx
                .deps
                .storage
                .put_json(&run_key(&run.id), &run)
                .await
            {
                tracing::warn!(run = run.id, "retention: {e:#}");
                return;
            }
            *live.run.lock().unwrap() = run;
        }
    }
}
