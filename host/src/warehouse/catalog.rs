//! One dataset's catalog in memory: what the hot paths need per part, in ~100 bytes.
//!
//! Hooks ask two questions on every event — is part X committed, and which parts did hook H
//! make from object K — so both are answered from memory, by id and by a hash of (hook,
//! source). Everything else about a part (its lineage, for listings and retractions) stays in its
//! manifest in the store and is read when needed. Holding whole manifests with string indexes
//! cost ~1.2 KB per part: at one part per object, a 10-minute soak grew the host by 278 MiB.
//! Digest ids (every hook and upload part) are kept as their 16 bytes, and the source index
//! holds one id inline per source, spilling to a list only when a source has made several parts.

use super::{DatasetMeta, PartManifest};
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
    /// Parts with a digest id, by its bytes.
    digests: HashMap<[u8; 16], Entry>,
    /// Parts with any other id.
    named: HashMap<Box<str>, Entry>,
    /// Source hash → the first digest part made from it (one per source is the usual case).
    by_source: HashMap<u64, [u8; 16]>,
    /// Further parts of a source, and parts with named ids.
    more_by_source: HashMap<u64, Vec<PartId>>,
}

impl Catalog {
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty() && self.named.is_empty()
    }

    fn entry(&self, id: &PartId) -> Option<Entry> {
        match id {
            PartId::Digest(d) => self.digests.get(d).copied(),
            PartId::Named(n) => self.named.get(n).copied(),
        }
    }

    pub fn get(&self, id: &str) -> Option<Entry> {
        self.entry(&PartId::new(id))
    }

    /// Add a part, or replace the part with its id.
    pub fn insert(&mut self, m: &PartManifest) {
        self.remove(&m.id);
        let id = PartId::new(&m.id);
        let source = match (&m.lineage.hook, &m.lineage.source) {
            (Some(h), Some(s)) => source_hash(h, s),
            _ => 0,
        };
        let entry = Entry {
            created_ms: m.created_ms,
            rows: m.rows,
            bytes: m.bytes,
            source,
        };
        if source != 0 {
            match &id {
                PartId::Digest(d) if !self.by_source.contains_key(&source) => {
                    self.by_source.insert(source, *d);
                }
                _ => self
                    .more_by_source
                    .entry(source)
                    .or_default()
                    .push(id.clone()),
            }
        }
        match id {
            PartId::Digest(d) => self.digests.insert(d, entry),
            PartId::Named(n) => self.named.insert(n, entry),
        };
    }

    pub fn remove(&mut self, id: &str) {
        let id = PartId::new(id);
        let removed = match &id {
            PartId::Digest(d) => self.digests.remove(d),
            PartId::Named(n) => self.named.remove(n),
        };
        let Some(e) = removed else {
            return;
        };
        if matches!(&id, PartId::Digest(d) if self.by_source.get(&e.source) == Some(d)) {
            self.by_source.remove(&e.source);
        }
        if let Some(ids) = self.more_by_source.get_mut(&e.source) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.more_by_source.remove(&e.source);
            }
        }
    }

    /// Ids of the parts `hook` may have made from `source`, except `keep`. A hash picks them,
    /// so callers check each one's manifest.
    pub fn made_from(&self, hook: &str, source: &str, keep: Option<&str>) -> Vec<String> {
        let h = source_hash(hook, source);
        let keep = keep.map(PartId::new);
        let first = self.by_source.get(&h).map(|d| PartId::Digest(*d));
        first
            .into_iter()
            .chain(self.more_by_source.get(&h).into_iter().flatten().cloned())
            .filter(|id| Some(id) != keep.as_ref())
            .map(|id| id.to_string())
            .collect()
    }

    fn entries(&self) -> impl Iterator<Item = (PartId, Entry)> + '_ {
        let digests = self.digests.iter().map(|(d, e)| (PartId::Digest(*d), *e));
        let named = self
            .named
            .iter()
            .map(|(n, e)| (PartId::Named(n.clone()), *e));
        digests.chain(named)
    }

    /// Every part in row order: by commit time, then id.
    pub fn ordered(&self) -> Vec<(String, Entry)> {
        let mut v: Vec<_> = self.entries().map(|(id, e)| (id.to_string(), e)).collect();
        v.sort_unstable_by(|(a, x), (b, y)| (x.created_ms, a).cmp(&(y.created_ms, b)));
        v
    }

    /// (rows, parts, bytes).
    pub fn totals(&self) -> (u64, usize, u64) {
        let (rows, bytes) = self
            .digests
            .values()
            .chain(self.named.values())
            .fold((0, 0), |(r, b), e| (r + e.rows, b + e.bytes));
        (rows, self.digests.len() + self.named.len(), bytes)
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
    fn the_catalog_costs_a_bounded_number_of_bytes_per_part() {
        let n = 100_000;
        let parts: Vec<PartManifest> = (0..n)
            .map(|i| {
                let id = format!("{i:032x}");
                part(&id, i, "soak-hook", &format!("soak/in/k-{i:08}.csv"))
            })
            .collect();
        let mut c = Catalog::default();
        let before = crate::thread_live_bytes();
        for p in &parts {
            c.insert(p);
        }
        let per_part = (crate::thread_live_bytes() - before) / n as i64;
        eprintln!("catalog: {per_part} bytes per part");
        assert!(per_part <= 100, "{per_part} bytes per part");
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
        let x = source_hash("h", "raw/x.csv");
        assert!(!c.by_source.contains_key(&x) && !c.more_by_source.contains_key(&x));
        assert_eq!(ids(c.ordered()), [b, "c", "d"]);

        // Parts uploaded directly have no source and are in no source index.
        c.insert(&PartManifest {
            lineage: PartLineage::default(),
            ..part("e", 4, "", "")
        });
        let indexed = c.by_source.len() + c.more_by_source.values().map(Vec::len).sum::<usize>();
        assert_eq!(indexed, 3);
    }
}
