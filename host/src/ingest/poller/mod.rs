//! Change detection by listing, for stores that cannot notify (local files, Garage).
//!
//! Each watched prefix keeps the map key → version-token hash (of the etag, else version, else
//! size+mtime) it last saw, persisted in shards under `events/poller/{digest}/` (see the `shards` module).
//! A pass lists the prefix and reports keys that are new or whose token changed (created) and
//! keys that vanished (deleted); the caller enqueues those events and only then
//! [`Poller::commit`]s them, so a crash in between re-reports the same versions — with the same
//! dedupe ids — rather than losing them. Because the map is persisted, a restart does not
//! re-report objects already seen.
//!
//! A prefix seen for the first time is *baselined*: its current objects are recorded without
//! events, as S3 notifications only cover writes made after they are configured. Hook creation
//! baselines its prefix before it returns, so every write after that is reported.
//!
//! Memory per key. The index in memory is keyed by a 64-bit hash of the object key, with the
//! token hash and the pass that last saw it: ~33 bytes per key, against ~100 when it held the
//! names (a soak writing a new object per request grew the host by that much per object). Names
//! are read back from the shards only for keys that vanished; writes noted since the last flush
//! keep theirs in memory (the latest change per key) until [`FLUSH_AT`] of them are written out
//! together, and a prefix that lost its watcher leaves memory after the next pass
//! ([`Poller::retain`]), so notes for it stop accumulating. Two keys of one prefix with the same
//! 64-bit hash would shadow each other (about one chance in 4·10⁶ for ten million keys).
//!
//! Large prefixes. A pass reads the listing as a stream, a chunk at a time, and never holds it
//! whole. Each entry remembers the pass that last listed (or noted) it, so vanished keys are
//! found without keeping the listing. Objects modified in the last [`SETTLE`] are left to the
//! next pass: a write through the host is noted a moment after it lands, and is not the poller's
//! to report. A pass costs ~9 µs per object on local disk, so [`Pace`] spaces passes out as they
//! grow expensive. Writes through the host and S3 notifications never wait for a pass; only
//! writes made behind the host's back are found later under a large prefix.

mod shards;

use super::events::{Event, EventKind, Source};
use crate::platform::storage::{ObjectInfo, Storage, is_reserved};
use anyhow::Result;
use futures::StreamExt;
use shards::{Change, Shards, key_hash};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long an object must be unchanged before a pass reports it (see the module docs).
pub const SETTLE: Duration = Duration::from_secs(1);

/// Entries compared per hold of the state lock: writes through the host `note` under it, so they
/// wait for at most one chunk, never for a whole pass over a large prefix.
const CHUNK: usize = 1024;

/// Changes kept in memory (with their names) before they are written to the shards. A crash
/// loses at most these, which only makes the next pass report those writes again.
pub const FLUSH_AT: usize = 10_000;

/// One key as last seen.
#[derive(Debug, Clone, Copy)]
struct Mark {
    token: u64,
    /// The pass that last listed or noted it.
    pass: u32,
}

/// One watched prefix.
#[derive(Debug, Default)]
struct Watch {
    /// By [`key_hash`].
    keys: HashMap<u64, Mark>,
    /// The pass under way (or the last one).
    pass: u32,
    /// Changes not yet in the shards, with their names: the latest per key, so rewriting a key
    /// does not grow it.
    unsaved: HashMap<Box<str>, Option<u64>>,
}

impl Watch {
    fn set(&mut self, key: Box<str>, token: Option<u64>, pass: u32) {
        let h = key_hash(&key);
        match token {
            Some(token) => self.keys.insert(h, Mark { token, pass }),
            None => self.keys.remove(&h),
        };
        self.unsaved.insert(key, token);
    }
}

/// What one pass found: the events, and the changes to record once they are enqueued.
#[derive(Default)]
struct Found {
    events: Vec<Event>,
    set: Vec<(String, Option<u64>)>,
}

/// Entries a pass did not see, as (key hash, token hash), and the names known for them.
type Vanished = (Vec<(u64, u64)>, HashMap<u64, String>);

/// What a pass found, to [`Poller::commit`] once its events are enqueued: key → new token hash,
/// or `None` for a vanished key.
#[derive(Debug)]
pub struct Changes {
    prefix: String,
    pass: u32,
    set: Vec<(String, Option<u64>)>,
}

