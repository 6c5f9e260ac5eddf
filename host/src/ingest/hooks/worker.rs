//! Running one delivery, and why the outcome is effectively-once.
//!
//! A `created` delivery's output becomes dataset part `{delivery id}` — the id is a hash of the
//! hook and the object version — so:
//! - a redelivery of a version already committed is detected (the part's manifest exists) and
//!   only re-announces the part downstream;
//! - a crash after writing the Parquet file but before the manifest rewrites the same part;
//! - the same version reported by two sources (API write, then poller) is one delivery.
//!
//! A newer version of the same object replaces the parts the hook made from older versions
//! (the dataset mirrors its sources); a `deleted` event retracts them. An event whose object has
//! changed since (the stored etag differs) is *superseded*: the newer version has its own event.
//!
//! Failures: plugin errors on this input (invalid input/config), schema mismatches, lineage loops
//! and vanished plugins are permanent and dead-letter at once; traps, deadlines and other plugin
//! failures retry with backoff up to `max_retries`; storage errors retry without counting, so a
//! store outage pauses work instead of dead-lettering it.

use super::{Hook, HookStats, Hooks, MAX_DEPTH};
use crate::ingest::events::queue::Delivery;
use crate::ingest::events::{Event, EventKind};
use crate::platform::clock::{now_ms, now_us};
use crate::platform::formats::{self, Format};
use crate::plugins::CallError;
use crate::runtime::Source as PluginSource;
use crate::runtime::World;
use crate::runtime::{Call, InvokeError};
use crate::warehouse::{CommitError, PartLineage, PartManifest, parse_part_key, part_key};
use std::sync::Arc;
use std::time::Duration;

/// How a delivery ended.
enum Settle {
    Processed,
    Duplicate,
    Superseded,
    Retracted(usize),
    Skipped(String),
    /// Worth another attempt (counts towards `max_retries`).
    Retry(String),
    /// The store failed: retry later without counting an attempt.
    Transient(String),
    /// Never going to work: dead-letter now.
    Dead(String),
}

/// Upper bound on waiting between settlement attempts when the store is down.
const SETTLE_BACKOFF_MAX: Duration = Duration::from_secs(5);

fn transient(e: impl std::fmt::Display) -> Settle {
    Settle::Transient(format!("store: {e:#}"))
}

/// The media type to hand a collector for a key.
pub(crate) fn content_type(key: &str) -> &'static str {
    match key
        .rsplit('.')
        .next()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => "text/csv",
        Some("ndjson" | "jsonl") => "application/x-ndjson",
        Some("json") => "application/json",
        Some("arrow" | "arrows") => formats::ARROW_STREAM,
        Some("parquet") => "application/vnd.apache.parquet",
        _ => "application/octet-stream",
    }
}

