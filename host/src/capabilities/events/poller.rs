//! Change detection by listing, for stores that cannot notify (local files, Garage).
//!
//! Each watched prefix keeps the map key → version token (etag, else version, else size+mtime) it
//! last saw, persisted at `events/poller/{hash}.json`. A scan lists the prefix and reports keys
//! that are new or whose token changed (created) and keys that vanished (deleted); the caller
//! enqueues those events and only then [`Poller::commit`]s the new map, so a crash in between
//! re-reports the same versions — with the same dedupe ids — rather than losing them. Because the
//! map is persisted, a restart does not re-report objects already seen.
//!
//! A prefix seen for the first time is *baselined*: its current objects are recorded without
//! events, as S3 notifications only cover writes made after they are configured. Hook creation
//! baselines its prefix before it returns, so every write after that is reported.
//!
//! A pass costs time in proportion to the objects under the watched prefixes (~10 µs each on
//! local disk: 60k objects kept a core 60% busy at one pass a second), so [`Pace`] spaces passes
//! out as they grow expensive. Writes through the host and S3 notifications do not wait for a
//! pass; only writes made behind the host's back are found later under a large prefix.

use super::{Event, EventKind, Source, digest};
use crate::capabilities::storage::{ObjectInfo, Storage};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the poller saw under one prefix: key → version token.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Seen {
    prefix: String,
    keys: BTreeMap<String, String>,
}

pub struct Poller {
    storage: Storage,
    /// Per watched prefix: what was seen (absent until loaded from the store).
    seen: Arc<Mutex<HashMap<String, Seen>>>,
    /// Duration of the last pass over every prefix, and the time from its start to the next
    /// pass's start, in µs (for `/metrics`).
    last_pass_us: AtomicU64,
    last_period_us: AtomicU64,
}

/// How often passes run: every `interval`, but no more often than keeps listing within
/// `cpu_percent` of the time. The pass duration is wall time, so a pass slowed by a busy host
/// also spaces the next one out: polling yields to the work it feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    pub interval: Duration,
    pub cpu_percent: u32,
}

impl Pace {
    /// The wait after a pass that took `pass` before the next one starts.
    pub fn pause_after(&self, pass: Duration) -> Duration {
        let pct = self.cpu_percent.clamp(1, 100);
        let budget = pass * (100 - pct) / pct;
        self.interval.saturating_sub(pass).max(budget)
    }
}

fn state_key(prefix: &str) -> String {
    format!("events/poller/{}.json", digest(&[prefix]))
}

/// The token that changes when the object does (etag, else version, else size and mtime).
pub fn token(o: &ObjectInfo) -> String {
    super::version_token(o.etag.as_deref(), o.version.as_deref())
        .unwrap_or_else(|| format!("{}-{}", o.size, o.modified_ms))
}

impl Poller {
    pub fn new(storage: Storage) -> Poller {
        Poller {
            storage,
            seen: Arc::new(Mutex::new(HashMap::new())),
            last_pass_us: AtomicU64::new(0),
            last_period_us: AtomicU64::new(0),
        }
    }

    /// Load a prefix's state into memory if it is not there yet; false if it has none.
    async fn load(&self, prefix: &str) -> Result<bool> {
        if self.seen.lock().unwrap().contains_key(prefix) {
            return Ok(true);
        }
        let stored: Option<Seen> = self.storage.get_json(&state_key(prefix)).await?;
        let found = stored.is_some();
        if let Some(s) = stored {
            self.seen
                .lock()
                .unwrap()
                .entry(prefix.to_string())
                .or_insert(s);
        }
        Ok(found)
    }

    /// Record a finished pass and the pause after it.
    pub fn record_pass(&self, pass: Duration, pause: Duration) {
        self.last_pass_us
            .store(pass.as_micros() as u64, Ordering::Relaxed);
        self.last_period_us
            .store((pass + pause).as_micros() as u64, Ordering::Relaxed);
    }

    /// The last pass's duration and its period (start to next start).
    pub fn pass_stats(&self) -> (Duration, Duration) {
        (
            Duration::from_micros(self.last_pass_us.load(Ordering::Relaxed)),
            Duration::from_micros(self.last_period_us.load(Ordering::Relaxed)),
        )
    }