/// A write (token hash) or delete (`None`) through the host, not yet applied to `seen`.
type Note = (Box<str>, Option<u64>);

pub struct Poller {
    storage: Storage,
    /// Per watched prefix: what was seen (absent until loaded from the store).
    seen: Mutex<HashMap<String, Watch>>,
    /// Notes taken while a pass held `seen`: the request path never waits for a pass (which
    /// runs at low priority and may be descheduled holding it). Applied by whoever next holds
    /// `seen`.
    notes: Mutex<Vec<Note>>,
    /// One flush at a time: shards are read, patched and rewritten.
    flushing: tokio::sync::Mutex<()>,
    settle: Duration,
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

/// The token that changes when the object does (etag, else version, else size and mtime).
pub fn token(o: &ObjectInfo) -> String {
    super::events::version_token(o.etag.as_deref(), o.version.as_deref())
        .unwrap_or_else(|| format!("{}-{}", o.size, o.modified_ms))
}

/// 64-bit FNV-1a, stable across builds: token hashes are persisted.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A token as kept.
fn token_hash(token: &str) -> u64 {
    fnv1a(token)
}

impl Poller {
    pub fn new(storage: Storage) -> Poller {
        Poller::with_settle(storage, SETTLE)
    }

    /// A poller that reports objects once they are `settle` old (tests use 0).
    pub fn with_settle(storage: Storage, settle: Duration) -> Poller {
        Poller {
            storage,
            seen: Mutex::new(HashMap::new()),
            notes: Mutex::new(Vec::new()),
            flushing: tokio::sync::Mutex::new(()),
            settle,
            last_pass_us: AtomicU64::new(0),
            last_period_us: AtomicU64::new(0),
        }
    }

    fn shards<'a>(&'a self, prefix: &'a str) -> Shards<'a> {
        Shards {
            storage: &self.storage,
            prefix,
        }
    }

    /// Load a prefix's state into memory if it is not there yet; false if it has none.
    async fn load(&self, prefix: &str) -> Result<bool> {
        if self.seen.lock().unwrap().contains_key(prefix) {
            return Ok(true);
        }
        let mut keys = HashMap::new();
        let found = self
            .shards(prefix)
            .load(|h, token| {
                keys.insert(h, Mark { token, pass: 0 });
            })
            .await?;
        if found {
            let watch = Watch {
                keys,
                ..Watch::default()
            };
            self.seen
                .lock()
                .unwrap()
                .entry(prefix.to_string())
                .or_insert(watch);
        }
        Ok(found)
    }

    /// Write the prefix's unsaved changes to its shards.
    async fn flush(&self, prefix: &str) -> Result<()> {
        let _one = self.flushing.lock().await;
        let unsaved = {
            let mut seen = self.seen.lock().unwrap();
            self.apply_notes(&mut seen);
            match seen.get_mut(prefix) {
                Some(w) => std::mem::take(&mut w.unsaved),
                None => return Ok(()), // forgotten meanwhile
            }
        };
        if unsaved.is_empty() {
            return Ok(());
        }
        let changes: Vec<Change> = unsaved.iter().map(|(k, t)| (k.clone(), *t)).collect();
        let failed = match self.shards(prefix).apply(changes).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        // Put them back for the next flush, under any newer change of the same key.
        if let Some(w) = self.seen.lock().unwrap().get_mut(prefix) {
            let newer = std::mem::replace(&mut w.unsaved, unsaved);
            w.unsaved.extend(newer);
        }
        Err(failed)
    }