impl Hooks {
    /// Process a delivery and settle it with the queue.
    pub(super) async fn run(&self, hook: &Arc<Hook>, d: Delivery) {
        let s = &hook.stats;
        HookStats::inc(&s.in_flight);
        // A bug must not wedge this key's queue: a panic is a failed attempt like any other.
        let settle =
            futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(self.process(hook, &d)))
                .await
                .unwrap_or_else(|_| Settle::Retry("internal error: processing panicked".into()));
        s.in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        let spec = hook.spec();
        self.settle(
            hook,
            &d,
            &settle,
            spec.max_retries(),
            spec.backoff(d.attempts + 1),
        )
        .await;
        self.count(hook, &d, settle, spec.max_retries());
    }

    /// Tell the queue how the delivery ended, retrying while the store refuses (a full or
    /// unreachable store must not lose the outcome).
    async fn settle(
        &self,
        hook: &Hook,
        d: &Delivery,
        settle: &Settle,
        max_retries: u32,
        retry_after: Duration,
    ) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let r = match settle {
                Settle::Processed
                | Settle::Duplicate
                | Settle::Superseded
                | Settle::Retracted(_)
                | Settle::Skipped(_) => self.queue.ack(d).await,
                Settle::Retry(e) if d.attempts >= max_retries => {
                    let why = format!("failed {} times; last error: {e}", d.attempts + 1);
                    self.queue.dead_letter(d, &why).await
                }
                Settle::Retry(e) => {
                    self.queue
                        .retry(d.clone(), e.clone(), retry_after, true)
                        .await
                }
                Settle::Transient(e) => {
                    let later = Duration::from_secs(1);
                    self.queue.retry(d.clone(), e.clone(), later, false).await
                }
                Settle::Dead(reason) => self.queue.dead_letter(d, reason).await,
            };
            let Err(e) = r else { return };
            tracing::warn!(hook = d.hook, "settling a delivery failed, retrying: {e:#}");
            // Shown in the hook's status while it lasts (a full or unreachable store), without
            // the chain: store paths and endpoints go to the log only.
            let shown = format!("settling a delivery failed, retrying: {e}");
            hook.stats.error(now_ms(), &shown);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(SETTLE_BACKOFF_MAX);
        }
    }

    /// Count a settled delivery in the hook's stats.
    fn count(&self, hook: &Hook, d: &Delivery, settle: Settle, max_retries: u32) {
        let s = &hook.stats;
        match settle {
            Settle::Processed => {
                HookStats::inc(&s.processed);
                s.record_latency(now_us().saturating_sub(d.event.time_us));
            }
            Settle::Duplicate => HookStats::inc(&s.duplicates),
            Settle::Superseded => HookStats::inc(&s.superseded),
            Settle::Retracted(n) => {
                s.retracted
                    .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            }
            Settle::Skipped(why) => {
                tracing::info!(hook = d.hook, key = d.event.key, "skipped: {why}");
                HookStats::inc(&s.skipped)
            }
            Settle::Retry(e) => {
                HookStats::inc(&s.failed);
                s.error(now_ms(), &e);
                if d.attempts >= max_retries {
                    HookStats::inc(&s.dead_lettered);
                    self.dead_lettered(d, &e);
                }
            }
            Settle::Transient(e) => s.error(now_ms(), &e),
            Settle::Dead(e) => {
                HookStats::inc(&s.failed);
                HookStats::inc(&s.dead_lettered);
                s.error(now_ms(), &e);
                self.dead_lettered(d, &e);
            }
        }
    }

    fn dead_lettered(&self, d: &Delivery, reason: &str) {
        self.notify(
            "hook.dead_lettered",
            serde_json::json!({"hook": d.hook, "key": d.event.key, "delivery": d.id,
                "attempts": d.attempts + 1, "reason": reason}),
        );
    }

    async fn process(&self, hook: &Arc<Hook>, d: &Delivery) -> Settle {
        let ev = &d.event;
        if ev.lineage.depth >= MAX_DEPTH {
            return Settle::Dead(format!(
                "lineage depth limit {MAX_DEPTH} reached at {}: hooks are feeding each other in \
                 a loop (chain started at {})",
                ev.key,
                ev.lineage.root.as_deref().unwrap_or("?")
            ));
        }
        match ev.kind {
            EventKind::Deleted => self.retract(hook, ev, None).await,
            EventKind::Created => self.create(hook, d).await,
        }
    }

    /// Retract what this hook made from `ev.key`, except part `keep` and parts of the object's
    /// current version (a late delete event must not remove a re-created object's rows):
    /// announce each removal downstream first, then remove.
    async fn retract(&self, hook: &Arc<Hook>, ev: &Event, keep: Option<&str>) -> Settle {
        let spec = hook.spec();
        let name = hook.record().name;
        let current = if ev.kind == EventKind::Deleted && parse_part_key(&ev.key).is_none() {
            match self.storage.head(&ev.key).await {
                Ok(info) => info.map(|i| crate::ingest::poller::token(&i)),
                Err(e) => return transient(e),
            }
        } else {
            None
        };
        let doomed = match self
            .warehouse
            .derived(&spec.output, &name, &ev.key, keep, current.as_deref())
            .await
        {
            Ok(r) => r,
            Err(e) => return transient(e),
        };
        for p in &doomed {
            let key = part_key(&spec.output, &p.id);
            let gone = self.part_event(&name, ev, &key, EventKind::Deleted, None);
            if let Err(e) = self.publish(&gone).await {
                return transient(e);
            }
        }
        if let Err(e) = self.warehouse.remove(&spec.output, &doomed).await {
            return transient(e);
        }
        Settle::Retracted(doomed.len())
    }

    /// The event announcing a part this hook committed or removed while handling `cause`.
    fn part_event(
        &self,
        hook: &str,
        cause: &Event,
        key: &str,
        kind: EventKind,
        size: Option<u64>,
    ) -> Event {
        Event::part(
            self.storage.url(),
            key,
            kind,
            size,
            cause.child_lineage(hook),
        )
    }

    async fn announce(
        &self,
        hook: &str,
        cause: &Event,
        output: &str,
        m: &PartManifest,
    ) -> Result<(), Settle> {
        let ev = self.part_event(
            hook,
            cause,
            &part_key(output, &m.id),
            EventKind::Created,
            Some(m.bytes),
        );
        self.publish(&ev).await.map(|_| ()).map_err(transient)
    }

    /// Retract the parts this hook made from older versions of a user object (dataset parts are
    /// immutable and have no older versions).
    async fn replace_older(&self, hook: &Arc<Hook>, d: &Delivery) -> Result<(), Settle> {
        if parse_part_key(&d.event.key).is_some() {
            return Ok(());
        }
        match self.retract(hook, &d.event, Some(&d.id)).await {
            Settle::Retracted(n) => {
                hook.stats
                    .retracted
                    .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            other => Err(other),
        }
    }

    async fn create(&self, hook: &Arc<Hook>, d: &Delivery) -> Settle {
        self.try_create(hook, d)
            .await
            .unwrap_or_else(|settle| settle)
    }

    /// Run the hook's plugin on the event's object and commit its output; `Err` ends the
    /// delivery early (with what to tell the queue).
    async fn try_create(&self, hook: &Arc<Hook>, d: &Delivery) -> Result<Settle, Settle> {
        let ev = &d.event;
        let spec = hook.spec();
        let name = hook.record().name;
        if let Some(m) = self
            .warehouse
            .committed(&spec.output, &d.id)
            .await
            .map_err(transient)?
        {
            // Done before (crash after commit, or the same version reported twice): finish what
            // may not have happened — replacing older versions' parts, announcing this one
            // downstream — and nothing else.
            self.replace_older(hook, d).await?;
            self.announce(&name, ev, &spec.output, &m).await?;
            return Ok(Settle::Duplicate);
        }
        let Some(entry) = self.registry.get(&spec.plugin) else {
            return Err(Settle::Dead(format!(
                "plugin {:?} no longer exists",
                spec.plugin
            )));
        };
        let live = entry.live();
        let input = self.read_input(ev).await?;
        let etag = input.etag.clone();
        let call = plugin_call(live.prepared.world(), &spec.plugin, ev, input).await?;
        let outcome = self
            .registry
            .call_queued(&entry, live, call, spec.config_pairs(), spec.timeout_ms)
            .await
            .map_err(settle_call_error)?;
        let child = ev.child_lineage(&name);
        let lineage = PartLineage {
            hook: child.hook,
            source: Some(ev.key.clone()),
            source_etag: etag,
            depth: child.depth,
            root: child.root,
        };
        let manifest = self
            .warehouse
            .commit(&spec.output, &d.id, outcome.output, lineage)
            .await
            .map_err(|e| match e {
                CommitError::SchemaMismatch { .. } | CommitError::Invalid(_) => {
                    Settle::Dead(e.to_string())
                }
                CommitError::Storage(e) => transient(e),
            })?;
        // Parts made from older versions of this object are replaced by this one.
        self.replace_older(hook, d).await?;
        self.announce(&name, ev, &spec.output, &manifest).await?;
        Ok(Settle::Processed)
    }

    /// The event's input: a dataset part, or a user object checked to be the event's version.
    async fn read_input(&self, ev: &Event) -> Result<Input, Settle> {
        if parse_part_key(&ev.key).is_some() {
            let Some((schema, batches)) =
                self.warehouse.read_part(&ev.key).await.map_err(transient)?
            else {
                return Err(Settle::Skipped(
                    "part was retracted before it was processed".into(),
                ));
            };
            let ipc = formats::encode_ipc(&schema, &batches)
                .map_err(|e| Settle::Dead(format!("reading part {}: {e}", ev.key)))?;
            return Ok(Input {
                raw: ipc,
                etag: None,
                from_part: true,
            });
        }
        let Some((bytes, info)) = self.storage.get_info(&ev.key).await.map_err(transient)? else {
            return Err(Settle::Skipped(
                "object was deleted before it was processed".into(),
            ));
        };
        let now = crate::ingest::poller::token(&info);
        let want = crate::ingest::events::version_token(ev.etag.as_deref(), ev.version.as_deref());
        if want.is_some_and(|w| w != now) {
            return Err(Settle::Superseded);
        }
        Ok(Input {
            raw: bytes.to_vec(),
            etag: Some(now),
            from_part: false,
        })
    }
}

