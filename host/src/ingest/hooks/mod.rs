//! Hooks: plugins bound to a key prefix, fired by object events.
//!
//! Flow: a source (object API, S3 notification, poller, dataset commit) calls [`Hooks::publish`]
//! with an [`Event`]; every matching hook gets a [`Delivery`] enqueued durably before the source
//! is answered. The dispatcher takes due deliveries off the queue, runs them in parallel — one at
//! a time per (hook, key), so a delete never overtakes the create it follows, and never more than
//! the plugin's own concurrency limit — and settles each: ack, retry with backoff, or dead letter.
//! See [`worker`] for what running one delivery means and why it is effectively-once.
//!
//! Recursion guard: a hook never receives events about its own outputs, and a chain of hooks
//! feeding each other stops at [`MAX_DEPTH`] hops with a dead letter saying so.

pub mod spec;
pub mod status;
pub mod worker;

use crate::ingest::events::idle;
use crate::ingest::events::queue::{Backlog, DeadLetter, Delivery, EventQueue};
use crate::ingest::events::{Event, EventKind};
use crate::ingest::poller::{Pace, Poller};
use crate::ops::notify::Notifier;
use crate::platform::clock::{now_ms, now_us};
use crate::platform::storage::{ObjectInfo, Storage};
use crate::plugins::Registry;
use crate::warehouse::Warehouse;
use anyhow::Result;
use serde::Serialize;
use spec::{HookRecord, HookSpec};
use status::{HookStats, Latency};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Deliveries for a [`TriggerSink`] target are queued under this prefix plus the target's name
/// (hook names start with a letter or digit, so they never collide).
pub const TRIGGER_PREFIX: &str = "~pipeline.";

/// Something besides hooks that object events start: pipelines with an object trigger. Its
/// deliveries ride the same durable queue as hook deliveries, so an event that fires a pipeline
/// survives a crash between being noticed and the run being recorded.
pub trait TriggerSink: Send + Sync {
    /// User prefixes to poll for changes, like hook prefixes.
    fn prefixes(&self) -> Vec<String>;
    /// The targets `event` fires.
    fn targets(&self, event: &Event) -> Vec<String>;
    /// Act on a delivery: `Ok` acknowledges it, `Err` retries it later.
    fn fire(&self, target: &str, event: &Event) -> futures::future::BoxFuture<'static, Result<()>>;
}

/// Longest chain of hooks feeding each other (AWS stops S3 → Lambda loops after ~16).
pub const MAX_DEPTH: u32 = 16;

/// Hook settings of the host.
#[derive(Debug, Clone)]
pub struct HookOptions {
    /// How often the poller lists watched prefixes; `None` disables it (S3 notifications only).
    pub poll_interval: Option<Duration>,
    /// Most of the time the poller may spend listing, in percent: a pass that takes longer than
    /// this share of the interval delays the next one (see [`Pace`]).
    pub poll_cpu_percent: u32,
    /// Deliveries processed at once across all hooks (each also waits for its plugin's slots).
    pub workers: usize,
}

impl Default for HookOptions {
    fn default() -> Self {
        HookOptions {
            poll_interval: Some(Duration::from_secs(1)),
            poll_cpu_percent: 5,
            workers: 32,
        }
    }
}

pub struct Hook {
    record: RwLock<HookRecord>,
    pub stats: HookStats,
    /// Deliveries taken off the queue while paused; handed back on resume.
    parked: Mutex<Vec<Delivery>>,
}

impl Hook {
    pub fn record(&self) -> HookRecord {
        self.record.read().unwrap().clone()
    }

    fn spec(&self) -> HookSpec {
        self.record.read().unwrap().spec.clone()
    }
}

/// `GET /v1/hooks/{name}`.
#[derive(Debug, Serialize)]
pub struct HookStatus {
    #[serde(flatten)]
    pub record: HookRecord,
    pub processed: u64,
    pub duplicates: u64,
    pub superseded: u64,
    pub retracted: u64,
    pub skipped: u64,
    pub failed: u64,
    pub in_flight: u64,
    pub retrying: u64,
    pub pending: u64,
    pub dead_lettered: u64,
    /// Age of the oldest pending event, ms.
    pub lag_ms: u64,
    pub last_error: Option<serde_json::Value>,
    pub latency: Option<Latency>,
}