    async fn list(&self, prefix: &str) -> Result<BTreeMap<String, ObjectInfo>> {
        Ok(self
            .storage
            .list_info(prefix)
            .await?
            .into_iter()
            .filter(|o| {
                o.key.starts_with(prefix) && !crate::capabilities::storage::is_reserved(&o.key)
            })
            .map(|o| (o.key.clone(), o))
            .collect())
    }

    /// Record the prefix's current objects as seen, without events, unless it has a state already.
    pub async fn baseline(&self, prefix: &str) -> Result<()> {
        if self.load(prefix).await? {
            return Ok(());
        }
        let keys = self
            .list(prefix)
            .await?
            .into_iter()
            .map(|(k, o)| (k, token(&o)))
            .collect();
        self.commit(Seen {
            prefix: prefix.to_string(),
            keys,
        })
        .await
    }

    /// List a prefix and report what changed since the last commit. Returns the events and the
    /// state to [`Poller::commit`] once they are safely enqueued.
    pub async fn scan(&self, prefix: &str, store: &str) -> Result<(Vec<Event>, Option<Seen>)> {
        if !self.load(prefix).await? {
            self.baseline(prefix).await?;
            return Ok((Vec::new(), None));
        }
        let now = self.list(prefix).await?;
        let (seen, prefix, store) = (self.seen.clone(), prefix.to_string(), store.to_string());
        Ok(tokio::task::spawn_blocking(move || diff(&seen, &prefix, &store, now)).await?)
    }

    /// Forget a prefix's state (no hook watches it any more).
    pub async fn forget(&self, prefix: &str) -> Result<()> {
        self.seen.lock().unwrap().remove(prefix);
        self.storage.delete(&state_key(prefix)).await
    }

    /// Persist a scan's new state (encoded off the async threads: it has an entry per object).
    pub async fn commit(&self, seen: Seen) -> Result<()> {
        let (body, seen) =
            tokio::task::spawn_blocking(move || serde_json::to_vec(&seen).map(|b| (b, seen)))
                .await??;
        self.storage.put(&state_key(&seen.prefix), body).await?;
        self.seen.lock().unwrap().insert(seen.prefix.clone(), seen);
        Ok(())
    }

    /// A write or delete made through the host (which emitted its own event): update the
    /// in-memory maps of prefixes covering the key so the next scan does not report it again.
    /// Persisted with the next commit; a crash before that only costs a duplicate event.
    pub fn note(&self, key: &str, object: Option<&ObjectInfo>) {
        let mut seen = self.seen.lock().unwrap();
        for s in seen.values_mut().filter(|s| key.starts_with(&s.prefix)) {
            match object {
                Some(o) => s.keys.insert(key.to_string(), token(o)),
                None => s.keys.remove(key),
            };
        }
    }
}

/// Lookups per hold of the state lock while comparing: writes through the host `note` under
/// it, so they wait for at most one chunk (~1 ms), never for a whole pass over a large prefix.
const CHUNK: usize = 4096;