/// What a delivery's plugin reads.
struct Input {
    raw: Vec<u8>,
    /// The object version read (none for dataset parts).
    etag: Option<String>,
    from_part: bool,
}

/// The call `world` takes for `input`: collectors get the raw bytes with a content type,
/// cleaners and transforms an Arrow IPC stream.
async fn plugin_call(world: World, plugin: &str, ev: &Event, input: Input) -> Result<Call, Settle> {
    let Input { raw, from_part, .. } = input;
    match world {
        World::Collector => Ok(Call::Collect(PluginSource {
            content_type: if from_part {
                formats::ARROW_STREAM
            } else {
                content_type(&ev.key)
            }
            .to_string(),
            name: Some(ev.key.clone()),
            data: raw,
        })),
        World::Cleaner | World::Transform => {
            let ipc = if from_part {
                raw
            } else {
                table_input(&ev.key, raw).await.map_err(Settle::Dead)?
            };
            Ok(if world == World::Cleaner {
                Call::Clean(ipc)
            } else {
                Call::FitApply(ipc)
            })
        }
        w @ (World::Trainer | World::Http) => Err(Settle::Dead(format!("{plugin} is a {w}"))),
    }
}

/// How a failed plugin call ends the delivery: bad input or a gone plugin for good, a rate or
/// quota refusal by waiting (without spending an attempt), anything else by a retry.
fn settle_call_error(e: CallError) -> Settle {
    match e {
        CallError::Invoke(
            e @ (InvokeError::InvalidInput(_)
            | InvokeError::InvalidConfig(_)
            | InvokeError::WrongWorld(_)),
        ) => Settle::Dead(e.to_string()),
        CallError::NotFound(p) => Settle::Dead(format!("plugin {p:?} no longer exists")),
        CallError::Limited(r) => Settle::Transient(r.to_string()),
        e => Settle::Retry(e.to_string()),
    }
}

/// A user object as the Arrow IPC stream a cleaner or transform takes, by its suffix.
async fn table_input(key: &str, raw: Vec<u8>) -> Result<Vec<u8>, String> {
    let ct = content_type(key);
    let key = key.to_string();
    tokio::task::spawn_blocking(move || {
        if ct == "application/vnd.apache.parquet" {
            let (schema, batches) = crate::warehouse::parquet::decode(raw.into())
                .map_err(|e| format!("{key}: {e:#}"))?;
            return formats::encode_ipc(&schema, &batches);
        }
        let fmt = Format::from_media_type(ct).ok_or_else(|| {
            format!("cannot read {key} as a table: use .csv, .ndjson, .arrow or .parquet")
        })?;
        formats::to_ipc(fmt, &raw).map_err(|e| format!("{key}: {e}"))
    })
    .await
    .map_err(|e| e.to_string())?
}