/// Why a hook change was refused.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{0}")]
    Invalid(String),
    #[error("no hook named {0:?}")]
    NotFound(String),
    #[error(transparent)]
    Storage(#[from] anyhow::Error),
}

pub struct Hooks {
    storage: Storage,
    registry: Arc<Registry>,
    warehouse: Arc<Warehouse>,
    queue: Arc<dyn EventQueue>,
    poller: Arc<Poller>,
    opts: HookOptions,
    hooks: RwLock<HashMap<String, Arc<Hook>>>,
    /// (hook, key) pairs being processed, with deliveries for the same pair waiting behind.
    busy: Mutex<HashMap<(String, String), VecDeque<Delivery>>>,
    workers: Arc<Semaphore>,
    /// Serialises hook record writes.
    writes: tokio::sync::Mutex<()>,
    /// Pipelines started by object events.
    triggers: std::sync::OnceLock<Arc<dyn TriggerSink>>,
    /// Where `hook.dead_lettered` goes.
    notifier: Arc<Notifier>,
}

fn record_key(name: &str) -> String {
    format!("hooks/{name}.json")
}

impl Hooks {
    pub fn new(
        storage: Storage,
        registry: Arc<Registry>,
        warehouse: Arc<Warehouse>,
        queue: Arc<dyn EventQueue>,
        opts: HookOptions,
        notifier: Arc<Notifier>,
    ) -> Hooks {
        Hooks {
            poller: Arc::new(Poller::new(storage.clone())),
            workers: Arc::new(Semaphore::new(opts.workers.max(1))),
            storage,
            registry,
            warehouse,
            queue,
            opts,
            hooks: RwLock::new(HashMap::new()),
            busy: Mutex::new(HashMap::new()),
            writes: tokio::sync::Mutex::new(()),
            triggers: Default::default(),
            notifier,
        }
    }

    pub(crate) fn notify(&self, kind: &str, data: serde_json::Value) {
        self.notifier.emit(kind, data);
    }

    /// Start watching a user prefix for a trigger: objects there now are not events, every
    /// change after this returns is (no-op when polling is off or the prefix is watched).
    pub async fn watch(&self, prefix: &str) -> Result<()> {
        if self.opts.poll_interval.is_some() {
            self.poller.baseline(prefix).await?;
        }
        Ok(())
    }

    pub fn warehouse(&self) -> &Arc<Warehouse> {
        &self.warehouse
    }

    pub fn store_url(&self) -> &str {
        self.storage.url()
    }

    /// Load hook records and pending deliveries; returns (hooks, deliveries recovered).
    pub async fn load(&self) -> Result<(usize, usize)> {
        let mut n = 0;
        for key in self.storage.list("hooks/").await? {
            let Some(rec) = self.storage.get_json::<HookRecord>(&key).await? else {
                continue;
            };
            let dead = self.queue.dead_letters(&rec.name).await?.len() as u64;
            let hook = Arc::new(Hook {
                record: RwLock::new(rec.clone()),
                stats: HookStats::default(),
                parked: Mutex::new(Vec::new()),
            });
            hook.stats
                .dead_lettered
                .store(dead, std::sync::atomic::Ordering::Relaxed);
            self.hooks.write().unwrap().insert(rec.name.clone(), hook);
            n += 1;
        }
        let recovered = self.queue.recover().await?;
        Ok((n, recovered))
    }