    /// Let go of prefixes no hook or trigger watches any more (a pipeline deleted, a hook
    /// deleted while a pass was under way): their unsaved changes are written and their index
    /// leaves memory, so notes for them stop accumulating. The state stays in the store, as
    /// [`Poller::baseline`] finds it if a watcher comes back.
    pub async fn retain(&self, watched: &[String]) -> Result<()> {
        let gone: Vec<String> = self
            .seen
            .lock()
            .unwrap()
            .keys()
            .filter(|p| !watched.contains(p))
            .cloned()
            .collect();
        for prefix in gone {
            self.flush(&prefix).await?;
            let _one = self.flushing.lock().await;
            let mut seen = self.seen.lock().unwrap();
            if seen.get(&prefix).is_some_and(|w| w.unsaved.is_empty()) {
                seen.remove(&prefix);
            }
        }
        Ok(())
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

    /// The prefix's objects as they are listed, `CHUNK` at a time.
    fn listing(
        &self,
        prefix: &str,
    ) -> Result<impl futures::Stream<Item = Vec<Result<ObjectInfo>>> + use<>> {
        let owned = prefix.to_string();
        Ok(self
            .storage
            .list_info_stream(prefix)?
            .filter(move |r| {
                let keep = r
                    .as_ref()
                    .map_or(true, |o| o.key.starts_with(&owned) && !is_reserved(&o.key));
                futures::future::ready(keep)
            })
            .chunks(CHUNK))
    }

    /// Record the prefix's current objects as seen, without events, unless it has a state already.
    pub async fn baseline(&self, prefix: &str) -> Result<()> {
        if self.load(prefix).await? {
            return Ok(());
        }
        let (mut keys, mut entries) = (HashMap::new(), Vec::new());
        let mut listing = std::pin::pin!(self.listing(prefix)?);
        while let Some(chunk) = listing.next().await {
            for o in chunk {
                let o = o?;
                let token = token_hash(&token(&o));
                keys.insert(key_hash(&o.key), Mark { token, pass: 0 });
                entries.push((o.key.into_boxed_str(), Some(token)));
            }
        }
        self.shards(prefix).create(entries).await?;
        let watch = Watch {
            keys,
            ..Watch::default()
        };
        self.seen.lock().unwrap().insert(prefix.to_string(), watch);
        Ok(())
    }

    /// List a prefix and report what changed since the last commit. Returns the events and the
    /// changes to [`Poller::commit`] once they are safely enqueued.
    pub async fn scan(&self, prefix: &str, store: &str) -> Result<(Vec<Event>, Option<Changes>)> {
        if !self.load(prefix).await? {
            self.baseline(prefix).await?;
            return Ok((Vec::new(), None));
        }
        let Some(pass) = self.next_pass(prefix) else {
            return Ok((Vec::new(), None));
        };
        let mut found = Found::default();
        // `false`: forgotten meanwhile (no hook watches it any more).
        if !self.list_changed(prefix, store, pass, &mut found).await?
            || !self.find_vanished(prefix, store, pass, &mut found).await?
        {
            return Ok((Vec::new(), None));
        }
        if found.events.is_empty() {
            let due = self
                .seen
                .lock()
                .unwrap()
                .get(prefix)
                .is_some_and(|w| w.unsaved.len() >= FLUSH_AT);
            if due {
                self.flush(prefix).await?;
            }
            return Ok((found.events, None));
        }
        let changes = Changes {
            prefix: prefix.to_string(),
            pass,
            set: found.set,
        };
        Ok((found.events, Some(changes)))
    }

    /// Number this pass over `prefix`; `None` if nothing watches it.
    fn next_pass(&self, prefix: &str) -> Option<u32> {
        let mut seen = self.seen.lock().unwrap();
        let w = seen.get_mut(prefix)?;
        w.pass = w.pass.wrapping_add(1);
        Some(w.pass)
    }

    /// Created or changed objects: listed with a token other than the one recorded, and settled
    /// (not modified within the settle time, so a write in progress is not reported half done).
    /// Marks every listed key as seen by `pass`.
    async fn list_changed(
        &self,
        prefix: &str,
        store: &str,
        pass: u32,
        found: &mut Found,
    ) -> Result<bool> {
        let settled_before = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000
            - self.settle.as_millis() as i128;
        let mut listing = std::pin::pin!(self.listing(prefix)?);
        while let Some(chunk) = listing.next().await {
            let chunk = chunk.into_iter().collect::<Result<Vec<_>>>()?;
            let mut seen = self.seen.lock().unwrap();
            self.apply_notes(&mut seen);
            let Some(w) = seen.get_mut(prefix) else {
                return Ok(false);
            };
            for o in chunk {
                let t = token_hash(&token(&o));
                let known = w.keys.get_mut(&key_hash(&o.key));
                let same = known.as_ref().is_some_and(|m| m.token == t);
                if let Some(m) = known {
                    m.pass = pass;
                }
                if same || i128::from(o.modified_ms) > settled_before {
                    continue;
                }
                found.events.push(Event::object(
                    store,
                    &o.key,
                    EventKind::Created,
                    Some(o.size),
                    o.etag.clone(),
                    o.version.clone(),
                    None,
                    Source::Poller,
                ));
                found.set.push((o.key, Some(t)));
            }
        }
        Ok(true)
    }

    /// Deleted objects: entries this pass neither listed nor saw noted; their names come from
    /// the unsaved changes or the shards.
    async fn find_vanished(
        &self,
        prefix: &str,
        store: &str,
        pass: u32,
        found: &mut Found,
    ) -> Result<bool> {
        let Some((vanished, mut names)) = self.vanished(prefix, pass) else {
            return Ok(false);
        };
        let unnamed: Vec<u64> = vanished
            .iter()
            .map(|(h, _)| *h)
            .filter(|h| !names.contains_key(h))
            .collect();
        if !unnamed.is_empty() {
            names.extend(self.shards(prefix).names(&unnamed).await?);
        }
        for (h, token) in vanished {
            let Some(key) = names.remove(&h) else {
                // Neither in memory nor in the shards: nothing to name an event by.
                tracing::warn!(prefix, "poller: a vanished key has no recorded name");
                if let Some(w) = self.seen.lock().unwrap().get_mut(prefix) {
                    w.keys.remove(&h);
                }
                continue;
            };
            found.events.push(Event::object(
                store,
                &key,
                EventKind::Deleted,
                None,
                None,
                None,
                Some(format!("{token:016x}")),
                Source::Poller,
            ));
            found.set.push((key, None));
        }
        Ok(true)
    }

    /// (key hash, token) of the entries `pass` did not see, with the names the unsaved changes
    /// know; `None` if nothing watches `prefix` any more.
    fn vanished(&self, prefix: &str, pass: u32) -> Option<Vanished> {
        let mut seen = self.seen.lock().unwrap();
        self.apply_notes(&mut seen);
        let w = seen.get(prefix)?;
        let vanished: Vec<(u64, u64)> = w
            .keys
            .iter()
            .filter(|(_, m)| m.pass != pass)
            .map(|(h, m)| (*h, m.token))
            .collect();
        let mut names = HashMap::new();
        if !vanished.is_empty() {
            for k in w.unsaved.keys() {
                names.insert(key_hash(k), k.to_string());
            }
        }
        Some((vanished, names))
    }

    /// Forget a prefix's state (no hook watches it any more).
    pub async fn forget(&self, prefix: &str) -> Result<()> {
        self.seen.lock().unwrap().remove(prefix);
        let _one = self.flushing.lock().await;
        self.shards(prefix).remove().await
    }

    /// Apply a pass's changes and persist them.
    pub async fn commit(&self, changes: Changes) -> Result<()> {
        {
            let mut seen = self.seen.lock().unwrap();
            let Some(w) = seen.get_mut(&changes.prefix) else {
                return Ok(());
            };
            for (key, token) in changes.set {
                w.set(key.into_boxed_str(), token, changes.pass);
            }
            // Notes still pending came after the pass's listing: they are the newer truth.
            self.apply_notes(&mut seen);
        }
        self.flush(&changes.prefix).await
    }

    /// A write or delete made through the host (which emitted its own event): update the
    /// in-memory maps of prefixes covering the key so the next scan does not report it again.
    /// Persisted with the next flush; a crash before that only costs a duplicate event.
    pub fn note(&self, key: &str, object: Option<&ObjectInfo>) {
        let token = object.map(|o| token_hash(&token(o)));
        self.notes.lock().unwrap().push((key.into(), token));
        // Applied now unless a pass holds the map; then by the pass, at its next chunk.
        if let Ok(mut seen) = self.seen.try_lock() {
            self.apply_notes(&mut seen);
        }
    }

    /// Apply the pending notes to the prefixes covering their keys.
    fn apply_notes(&self, seen: &mut HashMap<String, Watch>) {
        let notes = std::mem::take(&mut *self.notes.lock().unwrap());
        for (key, token) in notes {
            for (prefix, w) in seen.iter_mut() {
                if key.starts_with(prefix.as_str()) {
                    let pass = w.pass;
                    w.set(key.clone(), token, pass);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn recent_writes_wait_a_pass_and_host_writes_noted_meanwhile_are_not_reported() {
        let storage = Storage::open("memory://", &Default::default()).unwrap();
        let poller = Poller::new(storage.clone()); // SETTLE: 1 s
        poller.baseline("raw/").await.unwrap();
        let info = storage.put_info("raw/a.csv", "a").await.unwrap();
        storage.put("raw/b.csv", "b").await.unwrap();
        assert!(
            poller.scan("raw/", "m").await.unwrap().0.is_empty(),
            "too recent"
        );
        poller.note("raw/a.csv", Some(&info)); // the host's own write, noted after it landed
        tokio::time::sleep(SETTLE).await;
        let (ev, _) = poller.scan("raw/", "m").await.unwrap();
        let keys: Vec<_> = ev.iter().map(|e| (e.key.as_str(), e.kind)).collect();
        assert_eq!(keys, [("raw/b.csv", EventKind::Created)]);
    }

    #[tokio::test]
    async fn the_index_costs_a_bounded_number_of_bytes_per_key() {
        // On disk, so the shards are not on the heap being measured.
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let storage = Storage::open(&url, &Default::default()).unwrap();
        let poller = Poller::with_settle(storage.clone(), Duration::ZERO);
        poller.baseline("soak/in/").await.unwrap();
        let info = storage.put_info("soak/in/x", "x").await.unwrap();
        let n = 100_000;
        let keys: Vec<String> = (0..n).map(|i| format!("soak/in/k-{i:08}.csv")).collect();
        let before = crate::thread_live_bytes();
        for k in &keys {
            poller.note(k, Some(&info));
        }
        // Past FLUSH_AT the next pass writes the names out and memory keeps the hashes.
        poller.flush("soak/in/").await.unwrap();
        let per_key = (crate::thread_live_bytes() - before) / n;
        eprintln!("poller index: {per_key} bytes per key");
        assert!(per_key <= 40, "{per_key} bytes per key");
    }

    #[tokio::test]
    async fn state_in_the_first_format_is_read() {
        let storage = Storage::open("memory://", &Default::default()).unwrap();
        let info = storage.put_info("raw/a.csv", "a").await.unwrap();
        let legacy = serde_json::json!({"prefix": "raw/", "keys": {"raw/a.csv": token(&info)}});
        storage
            .put_json(&shards::legacy_key("raw/"), &legacy)
            .await
            .unwrap();
        let poller = Poller::with_settle(storage.clone(), Duration::ZERO);
        assert!(poller.scan("raw/", "m").await.unwrap().0.is_empty());
        // Rewritten as shards on the way.
        assert!(
            storage
                .head(&shards::legacy_key("raw/"))
                .await
                .unwrap()
                .is_none()
        );
        let restarted = Poller::with_settle(storage.clone(), Duration::ZERO);
        storage.delete("raw/a.csv").await.unwrap();
        let (ev, _) = restarted.scan("raw/", "m").await.unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (ev[0].key.as_str(), ev[0].kind),
            ("raw/a.csv", EventKind::Deleted)
        );
    }

    #[tokio::test]
    async fn unwatched_prefixes_leave_memory_with_their_notes_written_out() {
        let storage = Storage::open("memory://", &Default::default()).unwrap();
        let poller = Poller::with_settle(storage.clone(), Duration::ZERO);
        for p in ["kept/", "gone/"] {
            poller.baseline(p).await.unwrap();
        }
        for i in 0..3 {
            let key = format!("gone/{i}");
            let info = storage.put_info(&key, "x").await.unwrap();
            // Rewriting a key keeps one unsaved change for it.
            poller.note(&key, Some(&info));
            poller.note(&key, Some(&info));
        }
        assert_eq!(poller.seen.lock().unwrap()["gone/"].unsaved.len(), 3);
        poller.retain(&["kept/".to_string()]).await.unwrap();
        assert!(!poller.seen.lock().unwrap().contains_key("gone/"));
        poller.note("gone/3", None); // no index to grow
        assert!(!poller.seen.lock().unwrap().contains_key("gone/"));
        // Its state was written: a watcher coming back sees the three objects as known.
        let back = Poller::with_settle(storage.clone(), Duration::ZERO);
        assert!(back.scan("gone/", "m").await.unwrap().0.is_empty());
    }

    #[tokio::test]
    async fn a_baseline_cut_short_leaves_no_stale_keys() {
        let storage = Storage::open("memory://", &Default::default()).unwrap();
        // A crash after the shards were written and before the meta: they describe an object
        // deleted since.
        let shards = Shards {
            storage: &storage,
            prefix: "raw/",
        };
        shards
            .apply(vec![("raw/gone.csv".into(), Some(1))])
            .await
            .unwrap();
        storage.put("raw/here.csv", "x").await.unwrap();
        Poller::new(storage.clone()).baseline("raw/").await.unwrap();
        let restarted = Poller::with_settle(storage.clone(), Duration::ZERO);
        let (ev, _) = restarted.scan("raw/", "m").await.unwrap();
        assert!(
            ev.is_empty(),
            "{:?}",
            ev.iter().map(|e| &e.key).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn vanished_keys_are_named_from_unsaved_notes_and_from_the_shards() {
        let storage = Storage::open("memory://", &Default::default()).unwrap();
        let poller = Poller::with_settle(storage.clone(), Duration::ZERO);
        poller.baseline("raw/").await.unwrap();
        let mut written = Vec::new();
        for i in 0..3 {
            let key = format!("raw/{i}.csv");
            let info = storage.put_info(&key, "x").await.unwrap();
            poller.note(&key, Some(&info));
            written.push(key);
        }
        // raw/0 is flushed to the shards; raw/1 and raw/2 are only noted in memory.
        poller.flush("raw/").await.unwrap();
        for key in &written[1..] {
            let info = storage.head(key).await.unwrap().unwrap();
            poller.note(key, Some(&info));
        }
        for key in &written {
            storage.delete(key).await.unwrap(); // behind the host's back
        }
        let (ev, changes) = poller.scan("raw/", "m").await.unwrap();
        let mut got: Vec<_> = ev.iter().map(|e| (e.key.as_str(), e.kind)).collect();
        got.sort_by_key(|(k, _)| *k);
        let want: Vec<_> = written
            .iter()
            .map(|k| (k.as_str(), EventKind::Deleted))
            .collect();
        assert_eq!(got, want);
        poller.commit(changes.unwrap()).await.unwrap();
        let restarted = Poller::with_settle(storage.clone(), Duration::ZERO);
        assert!(restarted.scan("raw/", "m").await.unwrap().0.is_empty());
    }

    #[tokio::test]
    async fn changes_across_several_chunks_are_all_reported() {
        let storage = Storage::open("memory://", &Default::default()).unwrap();
        let n = 2 * CHUNK + 100;
        for i in 0..n {
            storage.put(&format!("raw/{i:06}"), "x").await.unwrap();
        }
        let poller = Poller::with_settle(storage.clone(), Duration::ZERO);
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
        let poller = Poller::with_settle(storage.clone(), Duration::ZERO);
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
        let again = Poller::with_settle(storage.clone(), Duration::ZERO);
        assert_eq!(again.scan("raw/", "m").await.unwrap().0.len(), 2);
        poller.commit(state.unwrap()).await.unwrap();
        // A restarted poller reads the committed state: nothing new.
        let restarted = Poller::with_settle(storage.clone(), Duration::ZERO);
        assert!(restarted.scan("raw/", "m").await.unwrap().0.is_empty());

        storage.delete("raw/new.csv").await.unwrap();
        let (ev, _) = restarted.scan("raw/", "m").await.unwrap();
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (ev[0].key.as_str(), ev[0].kind),
            ("raw/new.csv", EventKind::Deleted)
        );
    }

    #[tokio::test]
    async fn notes_never_wait_for_a_pass_holding_the_map() {
        let storage = Storage::open("memory://", &Default::default()).unwrap();
        let poller = Poller::with_settle(storage.clone(), Duration::ZERO);
        poller.baseline("raw/").await.unwrap();
        let written = storage.put_info("raw/a.csv", "a").await.unwrap();
        storage.put("raw/gone.csv", "g").await.unwrap();
        let deleted = storage.head("raw/gone.csv").await.unwrap().unwrap();
        poller.note("raw/gone.csv", Some(&deleted));
        storage.delete("raw/gone.csv").await.unwrap();

        // A pass holds the map (as a descheduled low-priority pass might): notes still return.
        let held = poller.seen.lock().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            s.spawn(|| {
                poller.note("raw/a.csv", Some(&written));
                poller.note("raw/gone.csv", None);
                tx.send(()).unwrap();
            });
            let returned = rx.recv_timeout(Duration::from_secs(5));
            drop(held); // before failing, or the scope would wait for the blocked thread
            returned.expect("note blocked on the held map");
        });

        // Applied by the next holder: neither the write nor the delete is reported back.
        let (ev, _) = poller.scan("raw/", "m").await.unwrap();
        assert!(
            ev.is_empty(),
            "{:?}",
            ev.iter().map(|e| &e.key).collect::<Vec<_>>()
        );
    }
}
