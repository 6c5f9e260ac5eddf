//! The warehouse: named datasets made of immutable Parquet parts in the object store.
//!
//! A part is `datasets/{name}/parts/{id}.parquet` plus its manifest `{id}.json` (rows, size,
//! lineage). The manifest is written after the Parquet file and is the commit marker: a part
//! without one is invisible, so a crash mid-write never shows partial data, and rewriting the same
//! part id (a redelivered event) replaces it with identical content. No catalog object is
//! rewritten on every commit — parts are append-only — so commits never contend on one object
//! and nothing depends on conditional PUTs, which Garage ignores.
//!
//! `datasets/{name}/dataset.json` fixes the schema at the first non-empty part; a later part
//! whose column names or types differ is refused with [`CommitError::SchemaMismatch`].
//!
//! The catalog (manifests per dataset) is cached in memory after the first read; this host is its
//! only writer. Several replicas will need the event bus to share commits (the NATS issue).

pub mod parquet;

use crate::capabilities::events::now_ms;
use crate::capabilities::storage::Storage;
use anyhow::{Context, Result};
use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// Where a part came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartLineage {
    /// The hook that wrote it (`None`: uploaded directly).
    pub hook: Option<String>,
    /// The object the hook ran on.
    pub source: Option<String>,
    /// That object's version token.
    pub source_etag: Option<String>,
    /// Hook hops from the user's object.
    pub depth: u32,
    /// The user object at the root of the chain.
    pub root: Option<String>,
}

/// A committed part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartManifest {
    pub id: String,
    pub rows: u64,
    pub bytes: u64,
    pub created_ms: u64,
    pub lineage: PartLineage,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DatasetMeta {
    name: String,
    created_ms: u64,
    schema: Option<Schema>,
}

/// Why a commit was refused.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("schema mismatch with dataset {dataset}: {detail}")]
    SchemaMismatch { dataset: String, detail: String },
    #[error("invalid part: {0}")]
    Invalid(String),
    #[error(transparent)]
    Storage(#[from] anyhow::Error),
}

/// One dataset's cached catalog. Hooks look parts up by id and by source on every event, so
/// both have an index: a scan made each event cost O(parts) (~0.5 ms at 100k parts, twice).
#[derive(Default)]
struct Catalog {
    meta: Option<DatasetMeta>,
    /// Ordered by (commit time, id): the dataset's row order.
    parts: BTreeMap<(u64, String), PartManifest>,
    /// Part id → its commit time (its key in `parts`).
    ids: HashMap<String, u64>,
    /// (hook, source object) → the ids of the parts the hook made from it.
    by_source: HashMap<(String, String), BTreeSet<String>>,
}

impl Catalog {
    fn find(&self, id: &str) -> Option<&PartManifest> {
        let t = *self.ids.get(id)?;
        self.parts.get(&(t, id.to_string()))
    }

    fn source_of(p: &PartManifest) -> Option<(String, String)> {
        Some((p.lineage.hook.clone()?, p.lineage.source.clone()?))
    }

    /// Add a part, or replace the part with its id.
    fn insert(&mut self, p: PartManifest) {
        self.remove(&p.id);
        self.ids.insert(p.id.clone(), p.created_ms);
        if let Some(src) = Self::source_of(&p) {
            self.by_source.entry(src).or_default().insert(p.id.clone());
        }
        self.parts.insert((p.created_ms, p.id.clone()), p);
    }

    fn remove(&mut self, id: &str) {
        let Some(t) = self.ids.remove(id) else {
            return;
        };
        let Some(p) = self.parts.remove(&(t, id.to_string())) else {
            return;
        };
        if let Some(src) = Self::source_of(&p)
            && let Some(set) = self.by_source.get_mut(&src)
        {
            set.remove(id);
            if set.is_empty() {
                self.by_source.remove(&src);
            }
        }
    }

    /// The parts `hook` made from `source`.
    fn from_source(&self, hook: &str, source: &str) -> impl Iterator<Item = &PartManifest> {
        self.by_source
            .get(&(hook.to_string(), source.to_string()))
            .into_iter()
            .flatten()
            .filter_map(|id| self.find(id))
    }
}

type Handle = Arc<tokio::sync::Mutex<Option<Catalog>>>;

/// Summary of a dataset for listings.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetSummary {
    pub name: String,
    pub rows: u64,
    pub parts: usize,
    pub bytes: u64,
    pub created_ms: u64,
}

