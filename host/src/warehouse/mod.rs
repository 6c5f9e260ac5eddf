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
//! The catalog (per dataset: each part's id, time, size and source, ~130 bytes) is cached in
//! memory after the first read (see the `catalog` module); this host is its only writer. Several replicas
//! will need the event bus to share commits (the NATS issue).

mod catalog;
pub mod parquet;

use catalog::Catalog;

use crate::platform::clock::now_ms;
use crate::platform::storage::Storage;
use anyhow::{Context, Result};
use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
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

/// A dataset's rows as they are read, one message per part (see [`Warehouse::row_stream`]).
pub type RowParts = tokio::sync::mpsc::Receiver<Result<Vec<RecordBatch>>>;

/// Rows `skip..skip+take` of one part; `None` if the part is gone.
async fn read_rows(
    storage: &Storage,
    dataset: &str,
    id: &str,
    skip: u64,
    take: u64,
) -> Result<Option<Vec<RecordBatch>>> {
    let Some(bytes) = storage.get(&part_key(dataset, id)).await? else {
        return Ok(None);
    };
    let (skip, take) = (skip as usize, usize::try_from(take).unwrap_or(usize::MAX));
    let (_, batches) = tokio::task::spawn_blocking(move || parquet::decode_rows(bytes, skip, take))
        .await?
        .with_context(|| format!("part {id} of {dataset}"))?;
    Ok(Some(batches))
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
        let mut cat = Catalog::default();
        cat.meta = meta;
        for key in self
            .storage
            .list(&format!("datasets/{name}/parts/"))
            .await?
        {
            if !key.ends_with(".json") {
                continue;
            }
            if let Some(p) = self.storage.get_json::<PartManifest>(&key).await? {
                cat.insert(&p);
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
        if cat.meta.is_none() && cat.is_empty() {
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

    /// The manifest of a committed part, if it is committed (read from the store only then).
    pub async fn committed(&self, name: &str, id: &str) -> Result<Option<PartManifest>> {
        if self
            .with_catalog(name, async |c| c.get(id))
            .await?
            .is_none()
        {
            return Ok(None);
        }
        self.storage.get_json(&manifest_key(name, id)).await
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
            tokio::task::spawn_blocking(move || crate::platform::formats::decode_ipc(&ipc))
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
        if let Some(t) = parquet::unstorable(&schema) {
            return Err(CommitError::Invalid(format!(
                "column type {t} cannot be stored in a dataset (Parquet has no union type)"
            )));
        }
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
            created_ms: cat.get(id).map_or_else(now_ms, |p| p.created_ms),
            lineage,
        };
        self.storage.put(&part_key(name, id), bytes).await?;
        self.storage
            .put_json(&manifest_key(name, id), &manifest)
            .await?;
        cat.insert(&manifest);
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
        let ids = self
            .with_catalog(name, async |c| c.made_from(hook, source, keep))
            .await?;
        let mut out = Vec::new();
        for id in ids {
            let Some(m) = self
                .storage
                .get_json::<PartManifest>(&manifest_key(name, &id))
                .await?
            else {
                continue;
            };
            let l = &m.lineage;
            if l.hook.as_deref() == Some(hook)
                && l.source.as_deref() == Some(source)
                && (keep_etag.is_none() || l.source_etag.as_deref() != keep_etag)
            {
                out.push(m);
            }
        }
        Ok(out)
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
        let (rows, parts, bytes) = cat.totals();
        DatasetSummary {
            name: name.to_string(),
            rows,
            parts,
            bytes,
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

    /// Schema, size, and parts `offset..offset+limit` in row order with their lineage (read
    /// from their manifests); `None` if the dataset does not exist.
    pub async fn describe(
        &self,
        name: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Option<DatasetDetail>> {
        let found = self
            .with_catalog(name, async |c| {
                let meta = c.meta.as_ref()?;
                let schema: Vec<_> = meta
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
                let page: Vec<_> = c
                    .ordered()
                    .into_iter()
                    .skip(offset)
                    .take(limit)
                    .map(|(id, _)| id)
                    .collect();
                Some((Self::summary(name, c), schema, page))
            })
            .await?;
        let Some((summary, schema, page)) = found else {
            return Ok(None);
        };
        let mut part_list = Vec::with_capacity(page.len());
        for id in page {
            // A part removed since is left out.
            if let Some(m) = self.storage.get_json(&manifest_key(name, &id)).await? {
                part_list.push(m);
            }
        }
        Ok(Some(DatasetDetail {
            summary,
            schema,
            part_list,
        }))
    }

    /// Every part id in row order; `None` if the dataset does not exist.
    pub async fn part_ids(&self, name: &str) -> Result<Option<Vec<String>>> {
        self.with_catalog(name, async |c| {
            c.meta.as_ref()?;
            Some(c.ordered().into_iter().map(|(id, _)| id).collect())
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
        let Some((schema, mut parts)) = self.row_stream(name, offset, limit).await? else {
            return Ok(None);
        };
        let mut out = Vec::new();
        while let Some(batches) = parts.recv().await {
            out.extend(batches?);
        }
        Ok(Some((schema, out)))
    }

    /// Rows `offset..offset+limit` in part order, a part at a time: only the rows asked for
    /// are decoded, and the next part is read once the receiver has taken the last one, so a
    /// response streams with about one part in memory. Dropping the receiver stops the reads.
    /// `None` if the dataset does not exist.
    pub async fn row_stream(
        &self,
        name: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Option<(SchemaRef, RowParts)>> {
        let plan = self
            .with_catalog(name, async |c| {
                let meta = c.meta.as_ref()?;
                Some((meta.schema.clone(), c.ordered()))
            })
            .await?;
        let Some((schema, parts)) = plan else {
            return Ok(None);
        };
        let schema = Arc::new(schema.unwrap_or_else(Schema::empty));
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let (storage, name) = (self.storage.clone(), name.to_string());
        let (mut skip, mut left) = (offset, limit);
        let wanted: Vec<(String, u64, u64)> = parts
            .into_iter()
            .filter_map(|(id, p)| {
                if left == 0 || skip >= p.rows {
                    skip -= skip.min(p.rows);
                    return None;
                }
                let take = (p.rows - skip).min(left);
                let range = (id, skip, take);
                (skip, left) = (0, left - take);
                Some(range)
            })
            .collect();
        tokio::spawn(async move {
            for (id, skip, take) in wanted {
                let read = read_rows(&storage, &name, &id, skip, take).await;
                let failed = read.is_err();
                let Some(batches) = read.transpose() else {
                    continue; // retracted while we read
                };
                if tx.send(batches).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Some((schema, rx)))
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
