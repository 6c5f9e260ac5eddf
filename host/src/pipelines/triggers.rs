//! What starts pipeline runs besides a caller: cron schedules, and object events delivered
//! through the hooks' durable queue, each acted on once per object version.

use super::record::Trigger;
use super::{PipelineError, Pipelines, spec};
use crate::ingest::events::{Event, EventKind};
use crate::ingest::hooks::TriggerSink;
use crate::warehouse::parse_part_key;
use anyhow::Result;
use std::sync::{Arc, Weak};

impl Pipelines {
    /// What the hooks' dispatcher hands deliveries for pipelines' object triggers to.
    pub fn trigger_sink(&self) -> Arc<dyn TriggerSink> {
        Arc::new(Sink(self.me.clone()))
    }

    /// (Re)start the cron task of a pipeline.
    pub(super) fn schedule(&self, name: &str) {
        let mut map = self.pipelines.write().unwrap();
        let Some(entry) = map.get_mut(name) else {
            return;
        };
        if let Some(c) = entry.cron.take() {
            c.abort();
        }
        let Some(line) = entry.record.spec.triggers.cron.clone() else {
            return;
        };
        let Ok(cron) = spec::cron(&line) else {
            return;
        };
        let (me, name) = (self.me.clone(), name.to_string());
        entry.cron = Some(tokio::spawn(async move {
            let mut last: Option<chrono::DateTime<chrono::Utc>> = None;
            loop {
                let now = chrono::Utc::now();
                // A timer that wakes a hair early must not find the same occurrence again.
                let from = match last {
                    Some(l) if l >= now => l,
                    _ => now,
                };
                let Ok(next) = cron.find_next_occurrence(&from, false) else {
                    return;
                };
                last = Some(next);
                let wait = (next - now).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
                let Some(this) = me.upgrade() else { return };
                let trigger = Trigger {
                    kind: "cron".into(),
                    detail: Some(next.to_rfc3339()),
                    coalesced: 0,
                };
                if let Err(e) = this.submit(&name, trigger).await {
                    tracing::warn!(pipeline = name, "cron trigger: {e}");
                }
            }
        }));
    }

    /// Whether a pipeline already acted on an object event (by its per-version id).
    fn seen(&self, pipeline: &str, event: &str) -> bool {
        let seen = self.seen_events.lock().unwrap();
        seen.get(pipeline)
            .is_some_and(|ids| ids.iter().any(|e| e == event))
    }

    /// Remember that a pipeline acted on an object event (the last few thousand per pipeline).
    fn saw(&self, pipeline: &str, event: &str) {
        const REMEMBERED: usize = 4096;
        let mut seen = self.seen_events.lock().unwrap();
        let ids = seen.entry(pipeline.to_string()).or_default();
        if ids.len() == REMEMBERED {
            ids.pop_front();
        }
        ids.push_back(event.to_string());
    }

    /// Pipelines an object event starts.
    fn triggered_by(&self, ev: &Event) -> Vec<String> {
        if ev.kind != EventKind::Created {
            return vec![];
        }
        let map = self.pipelines.read().unwrap();
        map.values()
            .filter(|e| e.record.spec.triggers.on_new_objects)
            .filter(|e| {
                let s = &e.record.spec.source;
                match (&s.prefix, &s.dataset) {
                    (Some(p), _) => {
                        ev.key.starts_with(p.as_str())
                            && s.suffix.as_deref().is_none_or(|x| ev.key.ends_with(x))
                    }
                    (None, Some(d)) => parse_part_key(&ev.key).is_some_and(|(n, _)| n == d),
                    _ => false,
                }
            })
            .map(|e| e.record.name.clone())
            .collect()
    }
}

/// The pipelines' side of the hooks' queue.
struct Sink(Weak<Pipelines>);

impl TriggerSink for Sink {
    fn prefixes(&self) -> Vec<String> {
        let Some(p) = self.0.upgrade() else {
            return vec![];
        };
        let map = p.pipelines.read().unwrap();
        map.values()
            .filter(|e| e.record.spec.triggers.on_new_objects)
            .filter_map(|e| e.record.spec.source.prefix.clone())
            .collect()
    }

    fn targets(&self, event: &Event) -> Vec<String> {
        self.0
            .upgrade()
            .map(|p| p.triggered_by(event))
            .unwrap_or_default()
    }

    fn fire(&self, target: &str, event: &Event) -> futures::future::BoxFuture<'static, Result<()>> {
        let (me, target, key) = (self.0.clone(), target.to_string(), event.key.clone());
        let id = event.id.clone();
        Box::pin(async move {
            let Some(p) = me.upgrade() else {
                return Ok(());
            };
            if p.seen(&target, &id) {
                return Ok(());
            }
            let trigger = Trigger {
                kind: "object".into(),
                detail: Some(key),
                coalesced: 0,
            };
            match p.submit(&target, trigger).await {
                Ok(_) => {
                    p.saw(&target, &id);
                    Ok(())
                }
                Err(PipelineError::NotFound(_)) => Ok(()),
                Err(e) => Err(anyhow::anyhow!("{e}")),
            }
        })
    }
}