/// Everything about a dataset.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetDetail {
    #[serde(flatten)]
    pub summary: DatasetSummary,
    /// `[{name, type, nullable}]`; empty until the first non-empty part.
    pub schema: Vec<serde_json::Value>,
    pub part_list: Vec<PartManifest>,
}

pub struct Warehouse {
    storage: Storage,
    /// Per dataset: its catalog, loaded on first use. The async mutex also serialises commits.
    datasets: Mutex<HashMap<String, Handle>>,
}

pub fn part_key(dataset: &str, id: &str) -> String {
    format!("datasets/{dataset}/parts/{id}.parquet")
}

fn manifest_key(dataset: &str, id: &str) -> String {
    format!("datasets/{dataset}/parts/{id}.json")
}

fn meta_key(dataset: &str) -> String {
    format!("datasets/{dataset}/dataset.json")
}

/// The dataset and part id a part key names, if it is one.
pub fn parse_part_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("datasets/")?;
    let (name, file) = rest.split_once("/parts/")?;
    let id = file.strip_suffix(".parquet")?;
    Some((name, id))
}

fn schema_diff(have: &Schema, new: &Schema) -> Option<String> {
    let cols = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| format!("{}: {}", f.name(), f.data_type()))
            .collect::<Vec<_>>()
    };
    let (a, b) = (cols(have), cols(new));
    (a != b).then(|| {
        format!(
            "dataset has [{}], part has [{}]",
            a.join(", "),
            b.join(", ")
        )
    })
}

impl Warehouse {
    pub fn new(storage: Storage) -> Warehouse {
        Warehouse {
            storage,
            datasets: Mutex::new(HashMap::new()),
        }
    }

