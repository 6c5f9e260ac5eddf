//! One dataset's catalog in memory: what the hot paths need per part, in ~130 bytes.
//!
//! Hooks ask two questions on every event — is part X committed, and which parts did hook H
//! make from object K — so both are answered from memory, by id and by a hash of (hook,
//! source). Everything else about a part (its lineage, for listings and retractions) stays in its
//! manifest in the store and is read when needed. Holding whole manifests with string indexes
//! cost ~1.2 KB per part: at one part per object, a 10-minute soak grew the host by 278 MiB.

use super::{DatasetMeta, PartManifest};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

/// A part id: 16 bytes when it is a digest (every hook and upload part), else the string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PartId {
    Digest([u8; 16]),
    Named(Box<str>),
}

impl PartId {
    fn new(id: &str) -> PartId {
        let mut d = [0u8; 16];
        let lower_hex = id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if id.len() == 32 && lower_hex && hex::decode_to_slice(id, &mut d).is_ok() {
            PartId::Digest(d)
        } else {
            PartId::Named(id.into())
        }
    }
}

impl std::fmt::Display for PartId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartId::Digest(d) => f.write_str(&hex::encode(d)),
            PartId::Named(s) => f.write_str(s),
        }
    }
}

/// What memory keeps of a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub created_ms: u64,
    pub rows: u64,
    pub bytes: u64,
    /// [`source_hash`] of the hook and object it was made from (0: uploaded directly).
    source: u64,
}

/// Hash of (hook, source object); never 0, which means "no source".
fn source_hash(hook: &str, source: &str) -> u64 {
    let mut h = DefaultHasher::new();
    (hook, source).hash(&mut h);
    h.finish().max(1)
}

#[derive(Default)]
pub struct Catalog {
    pub meta: Option<DatasetMeta>,
    parts: HashMap<PartId, Entry>,
    by_source: HashMap<u64, SmallVec<[PartId; 1]>>,
}

impl Catalog {
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<Entry> {
        self.parts.get(&PartId::new(id)).copied()
    }

    /// Add a part, or replace the part with its id.
    pub fn insert(&mut self, m: &PartManifest) {
        self.remove(&m.id);
        let id = PartId::new(&m.id);
        let source = match (&m.lineage.hook, &m.lineage.source) {
            (Some(h), Some(s)) => source_hash(h, s),
            _ => 0,
        };
        if source != 0 {
            self.by_source.entry(source).or_default().push(id.clone());
        }
        let entry = Entry {
            created_ms: m.created_ms,
            rows: m.rows,
            bytes: m.bytes,
            source,
        };
        self.parts.insert(id, entry);
    }

    pub fn remove(&mut self, id: &str) {
        let id = PartId::new(id);
        let Some(e) = self.parts.remove(&id) else {
            return;
        };
        if let Some(ids) = self.by_source.get_mut(&e.source) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.by_source.remove(&e.source);
            }
        }
    }

    /// Ids of the parts `hook` may have made from `source`, except `keep`. A hash picks them,
    /// so callers check each one's manifest.
    pub fn made_from(&self, hook: &str, source: &str, keep: Option<&str>) -> Vec<String> {
        let keep = keep.map(PartId::new);
        self.by_source
            .get(&source_hash(hook, source))
            .into_iter()
            .flatten()
            .filter(|id| Some(*id) != keep.as_ref())
            .map(PartId::to_string)
            .collect()
    }

    /// Every part in row order: by commit time, then id.
    pub fn ordered(&self) -> Vec<(String, Entry)> {
        let mut v: Vec<_> = self
            .parts
            .iter()
            .map(|(id, e)| (id.to_string(), *e))
            .collect();
        v.sort_unstable_by(|(a, x), (b, y)| (x.created_ms, a).cmp(&(y.created_ms, b)));
        v
    }

    /// (rows, parts, bytes).
    pub fn totals(&self) -> (u64, usize, u64) {
        let (rows, bytes) = self
            .parts
            .values()
            .fold((0, 0), |(r, b), e| (r + e.rows, b + e.bytes));
        (rows, self.parts.len(), bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::PartLineage;
    use super::*;

    fn part(id: &str, t: u64, hook: &str, source: &str) -> PartManifest {
        PartManifest {
            id: id.into(),
            rows: 1,
            bytes: 10,
            created_ms: t,
            lineage: PartLineage {
                hook: Some(hook.into()),
                source: Some(source.into()),
                ..Default::default()
            },
        }
    }

    fn ids(v: Vec<(String, Entry)>) -> Vec<String> {
        v.into_iter().map(|(id, _)| id).collect()
    }

    #[test]
    fn ids_round_trip_in_both_forms() {
        let digest = "00ff3a9b0c1d2e3f405162738495a6b7";
        assert!(matches!(PartId::new(digest), PartId::Digest(_)));
        assert_eq!(PartId::new(digest).to_string(), digest);
        for named in [
            "0",
            "00FF3A9B0C1D2E3F405162738495A6B7",
            "my-part",
            "+0ff3a9b0c1d2e3f405162738495a6b",
        ] {
            assert!(matches!(PartId::new(named), PartId::Named(_)), "{named}");
            assert_eq!(PartId::new(named).to_string(), named);
        }
    }

    #[test]
    fn indexes_follow_inserts_replacements_and_removals() {
        let a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let b = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
        let mut c = Catalog::default();
        c.insert(&part(b, 2, "h", "raw/x.csv"));
        c.insert(&part(a, 1, "h", "raw/x.csv"));
        c.insert(&part("c", 3, "h", "raw/y.csv"));
        c.insert(&part("d", 3, "other", "raw/x.csv"));
        assert_eq!(
            ids(c.ordered()),
            [a, b, "c", "d"],
            "row order: time, then id"
        );
        assert_eq!(c.get("c").map(|e| e.created_ms), Some(3));
        assert!(c.get("zz").is_none());
        let mut from_x = c.made_from("h", "raw/x.csv", None);
        from_x.sort();
        assert_eq!(from_x, [a, b]);
        assert_eq!(c.made_from("h", "raw/x.csv", Some(a)), [b]);
        assert_eq!(c.totals(), (4, 4, 40));

        // Replacing a part (a redelivery) keeps one entry, re-indexed under its new source.
        c.insert(&part(b, 2, "h", "raw/y.csv"));
        assert_eq!(c.totals().1, 4);
        assert_eq!(c.made_from("h", "raw/x.csv", None), [a]);
        assert_eq!(c.made_from("h", "raw/y.csv", None).len(), 2);

        c.remove(a);
        c.remove(a);
        assert!(c.get(a).is_none());
        assert!(c.made_from("h", "raw/x.csv", None).is_empty());
        assert!(!c.by_source.contains_key(&source_hash("h", "raw/x.csv")));
        assert_eq!(ids(c.ordered()), [b, "c", "d"]);

        // Parts uploaded directly have no source and are in no source index.
        c.insert(&PartManifest {
            lineage: PartLineage::default(),
            ..part("e", 4, "", "")
        });
        assert_eq!(c.by_source.values().map(|v| v.len()).sum::<usize>(), 3);
    }
}