    /// Start the dispatcher and the poller; the dispatcher stops taking deliveries when
    /// `shutdown` is cancelled (they stay queued in the store for the next start).
    /// Start the dispatcher and the poller; deliveries for `triggers`' targets (pipelines with
    /// object triggers) go to it.
    pub fn start(
        self: &Arc<Self>,
        shutdown: tokio_util::sync::CancellationToken,
        triggers: Arc<dyn TriggerSink>,
    ) {
        let _ = self.triggers.set(triggers);
        let this = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = this.dispatch() => {}
                _ = shutdown.cancelled() => {}
            }
        });
        if let Some(interval) = self.opts.poll_interval {
            let this = self.clone();
            let pace = Pace {
                interval,
                cpu_percent: self.opts.poll_cpu_percent,
            };
            tokio::spawn(async move { this.poll_loop(pace).await });
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<Hook>> {
        self.hooks.read().unwrap().get(name).cloned()
    }

    pub fn list(&self) -> Vec<HookRecord> {
        let mut v: Vec<_> = self
            .hooks
            .read()
            .unwrap()
            .values()
            .map(|h| h.record())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Create or replace a hook. Returns true if it was created.
    pub async fn put(&self, name: &str, spec: HookSpec) -> Result<bool, HookError> {
        use crate::runtime::World;
        if !crate::platform::names::valid_name(name) {
            return Err(HookError::Invalid(format!(
                "{name:?} is not a hook name (letters, digits, '-', '_')"
            )));
        }
        spec.validate().map_err(HookError::Invalid)?;
        let entry = self.registry.get(&spec.plugin).ok_or_else(|| {
            HookError::Invalid(format!("plugin: no plugin named {:?}", spec.plugin))
        })?;
        let world = entry.live().prepared.world();
        if matches!(world, World::Trainer | World::Http) {
            return Err(HookError::Invalid(format!(
                "plugin: {} is a {world}; hooks run collectors, cleaners and transforms",
                spec.plugin
            )));
        }
        let _w = self.writes.lock().await;
        // Baseline before the hook exists, so objects already there are not events but every
        // write after this call returns is.
        if spec.dataset_source().is_none() && self.opts.poll_interval.is_some() {
            self.poller.baseline(&spec.prefix).await?;
        }
        let now = now_ms();
        let existing = self.get(name);
        let record = HookRecord {
            name: name.to_string(),
            spec,
            paused: existing.as_ref().is_some_and(|h| h.record().paused),
            created_ms: existing.as_ref().map_or(now, |h| h.record().created_ms),
            updated_ms: now,
        };
        self.storage.put_json(&record_key(name), &record).await?;
        match existing {
            Some(h) => {
                let old_prefix = std::mem::replace(&mut *h.record.write().unwrap(), record)
                    .spec
                    .prefix;
                self.forget_unwatched(&old_prefix).await?;
                Ok(false)
            }
            None => {
                let hook = Arc::new(Hook {
                    record: RwLock::new(record),
                    stats: HookStats::default(),
                    parked: Mutex::new(Vec::new()),
                });
                self.hooks.write().unwrap().insert(name.to_string(), hook);
                Ok(true)
            }
        }
    }

    /// Delete a hook with its pending deliveries and dead letters. Its datasets stay.
    pub async fn delete(&self, name: &str) -> Result<bool, HookError> {
        let _w = self.writes.lock().await;
        let Some(old) = self.hooks.write().unwrap().remove(name) else {
            return Ok(false);
        };
        self.storage.delete(&record_key(name)).await?;
        self.queue.purge(name).await?;
        self.forget_unwatched(&old.record().spec.prefix).await?;
        Ok(true)
    }

    /// Pause (events are still accepted and kept) or resume (kept events run).
    pub async fn set_paused(&self, name: &str, paused: bool) -> Result<HookRecord, HookError> {
        let _w = self.writes.lock().await;
        let hook = self
            .get(name)
            .ok_or_else(|| HookError::NotFound(name.into()))?;
        let mut record = hook.record();
        record.paused = paused;
        record.updated_ms = now_ms();
        self.storage.put_json(&record_key(name), &record).await?;
        // The flag changes under the parked lock, which the dispatcher holds while it checks the
        // flag and parks: no delivery can be parked after the resume drained the list.
        let mut parked = hook.parked.lock().unwrap();
        *hook.record.write().unwrap() = record.clone();
        if !paused {
            for d in parked.drain(..) {
                self.queue.release(d);
            }
        }
        Ok(record)
    }

    /// Drop the poller's state for a prefix no hook watches any more, so a hook created on it
    /// later starts from a fresh baseline instead of reporting what happened in between.
    async fn forget_unwatched(&self, prefix: &str) -> Result<()> {
        if !self.watched_prefixes().iter().any(|p| p == prefix) {
            self.poller.forget(prefix).await?;
        }
        Ok(())
    }

    pub async fn dead_letters(&self, name: &str) -> Result<Vec<DeadLetter>, HookError> {
        self.get(name)
            .ok_or_else(|| HookError::NotFound(name.into()))?;
        Ok(self.queue.dead_letters(name).await?)
    }

    /// Replay a hook's dead letters; returns how many.
    pub async fn redrive(&self, name: &str) -> Result<usize, HookError> {
        let _w = self.writes.lock().await;
        let hook = self
            .get(name)
            .ok_or_else(|| HookError::NotFound(name.into()))?;
        let n = self.queue.redrive(name).await?;
        let _ = hook.stats.dead_lettered.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |v| Some(v.saturating_sub(n as u64)),
        );
        Ok(n)
    }

    pub fn status(&self, name: &str) -> Option<HookStatus> {
        let hook = self.get(name)?;
        let s = &hook.stats;
        let Backlog {
            pending,
            retrying,
            oldest_ms,
        } = self.queue.backlog(name);
        Some(HookStatus {
            record: hook.record(),
            processed: HookStats::get(&s.processed),
            duplicates: HookStats::get(&s.duplicates),
            superseded: HookStats::get(&s.superseded),
            retracted: HookStats::get(&s.retracted),
            skipped: HookStats::get(&s.skipped),
            failed: HookStats::get(&s.failed),
            in_flight: HookStats::get(&s.in_flight),
            retrying,
            pending,
            dead_lettered: HookStats::get(&s.dead_lettered),
            lag_ms: oldest_ms.map_or(0, |o| now_ms().saturating_sub(o)),
            last_error: s
                .last_error()
                .map(|(t, m)| serde_json::json!({"time_ms": t, "message": m})),
            latency: s.latency(),
        })
    }

    /// Enqueue an event for every hook it fires; returns how many. When this returns `Ok`, the
    /// deliveries survive a crash.
    pub async fn publish(&self, event: &Event) -> Result<usize> {
        let targets: Vec<String> = self
            .hooks
            .read()
            .unwrap()
            .values()
            .filter_map(|h| {
                let r = h.record.read().unwrap();
                (r.spec.matches(&event.key, event.kind) && !event.written_by(&r.name))
                    .then(|| r.name.clone())
            })
            .collect();
        for hook in &targets {
            self.queue
                .enqueue(Delivery::new(hook, event.clone()))
                .await?;
        }
        let mut fired = targets.len();
        if let Some(sink) = self.triggers.get() {
            for target in sink.targets(event) {
                let name = format!("{TRIGGER_PREFIX}{target}");
                self.queue
                    .enqueue(Delivery::new(&name, event.clone()))
                    .await?;
                fired += 1;
            }
        }
        Ok(fired)
    }

    /// An object was written through the host (the write began at `started_us`, which event
    /// latency is measured from): publish its event and tell the poller.
    pub async fn object_written(&self, info: &ObjectInfo, started_us: u64) -> Result<usize> {
        let mut ev = Event::object(
            self.storage.url(),
            &info.key,
            EventKind::Created,
            Some(info.size),
            info.etag.clone(),
            info.version.clone(),
            None,
            crate::ingest::events::Source::Api,
        );
        ev.time_us = started_us;
        // Noted only once published: if publishing fails, the poller still reports the write.
        let n = self.publish(&ev).await?;
        self.poller.note(&info.key, Some(info));
        Ok(n)
    }

    /// An object was deleted through the host.
    pub async fn object_deleted(&self, last: Option<&ObjectInfo>, key: &str) -> Result<usize> {
        let ev = Event::object(
            self.storage.url(),
            key,
            EventKind::Deleted,
            None,
            last.and_then(|o| o.etag.clone()),
            last.and_then(|o| o.version.clone()),
            Some(now_us().to_string()),
            crate::ingest::events::Source::Api,
        );
        let n = self.publish(&ev).await?;
        self.poller.note(key, None);
        Ok(n)
    }

    /// The distinct user prefixes hooks watch. Each is scanned with its own state, even when
    /// one covers another: merging them would let a new, wider prefix's baseline swallow a
    /// change the narrower one had not reported yet. Overlapping scans report the same object
    /// version with the same dedupe id, so the overlap costs listings, not duplicates.
    fn watched_prefixes(&self) -> Vec<String> {
        let mut p: Vec<String> = self
            .list()
            .into_iter()
            .filter(|r| r.spec.dataset_source().is_none())
            .map(|r| r.spec.prefix)
            .collect();
        if let Some(sink) = self.triggers.get() {
            p.extend(sink.prefixes());
        }
        p.sort();
        p.dedup();
        p
    }

    async fn poll_loop(self: Arc<Self>, pace: Pace) {
        loop {
            let started = std::time::Instant::now();
            let watched = self.watched_prefixes();
            for p in &watched {
                if let Err(e) = self.poll_once(p).await {
                    tracing::warn!(prefix = p, "poll failed: {e:#}");
                }
            }
            // Prefixes that lost their watcher (or were baselined again by a pass that raced
            // a hook's deletion) leave memory, so host writes under them stop piling up there.
            let watched = self.watched_prefixes().into_iter().chain(watched);
            if let Err(e) = self.poller.retain(&watched.collect::<Vec<_>>()).await {
                tracing::warn!("letting go of unwatched prefixes failed: {e:#}");
            }
            let pass = started.elapsed();
            let pause = pace.pause_after(pass);
            self.poller.record_pass(pass, pause);
            tokio::time::sleep(pause).await;
        }
    }

    /// The poller's last pass: its duration and its period (start to next start).
    pub fn poll_stats(&self) -> (Duration, Duration) {
        self.poller.pass_stats()
    }

    async fn poll_once(&self, prefix: &str) -> Result<()> {
        // A local listing is CPU work: the pass runs at low priority (see `events::idle`). An S3
        // listing is round trips, and stays here: the HTTP client's pooled connections are
        // driven by the runtime that opened them, which must not be the low-priority one.
        let (events, state) = if self.storage.lists_locally() {
            let (poller, owned, store) = (
                self.poller.clone(),
                prefix.to_string(),
                self.storage.url().to_string(),
            );
            idle::spawn(async move { poller.scan(&owned, &store).await }).await??
        } else {
            self.poller.scan(prefix, self.storage.url()).await?
        };
        for ev in &events {
            self.publish(ev).await?;
        }
        if let Some(s) = state {
            self.poller.commit(s).await?;
        }
        Ok(())
    }

    /// Hand a trigger delivery to its sink; acknowledge once it took it, else retry.
    fn fire_trigger(self: &Arc<Self>, target: String, d: Delivery) {
        let this = self.clone();
        tokio::spawn(async move {
            let fired = match this.triggers.get() {
                Some(sink) => sink.fire(&target, &d.event).await,
                None => Ok(()),
            };
            let settled = match fired {
                Ok(()) => this.queue.ack(&d).await,
                Err(e) => {
                    tracing::warn!(target, key = d.event.key, "trigger failed, retrying: {e:#}");
                    this.queue
                        .retry(d.clone(), format!("{e:#}"), Duration::from_secs(1), false)
                        .await
                }
            };
            if let Err(e) = settled {
                tracing::warn!(target, "settling a trigger delivery: {e:#}");
            }
        });
    }

    async fn dispatch(self: Arc<Self>) {
        loop {
            let d = self.queue.next().await;
            if let Some(target) = d.hook.strip_prefix(TRIGGER_PREFIX) {
                self.fire_trigger(target.to_string(), d);
                continue;
            }
            let Some(hook) = self.get(&d.hook) else {
                // The hook was deleted; its queue entries are purged already.
                let _ = self.queue.ack(&d).await;
                continue;
            };
            {
                let mut parked = hook.parked.lock().unwrap();
                if hook.record.read().unwrap().paused {
                    parked.push(d);
                    continue;
                }
            }
            let pair = (d.hook.clone(), d.event.key.clone());
            {
                let mut busy = self.busy.lock().unwrap();
                if let Some(waiting) = busy.get_mut(&pair) {
                    waiting.push_back(d);
                    continue;
                }
                busy.insert(pair.clone(), VecDeque::new());
            }
            let Ok(permit) = self.workers.clone().acquire_owned().await else {
                return;
            };
            let this = self.clone();
            tokio::spawn(async move {
                let mut next = Some(d);
                while let Some(d) = next {
                    this.run(&hook, d).await;
                    let mut busy = this.busy.lock().unwrap();
                    next = busy.get_mut(&pair).and_then(VecDeque::pop_front);
                    if next.is_none() {
                        busy.remove(&pair);
                    }
                }
                drop(permit);
            });
        }
    }
}