    fn handle(&self, name: &str) -> Handle {
        self.datasets
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    async fn load(&self, name: &str) -> Result<Catalog> {
        let meta: Option<DatasetMeta> = self.storage.get_json(&meta_key(name)).await?;
        let mut cat = Catalog {
            meta,
            ..Default::default()
        };
        for key in self
            .storage
            .list(&format!("datasets/{name}/parts/"))
            .await?
        {
            if !key.ends_with(".json") {
                continue;
            }
            if let Some(p) = self.storage.get_json::<PartManifest>(&key).await? {
                cat.insert(p);
            }
        }
        Ok(cat)
    }

    /// Run `f` on a dataset's catalog (loading it first), holding its lock.
    async fn with_catalog<T>(
        &self,
        name: &str,
        f: impl AsyncFnOnce(&mut Catalog) -> T,
    ) -> Result<T> {
        let handle = self.handle(name);
        let mut guard = handle.lock().await;
        if guard.is_none() {
            *guard = Some(self.load(name).await?);
        }
        let cat = guard.as_mut().expect("loaded");
        let out = f(cat).await;
        if cat.meta.is_none() && cat.parts.is_empty() {
            // No such dataset: do not keep an entry for every name anyone asked about. Only
            // when no one else holds the handle (a commit may be waiting on it); handles are
            // only taken under the map lock, so the count cannot grow while we look.
            drop(guard);
            let mut map = self.datasets.lock().unwrap();
            if Arc::strong_count(&handle) == 2 {
                map.remove(name);
            }
        }
        Ok(out)
    }

    /// The manifest of a committed part, if it is committed.
    pub async fn committed(&self, name: &str, id: &str) -> Result<Option<PartManifest>> {
        self.with_catalog(name, async |c| c.find(id).cloned()).await
    }

    /// Commit an Arrow IPC stream as part `id` of a dataset (created on first commit).
    /// Committing an id again replaces the part with the new bytes (used for redeliveries, which
    /// produce the same content).
    pub async fn commit(
        &self,
        name: &str,
        id: &str,
        ipc: Vec<u8>,
        lineage: PartLineage,
    ) -> Result<PartManifest, CommitError> {
        let (schema, batches) =
            tokio::task::spawn_blocking(move || crate::capabilities::formats::decode_ipc(&ipc))
                .await
                .map_err(|e| CommitError::Storage(e.into()))?
                .map_err(CommitError::Invalid)?;
        self.commit_batches(name, id, schema, batches, lineage)
            .await
    }

    pub async fn commit_batches(
        &self,
        name: &str,
        id: &str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        lineage: PartLineage,
    ) -> Result<PartManifest, CommitError> {
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        let handle = self.handle(name);
        let mut guard = handle.lock().await;
        if guard.is_none() {
            *guard = Some(self.load(name).await?);
        }
        let cat = guard.as_mut().expect("loaded");
        let known = cat.meta.as_ref().and_then(|m| m.schema.as_ref());
        if rows > 0
            && let Some(diff) = known.and_then(|have| schema_diff(have, &schema))
        {
            return Err(CommitError::SchemaMismatch {
                dataset: name.to_string(),
                detail: diff,
            });
        }
        if cat.meta.is_none() || (known.is_none() && rows > 0) {
            let meta = DatasetMeta {
                name: name.to_string(),
                created_ms: cat.meta.as_ref().map_or_else(now_ms, |m| m.created_ms),
                schema: (rows > 0).then(|| schema.as_ref().clone()),
            };
            self.storage.put_json(&meta_key(name), &meta).await?;
            cat.meta = Some(meta);
        }
        let bytes = tokio::task::spawn_blocking(move || parquet::encode(&schema, &batches))
            .await
            .map_err(|e| CommitError::Storage(e.into()))??;
        let manifest = PartManifest {
            id: id.to_string(),
            rows,
            bytes: bytes.len() as u64,
            created_ms: cat.find(id).map_or_else(now_ms, |p| p.created_ms),
            lineage,
        };
        self.storage.put(&part_key(name, id), bytes).await?;
        self.storage
            .put_json(&manifest_key(name, id), &manifest)
            .await?;
        cat.insert(manifest.clone());
        Ok(manifest)
    }

    /// The parts a hook made from a source object, except those that are current: part `keep`
    /// (the one replacing them) and parts made from version `keep_etag` (the object as it is
    /// now). Callers announce these, then [`Warehouse::remove`] them, so a crash in between
    /// repeats the announcement instead of losing it.
    pub async fn derived(
        &self,
        name: &str,
        hook: &str,
        source: &str,
        keep: Option<&str>,
        keep_etag: Option<&str>,
    ) -> Result<Vec<PartManifest>> {
        self.with_catalog(name, async |c| {
            c.from_source(hook, source)
                .filter(|p| {
                    Some(p.id.as_str()) != keep
                        && (keep_etag.is_none() || p.lineage.source_etag.as_deref() != keep_etag)
                })
                .cloned()
                .collect()
        })
        .await
    }

    /// Remove parts. Manifests go first, so a crash leaves at most an invisible orphan Parquet
    /// file (which the same delivery overwrites if it runs again).
    pub async fn remove(&self, name: &str, parts: &[PartManifest]) -> Result<()> {
        let handle = self.handle(name);
        let mut guard = handle.lock().await;
        if guard.is_none() {
            *guard = Some(self.load(name).await?);
        }
        let cat = guard.as_mut().expect("loaded");
        for p in parts {
            self.storage.delete(&manifest_key(name, &p.id)).await?;
            self.storage.delete(&part_key(name, &p.id)).await?;
            cat.remove(&p.id);
        }
        Ok(())
    }

    fn summary(name: &str, cat: &Catalog) -> DatasetSummary {
        DatasetSummary {
            name: name.to_string(),
            rows: cat.parts.values().map(|p| p.rows).sum(),
            parts: cat.parts.len(),
            bytes: cat.parts.values().map(|p| p.bytes).sum(),
            created_ms: cat.meta.as_ref().map_or(0, |m| m.created_ms),
        }
    }

    /// All datasets.
    pub async fn list(&self) -> Result<Vec<DatasetSummary>> {
        let mut names: Vec<String> = self
            .storage
            .list("datasets/")
            .await?
            .into_iter()
            .filter_map(|k| {
                k.strip_prefix("datasets/")?
                    .strip_suffix("/dataset.json")
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        let mut out = Vec::new();
        for n in names {
            out.push(
                self.with_catalog(&n, async |c| Self::summary(&n, c))
                    .await?,
            );
        }
        Ok(out)
    }

    /// Schema, size, parts and lineage of a dataset; `None` if it does not exist.
    pub async fn describe(&self, name: &str) -> Result<Option<DatasetDetail>> {
        self.with_catalog(name, async |c| {
            let meta = c.meta.as_ref()?;
            let schema = meta
                .schema
                .iter()
                .flat_map(|s| s.fields().iter())
                .map(|f| {
                    serde_json::json!({
                        "name": f.name(), "type": f.data_type().to_string(),
                        "nullable": f.is_nullable()
                    })
                })
                .collect();
            Some(DatasetDetail {
                summary: Self::summary(name, c),
                schema,
                part_list: c.parts.values().cloned().collect(),
            })
        })
        .await
    }

    /// Rows `offset..offset+limit` in part order, or `None` if the dataset does not exist.
    pub async fn rows(
        &self,
        name: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Option<(SchemaRef, Vec<RecordBatch>)>> {
        let plan = self
            .with_catalog(name, async |c| {
                let meta = c.meta.as_ref()?;
                Some((
                    meta.schema.clone(),
                    c.parts.values().cloned().collect::<Vec<_>>(),
                ))
            })
            .await?;
        let Some((schema, parts)) = plan else {
            return Ok(None);
        };
        let schema = Arc::new(schema.unwrap_or_else(Schema::empty));
        let (mut skip, mut left) = (offset, limit);
        let mut out = Vec::new();
        for p in parts {
            if left == 0 {
                break;
            }
            if skip >= p.rows {
                skip -= p.rows;
                continue;
            }
            let Some(bytes) = self.storage.get(&part_key(name, &p.id)).await? else {
                continue; // retracted while we read
            };
            let (_, batches) = tokio::task::spawn_blocking(move || parquet::decode(bytes))
                .await?
                .with_context(|| format!("part {} of {name}", p.id))?;
            for b in batches {
                let n = b.num_rows() as u64;
                if skip >= n {
                    skip -= n;
                    continue;
                }
                let take = (n - skip).min(left);
                out.push(b.slice(skip as usize, take as usize));
                left -= take;
                skip = 0;
                if left == 0 {
                    break;
                }
            }
        }
        Ok(Some((schema, out)))
    }

    /// Read one part's Parquet bytes back as batches (hook input).
    pub async fn read_part(&self, key: &str) -> Result<Option<(SchemaRef, Vec<RecordBatch>)>> {
        let Some(bytes) = self.storage.get(key).await? else {
            return Ok(None);
        };
        Ok(Some(
            tokio::task::spawn_blocking(move || parquet::decode(bytes)).await??,
        ))
    }

    /// Delete a dataset: manifests first (the parts vanish from view at once), then the rest.
    pub async fn delete(&self, name: &str) -> Result<bool> {
        let handle = self.handle(name);
        let mut guard = handle.lock().await;
        let keys = self.storage.list(&format!("datasets/{name}/")).await?;
        if keys.is_empty() {
            return Ok(false);
        }
        let (manifests, rest): (Vec<_>, Vec<_>) = keys
            .into_iter()
            .partition(|k| k.ends_with(".json") && k.contains("/parts/"));
        for k in manifests.iter().chain(rest.iter()) {
            self.storage.delete(k).await?;
        }
        *guard = None;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(id: &str, t: u64, hook: &str, source: &str) -> PartManifest {
        PartManifest {
            id: id.into(),
            rows: 1,
            bytes: 1,
            created_ms: t,
            lineage: PartLineage {
                hook: Some(hook.into()),
                source: Some(source.into()),
                ..Default::default()
            },
        }
    }

    fn ids<'a>(it: impl Iterator<Item = &'a PartManifest>) -> Vec<&'a str> {
        it.map(|p| p.id.as_str()).collect()
    }

    #[test]
    fn catalog_indexes_follow_inserts_replacements_and_removals() {
        let mut c = Catalog::default();
        c.insert(part("b", 2, "h", "raw/x.csv"));
        c.insert(part("a", 1, "h", "raw/x.csv"));
        c.insert(part("c", 3, "h", "raw/y.csv"));
        c.insert(part("d", 4, "other", "raw/x.csv"));
        assert_eq!(ids(c.parts.values()), ["a", "b", "c", "d"], "row order");
        assert_eq!(c.find("c").map(|p| p.created_ms), Some(3));
        assert!(c.find("zz").is_none());
        assert_eq!(ids(c.from_source("h", "raw/x.csv")), ["a", "b"]);

        // Replacing a part (a redelivery) keeps one entry, re-indexed under its new source.
        c.insert(part("b", 2, "h", "raw/y.csv"));
        assert_eq!(c.parts.len(), 4);
        assert_eq!(ids(c.from_source("h", "raw/x.csv")), ["a"]);
        assert_eq!(ids(c.from_source("h", "raw/y.csv")), ["b", "c"]);

        c.remove("a");
        c.remove("a");
        assert!(c.find("a").is_none());
        assert_eq!(ids(c.from_source("h", "raw/x.csv")), Vec::<&str>::new());
        assert!(!c.by_source.contains_key(&("h".into(), "raw/x.csv".into())));
        assert_eq!(ids(c.parts.values()), ["b", "c", "d"]);
        assert_eq!(c.ids.len(), 3);
    }
}