/// Compare a listing with what was seen under `prefix`: created or changed keys, then vanished
/// ones. Runs on a blocking thread; `None` state when nothing changed (or the prefix was
/// forgotten meanwhile: no hook watches it any more).
fn diff(
    seen: &Mutex<HashMap<String, Seen>>,
    prefix: &str,
    store: &str,
    now: BTreeMap<String, ObjectInfo>,
) -> (Vec<Event>, Option<Seen>) {
    let mut events = Vec::new();
    let mut listed = now.iter().peekable();
    while listed.peek().is_some() {
        let map = seen.lock().unwrap();
        let Some(before) = map.get(prefix) else {
            return (Vec::new(), None);
        };
        for (key, o) in listed.by_ref().take(CHUNK) {
            if before.keys.get(key) != Some(&token(o)) {
                events.push(Event::object(
                    store,
                    key,
                    EventKind::Created,
                    Some(o.size),
                    o.etag.clone(),
                    o.version.clone(),
                    None,
                    Source::Poller,
                ));
            }
        }
    }
    let mut cursor: Option<String> = None;
    loop {
        let map = seen.lock().unwrap();
        let Some(before) = map.get(prefix) else {
            return (Vec::new(), None);
        };
        let from = cursor.map_or(Bound::Unbounded, Bound::Excluded);
        let mut last = None;
        for (key, t) in before.keys.range((from, Bound::Unbounded)).take(CHUNK) {
            if !now.contains_key(key) {
                events.push(Event::object(
                    store,
                    key,
                    EventKind::Deleted,
                    None,
                    Some(t.clone()),
                    None,
                    None,
                    Source::Poller,
                ));
            }
            last = Some(key);
        }
        match last {
            Some(k) => cursor = Some(k.clone()),
            None => break,
        }
    }
    if events.is_empty() {
        return (events, None);
    }
    let after = Seen {
        prefix: prefix.to_string(),
        keys: now.into_iter().map(|(k, o)| (k, token(&o))).collect(),
    };
    (events, Some(after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn changes_across_several_chunks_are_all_reported() {
        let storage = Storage::open("memory://", &Default::default()).unwrap();
        let n = 2 * CHUNK + 100;
        for i in 0..n {
            storage.put(&format!("raw/{i:06}"), "x").await.unwrap();
        }
        let poller = Poller::new(storage.clone());
        poller.baseline("raw/").await.unwrap();
        for i in (0..n).step_by(2) {
            storage.delete(&format!("raw/{i:06}")).await.unwrap();
        }
        for i in n..n + CHUNK + 7 {
            storage.put(&format!("raw/{i:06}"), "y").await.unwrap();
        }
        let (ev, state) = poller.scan("raw/", "m").await.unwrap();
        let count = |k| ev.iter().filter(|e| e.kind == k).count();
        assert_eq!(count(EventKind::Deleted), n.div_ceil(2));
        assert_eq!(count(EventKind::Created), CHUNK + 7);
        poller.commit(state.unwrap()).await.unwrap();
        assert!(poller.scan("raw/", "m").await.unwrap().0.is_empty());
    }

    #[test]
    fn pace_keeps_the_interval_for_cheap_passes_and_the_budget_for_expensive_ones() {
        let pace = Pace {
            interval: Duration::from_secs(1),
            cpu_percent: 5,
        };
        let ms = Duration::from_millis;
        // Cheap: the rest of the interval.
        assert_eq!(pace.pause_after(ms(10)), ms(990));
        // 100 ms at 5%: 1.9 s of pause, so a pass every 2 s.
        assert_eq!(pace.pause_after(ms(100)), ms(1900));
        assert_eq!(pace.pause_after(ms(600)), ms(11_400));
        // 100% means back to back once a pass outlasts the interval; 0 is taken as 1%.
        let full = Pace {
            cpu_percent: 100,
            ..pace
        };
        assert_eq!(full.pause_after(ms(1500)), ms(0));
        let zero = Pace {
            cpu_percent: 0,
            ..pace
        };
        assert_eq!(zero.pause_after(ms(100)), ms(9900));
    }

    #[tokio::test]
    async fn baseline_then_create_change_delete_survives_restart() {
        let storage = Storage::open("memory://", &Default::default()).unwrap();
        storage.put("raw/old.csv", "a").await.unwrap();
        let poller = Poller::new(storage.clone());
        poller.baseline("raw/").await.unwrap();
        let (ev, state) = poller.scan("raw/", "m").await.unwrap();
        assert!(
            ev.is_empty() && state.is_none(),
            "baseline objects are not events"
        );

        storage.put("raw/new.csv", "b").await.unwrap();
        storage.put("raw/old.csv", "changed").await.unwrap();
        let (ev, state) = poller.scan("raw/", "m").await.unwrap();
        let mut got: Vec<_> = ev.iter().map(|e| (e.key.as_str(), e.kind)).collect();
        got.sort_by_key(|(k, _)| *k);
        assert_eq!(
            got,
            vec![
                ("raw/new.csv", EventKind::Created),
                ("raw/old.csv", EventKind::Created)
            ]
        );
        // Not committed yet (as if the host crashed before enqueueing): reported again.
        let again = Poller::new(storage.clone());
        assert_eq!(again.scan("raw/", "m").await.unwrap().0.len(), 2);
        poller.commit(state.unwrap()).await.unwrap();
        // A restarted poller reads the committed state: nothing new.
        let restarted = Poller::new(storage.clone());
        assert!(restarted.scan("raw/", "m").await.unwrap().0.is_empty());

        storage.delete("raw/new.csv").await.unwrap();
        let (ev, _) = restarted.scan("raw/", "m").await.unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (ev[0].key.as_str(), ev[0].kind),
            ("raw/new.csv", EventKind::Deleted)
        );
    }
}
