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

use super::{Event, EventKind, Source, digest};
use crate::capabilities::storage::{ObjectInfo, Storage};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// What the poller saw under one prefix: key → version token.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Seen {
    prefix: String,
    keys: BTreeMap<String, String>,
}

pub struct Poller {
    storage: Storage,
    /// Per watched prefix: what was seen (`None` until loaded from the store).
    seen: Mutex<HashMap<String, Seen>>,
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
            seen: Mutex::new(HashMap::new()),
        }
    }

    async fn load(&self, prefix: &str) -> Result<Option<Seen>> {
        if let Some(s) = self.seen.lock().unwrap().get(prefix) {
            return Ok(Some(s.clone()));
        }
        let stored: Option<Seen> = self.storage.get_json(&state_key(prefix)).await?;
        if let Some(s) = &stored {
            self.seen
                .lock()
                .unwrap()
                .insert(prefix.to_string(), s.clone());
        }
        Ok(stored)
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
        if self.load(prefix).await?.is_some() {
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
        let Some(before) = self.load(prefix).await? else {
            self.baseline(prefix).await?;
            return Ok((Vec::new(), None));
        };
        let now = self.list(prefix).await?;
        let mut events = Vec::new();
        for (key, o) in &now {
            let t = token(o);
            if before.keys.get(key) != Some(&t) {
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
        for (key, t) in &before.keys {
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
        }
        if events.is_empty() {
            return Ok((events, None));
        }
        let after = Seen {
            prefix: prefix.to_string(),
            keys: now.into_iter().map(|(k, o)| (k, token(&o))).collect(),
        };
        Ok((events, Some(after)))
    }

    /// Forget a prefix's state (no hook watches it any more).
    pub async fn forget(&self, prefix: &str) -> Result<()> {
        self.seen.lock().unwrap().remove(prefix);
        self.storage.delete(&state_key(prefix)).await
    }

    /// Persist a scan's new state.
    pub async fn commit(&self, seen: Seen) -> Result<()> {
        self.storage
            .put_json(&state_key(&seen.prefix), &seen)
            .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
