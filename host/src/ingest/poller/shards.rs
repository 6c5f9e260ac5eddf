//! The poller's persisted state: each watched prefix's key → version-token map, in shards.
//!
//! Memory keeps only a 64-bit hash of each key (see the parent module); the names live here, so
//! a restart can rebuild the index and a vanished key can be reported by name. A prefix's state
//! is `events/poller/{digest}/meta.json` (written last: its presence means the state is complete)
//! and up to 256 shard objects `events/poller/{digest}/{xx}.json`, a key going to the shard its
//! hash's top byte names. Changes are written shard by shard, each read, patched and rewritten,
//! so a flush never holds more than one shard's names, whatever the prefix holds.
//!
//! The first formats, one object `events/poller/{digest}.json` with every key (`keys`: token
//! strings; `hashes`: token hashes), are read once and rewritten as shards.

use crate::platform::names::digest;
use crate::platform::storage::Storage;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A key's 64-bit hash: FNV-1a, then a 64-bit finaliser so every bit (the shard byte included)
/// depends on every byte of the key. Stable across builds: shards are chosen by it.
pub fn key_hash(key: &str) -> u64 {
    let mut h = super::fnv1a(key);
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn shard_of(hash: u64) -> u8 {
    (hash >> 56) as u8
}

fn dir(prefix: &str) -> String {
    format!("events/poller/{}/", digest(&[prefix]))
}

fn meta_key(prefix: &str) -> String {
    format!("{}meta.json", dir(prefix))
}

fn shard_key(prefix: &str, shard: u8) -> String {
    format!("{}{shard:02x}.json", dir(prefix))
}

pub(super) fn legacy_key(prefix: &str) -> String {
    format!("events/poller/{}.json", digest(&[prefix]))
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Meta {
    prefix: String,
}

/// One shard, or the first formats' whole map: key → token hash (`keys`, token strings, is the
/// first format, read only).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    prefix: String,
    #[serde(default, skip_serializing)]
    keys: BTreeMap<String, String>,
    #[serde(default)]
    hashes: BTreeMap<String, u64>,
}

impl Stored {
    fn into_entries(self) -> impl Iterator<Item = (String, u64)> {
        let legacy = self.keys.into_iter().map(|(k, t)| (k, super::fnv1a(&t)));
        legacy.chain(self.hashes)
    }
}

/// A change to persist: key → new token hash, or `None` for a removed key.
pub type Change = (Box<str>, Option<u64>);

pub struct Shards<'a> {
    pub storage: &'a Storage,
    pub prefix: &'a str,
}

impl Shards<'_> {
    /// Every (key hash, token hash) of the prefix, or `None` if it has no state. State in the
    /// first formats is rewritten as shards on the way.
    pub async fn load(&self, mut each: impl FnMut(u64, u64)) -> Result<bool> {
        if self.storage.head(&meta_key(self.prefix)).await?.is_some() {
            for key in self.storage.list(&dir(self.prefix)).await? {
                if key.ends_with("meta.json") {
                    continue;
                }
                if let Some(s) = self.storage.get_json::<Stored>(&key).await? {
                    for (k, t) in s.into_entries() {
                        each(key_hash(&k), t);
                    }
                }
            }
            return Ok(true);
        }
        let Some(legacy) = self
            .storage
            .get_json::<Stored>(&legacy_key(self.prefix))
            .await?
        else {
            return Ok(false);
        };
        let changes: Vec<Change> = legacy
            .into_entries()
            .map(|(k, t)| {
                each(key_hash(&k), t);
                (k.into_boxed_str(), Some(t))
            })
            .collect();
        self.create(changes).await?;
        self.storage.delete(&legacy_key(self.prefix)).await?;
        Ok(true)
    }

    /// Write a new prefix's state (its baseline). Shards a crash left without their meta are
    /// cleared first: they describe objects as they were then.
    pub async fn create(&self, entries: Vec<Change>) -> Result<()> {
        for key in self.storage.list(&dir(self.prefix)).await? {
            self.storage.delete(&key).await?;
        }
        self.apply(entries).await?;
        let meta = Meta {
            prefix: self.prefix.to_string(),
        };
        self.storage.put_json(&meta_key(self.prefix), &meta).await
    }

    /// Apply changes, one shard at a time. Applying the same changes twice is harmless, so a
    /// failed flush is retried whole.
    pub async fn apply(&self, changes: Vec<Change>) -> Result<()> {
        let mut by_shard: BTreeMap<u8, Vec<Change>> = BTreeMap::new();
        for c in changes {
            by_shard
                .entry(shard_of(key_hash(&c.0)))
                .or_default()
                .push(c);
        }
        for (shard, changes) in by_shard {
            let key = shard_key(self.prefix, shard);
            let mut map: BTreeMap<String, u64> = match self.storage.get_json::<Stored>(&key).await?
            {
                Some(s) => s.into_entries().collect(),
                None => BTreeMap::new(),
            };
            for (k, t) in changes {
                match t {
                    Some(t) => map.insert(k.into(), t),
                    None => map.remove(&*k),
                };
            }
            if map.is_empty() {
                self.storage.delete(&key).await?;
                continue;
            }
            let stored = Stored {
                hashes: map,
                ..Stored::default()
            };
            // A shard of a very large prefix is encoded off the async threads.
            let body = if stored.hashes.len() > 4096 {
                tokio::task::spawn_blocking(move || serde_json::to_vec(&stored)).await??
            } else {
                serde_json::to_vec(&stored)?
            };
            self.storage.put(&key, body).await?;
        }
        Ok(())
    }

    /// The names of keys by hash, read from the shards that hold them (for vanished keys).
    pub async fn names(&self, hashes: &[u64]) -> Result<HashMap<u64, String>> {
        let mut shards: BTreeMap<u8, HashSet<u64>> = BTreeMap::new();
        for &h in hashes {
            shards.entry(shard_of(h)).or_default().insert(h);
        }
        let mut out = HashMap::new();
        for (shard, want) in shards {
            let Some(s) = self
                .storage
                .get_json::<Stored>(&shard_key(self.prefix, shard))
                .await?
            else {
                continue;
            };
            for (k, _) in s.into_entries() {
                let h = key_hash(&k);
                if want.contains(&h) {
                    out.insert(h, k);
                }
            }
        }
        Ok(out)
    }

    /// Remove the prefix's state, meta first (so a half-removed state reads as none).
    pub async fn remove(&self) -> Result<()> {
        self.storage.delete(&meta_key(self.prefix)).await?;
        for key in self.storage.list(&dir(self.prefix)).await? {
            self.storage.delete(&key).await?;
        }
        self.storage.delete(&legacy_key(self.prefix)).await
    }
}
