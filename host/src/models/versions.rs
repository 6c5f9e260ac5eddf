//! The model registry: named models, immutable numbered versions, movable aliases, a publish
//! gate, and the one loaded tract plan per version that serving shares.
//!
//! Layout in the store (MLflow's model registry has the same shape):
//! `models/{name}/model.json` (aliases, gate), `models/{name}/v{N}/model.onnx` and
//! `models/{name}/v{N}/version.json`, plus `v{N}/transform-{i}.state` for fitted transforms.
//! A version becomes visible when its `version.json` is written, after the ONNX bytes, and
//! disappears when that file is deleted, before the bytes: a crash never exposes a version
//! without its model. Aliases are only ever set to such complete versions.
//!
//! The registry is the single writer for its store (like the plugin registry): metadata lives in
//! memory, loaded at start, written through on every change under one lock.

use super::batcher::{Batcher, Batching, batchable};
use super::evaluate::METRICS;
use super::onnx::{LoadError, LoadedModel, Signature, load};
use super::plans::{PlanCache, PlanLimits};
use crate::ops::notify::Notifier;
use crate::platform::clock::now_secs;
use crate::platform::names::valid_name;
use crate::platform::storage::Storage;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Alias that `POST /v2/models/{name}/infer` (no version) serves; the latest version otherwise.
pub const PRODUCTION: &str = "production";

/// A transform fitted at training time, applied again in front of the model at serving time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedTransform {
    pub plugin: String,
    pub plugin_version: u32,
    /// Store key of the fitted state.
    pub state_key: String,
    pub config: Vec<(String, String)>,
}

/// A fitted transform before it is stored: its state goes into the version's directory.
#[derive(Debug, Clone)]
pub struct NewTransform {
    pub plugin: String,
    pub plugin_version: u32,
    pub config: Vec<(String, String)>,
    pub state: bytes::Bytes,
}

/// Where a version came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Provenance {
    /// `upload` or `training`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hyperparameters: BTreeMap<String, String>,
}

/// One immutable model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub model: String,
    pub version: u32,
    pub created_at: u64,
    pub digest: String,
    pub size: u64,
    pub signature: Signature,
    pub source: Provenance,
    /// Evaluation on the held-out test split (see `metrics`), when trained here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<serde_json::Value>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<FittedTransform>,
}

/// Per-model settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub name: String,
    #[serde(default)]
    pub aliases: BTreeMap<String, u32>,
    /// Publish gate: `min_<metric>` / `max_<metric>` thresholds (see [`Gate`]).
    #[serde(default)]
    pub gate: Gate,
    /// The number the next version gets. Numbers are never reused, even after a delete, so a
    /// version number always means the same model.
    #[serde(default)]
    pub next_version: u32,
    /// Dynamic batching of inference requests; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batching: Option<Batching>,
}

/// A publish gate: every `min_x` requires metric `x` ≥ the value, every `max_x` ≤ it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Gate(pub BTreeMap<String, f64>);

impl Gate {
    /// Check the thresholds against scalar `metrics`; the error lists every failed rule. A
    /// metric that is missing or not finite (NaN) fails its rule.
    pub fn check(&self, metrics: &BTreeMap<String, f64>) -> Result<(), String> {
        let mut failed = Vec::new();
        for (rule, &bound) in &self.0 {
            let (metric, min) = match (rule.strip_prefix("min_"), rule.strip_prefix("max_")) {
                (Some(m), _) => (m, true),
                (_, Some(m)) => (m, false),
                _ => {
                    failed.push(format!("{rule}: not a min_/max_ rule"));
                    continue;
                }
            };
            match metrics.get(metric) {
                None => failed.push(format!("{rule}: metric `{metric}` was not computed")),
                Some(&v) if !v.is_finite() => failed.push(format!("{rule}: {metric} is {v}")),
                Some(&v) if (min && v < bound) || (!min && v > bound) => failed.push(format!(
                    "{rule}: {metric} = {v:.6} (needs {} {bound})",
                    if min { "≥" } else { "≤" }
                )),
                Some(_) => {}
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }

    /// Every key is `min_<metric>` or `max_<metric>` of a metric the host computes, with a
    /// finite bound.
    pub fn validate(&self) -> Result<(), String> {
        for (k, v) in &self.0 {
            let metric = k.strip_prefix("min_").or_else(|| k.strip_prefix("max_"));
            let Some(metric) = metric else {
                return Err(format!(
                    "gate rule `{k}` must be min_<metric> or max_<metric>"
                ));
            };
            if !METRICS.contains(&metric) {
                return Err(format!(
                    "gate rule `{k}`: unknown metric `{metric}` (one of {})",
                    METRICS.join(", ")
                ));
            }
            if !v.is_finite() {
                return Err(format!("gate rule `{k}` needs a finite number"));
            }
        }
        Ok(())
    }
}

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    BadName(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("storage: {0:#}")]
    Storage(#[from] anyhow::Error),
}

#[derive(Default)]
struct Entry {
    record: ModelRecord,
    versions: BTreeMap<u32, Arc<ModelVersion>>,
}

/// The fitted transform states of one version, in order.
type States = Arc<Vec<bytes::Bytes>>;

pub struct ModelRegistry {
    storage: Storage,
    models: Mutex<BTreeMap<String, Entry>>,
    /// Loaded plans, one per version, loaded once (the first request or the upload) and
    /// bounded by count and size (least recently used out).
    plans: PlanCache,
    /// The batching queue of each version of a model with batching on.
    batchers: Mutex<HashMap<(String, u32), Arc<Batcher>>>,
    /// Fitted transform states per version, read once.
    states: Mutex<HashMap<(String, u32), States>>,
    /// Serialises writers, so version numbers and `model.json` writes never race.
    write: tokio::sync::Mutex<()>,
    /// Where `model.published` goes when an alias moves.
    notifier: Arc<Notifier>,
}

fn model_key(name: &str) -> String {
    format!("models/{name}/model.json")
}

fn version_dir(name: &str, v: u32) -> String {
    format!("models/{name}/v{v}")
}

/// Aliases are names that do not read as version numbers (`versions/3` must mean version 3).
pub fn check_alias(alias: &str) -> Result<(), ModelError> {
    check_name("alias", alias)?;
    if alias.parse::<u64>().is_ok() {
        return Err(ModelError::BadName(format!(
            "alias {alias:?} would read as a version number"
        )));
    }
    Ok(())
}

/// Model names follow plugin names: 1–64 of `a-z 0-9 - _ .`, starting alphanumeric.
pub fn check_name(what: &str, name: &str) -> Result<(), ModelError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ModelError::BadName(format!(
            "invalid {what} {name:?}: use 1-64 of a-z 0-9 - _ . starting with a letter or digit"
        )))
    }
}

impl ModelRegistry {
    /// Load every model's metadata from the store.
    /// The registry as the store holds it; alias moves are reported to `notifier`.
    pub async fn open(
        storage: Storage,
        plans: PlanLimits,
        notifier: Arc<Notifier>,
    ) -> anyhow::Result<ModelRegistry> {
        let mut models = BTreeMap::new();
        for key in storage.list("models/").await? {
            let Some(rest) = key.strip_prefix("models/") else {
                continue;
            };
            let parts: Vec<&str> = rest.split('/').collect();
            match parts.as_slice() {
                [name, "model.json"] => {
                    let record: ModelRecord = storage.get_json(&key).await?.context("vanished")?;
                    models
                        .entry(name.to_string())
                        .or_insert_with(Entry::default)
                        .record = record;
                }
                [name, v, "version.json"] if v.starts_with('v') => {
                    let Some(mv) = storage.get_json::<ModelVersion>(&key).await? else {
                        continue;
                    };
                    let e = models
                        .entry(name.to_string())
                        .or_insert_with(Entry::default);
                    e.versions.insert(mv.version, Arc::new(mv));
                }
                _ => {}
            }
        }
        for (name, e) in models.iter_mut() {
            e.record.name = name.clone();
            // An alias to a version that is gone (deleted by hand) is dropped, not served.
            e.record.aliases.retain(|_, v| e.versions.contains_key(v));
        }
        Ok(ModelRegistry {
            storage,
            models: Mutex::new(models),
            plans: PlanCache::new(plans),
            states: Mutex::default(),
            batchers: Mutex::default(),
            write: tokio::sync::Mutex::new(()),
            notifier,
        })
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Every model with its versions.
    pub fn list(&self) -> Vec<(ModelRecord, Vec<Arc<ModelVersion>>)> {
        let models = self.models.lock().unwrap();
        models
            .values()
            .filter(|e| !e.versions.is_empty())
            .map(|e| (e.record.clone(), e.versions.values().cloned().collect()))
            .collect()
    }

    /// One model with its versions.
    pub fn get(&self, name: &str) -> Result<(ModelRecord, Vec<Arc<ModelVersion>>), ModelError> {
        let models = self.models.lock().unwrap();
        match models.get(name) {
            Some(e) if !e.versions.is_empty() => {
                Ok((e.record.clone(), e.versions.values().cloned().collect()))
            }
            _ => Err(ModelError::NotFound(format!("no model named `{name}`"))),
        }
    }

    /// The version `name` serves: `reference` is a version number or an alias; without one, the
    /// `production` alias, or the latest version if no such alias is set.
    pub fn resolve(
        &self,
        name: &str,
        reference: Option<&str>,
    ) -> Result<Arc<ModelVersion>, ModelError> {
        let models = self.models.lock().unwrap();
        let e = models
            .get(name)
            .filter(|e| !e.versions.is_empty())
            .ok_or_else(|| ModelError::NotFound(format!("no model named `{name}`")))?;
        let version = match reference {
            Some(r) => match r.parse::<u32>() {
                Ok(v) => v,
                Err(_) => *e.record.aliases.get(r).ok_or_else(|| {
                    ModelError::NotFound(format!("model `{name}` has no version or alias `{r}`"))
                })?,
            },
            None => match e.record.aliases.get(PRODUCTION) {
                Some(v) => *v,
                None => *e.versions.keys().next_back().expect("non-empty"),
            },
        };
        e.versions
            .get(&version)
            .cloned()
            .ok_or_else(|| ModelError::NotFound(format!("model `{name}` has no version {version}")))
    }

    /// The loaded plan of a version: loaded and optimised on first use, shared afterwards.
    pub async fn plan(&self, v: &ModelVersion) -> Result<Arc<LoadedModel>, ModelError> {
        let cell = self.plans.cell((v.model.clone(), v.version), v.size);
        let key = format!("{}/model.onnx", version_dir(&v.model, v.version));
        cell.get_or_try_init(|| async {
            let bytes =
                self.storage.get(&key).await?.ok_or_else(|| {
                    ModelError::NotFound(format!("{key} is missing from the store"))
                })?;
            let loaded = tokio::task::spawn_blocking(move || load(&bytes))
                .await
                .map_err(|e| ModelError::Storage(anyhow::anyhow!("loading panicked: {e}")))??;
            self.plans.loaded();
            Ok(Arc::new(loaded))
        })
        .await
        .cloned()
    }

    /// Whether a version's plan is loaded now (readiness checks ask without loading it).
    pub fn is_loaded(&self, v: &ModelVersion) -> bool {
        self.plans.is_loaded(&(v.model.clone(), v.version))
    }

    /// The plan cache's counters: (versions loaded, their ONNX bytes, loads, evictions).
    pub fn plan_stats(&self) -> (usize, u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let (n, bytes) = self.plans.usage();
        (
            n,
            bytes,
            self.plans.loads.load(Relaxed),
            self.plans.evictions.load(Relaxed),
        )
    }

    /// The fitted states of a version's transforms, in order (read from the store once).
    pub async fn transform_states(
        &self,
        v: &ModelVersion,
    ) -> Result<Arc<Vec<bytes::Bytes>>, ModelError> {
        let key = (v.model.clone(), v.version);
        if let Some(s) = self.states.lock().unwrap().get(&key) {
            return Ok(s.clone());
        }
        let mut states = Vec::with_capacity(v.transforms.len());
        for t in &v.transforms {
            let bytes = self.storage.get(&t.state_key).await?.ok_or_else(|| {
                ModelError::NotFound(format!("{} is missing from the store", t.state_key))
            })?;
            states.push(bytes);
        }
        let states = Arc::new(states);
        self.states.lock().unwrap().insert(key, states.clone());
        Ok(states)
    }

    /// The next version number of `name`, reserved in `model.json` before anything of the
    /// version is written: a crash after this skips the number, never reuses it. Callers hold
    /// the write lock.
    async fn reserve_version(&self, name: &str) -> Result<u32, ModelError> {
        let mut record = {
            let models = self.models.lock().unwrap();
            match models.get(name) {
                Some(e) => {
                    let mut r = e.record.clone();
                    let after_latest = e.versions.keys().next_back().map_or(1, |v| v + 1);
                    r.next_version = r.next_version.max(after_latest);
                    r
                }
                None => ModelRecord {
                    name: name.to_string(),
                    next_version: 1,
                    ..Default::default()
                },
            }
        };
        let version = record.next_version;
        record.next_version = version + 1;
        self.storage.put_json(&model_key(name), &record).await?;
        self.models
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default()
            .record = record;
        Ok(version)
    }

    /// Store the fitted states of a version's transforms under its directory.
    async fn store_transforms(
        &self,
        dir: &str,
        transforms: Vec<NewTransform>,
    ) -> Result<Vec<FittedTransform>, ModelError> {
        let mut fitted = Vec::with_capacity(transforms.len());
        for (i, t) in transforms.into_iter().enumerate() {
            let state_key = format!("{dir}/transform-{i}.state");
            self.storage.put(&state_key, t.state).await?;
            fitted.push(FittedTransform {
                plugin: t.plugin,
                plugin_version: t.plugin_version,
                state_key,
                config: t.config,
            });
        }
        Ok(fitted)
    }

    /// Store `onnx` as the next version of `name` (creating the model), after checking that
    /// tract loads and optimises it. The loaded plan is kept, so serving starts warm.
    pub async fn create_version(
        &self,
        name: &str,
        onnx: bytes::Bytes,
        source: Provenance,
        metrics: Option<serde_json::Value>,
        metadata: BTreeMap<String, String>,
        transforms: Vec<NewTransform>,
    ) -> Result<Arc<ModelVersion>, ModelError> {
        check_name("model name", name)?;
        let bytes = onnx.clone();
        let loaded = tokio::task::spawn_blocking(move || load(&bytes))
            .await
            .map_err(|e| ModelError::Storage(anyhow::anyhow!("loading panicked: {e}")))??;
        let _w = self.write.lock().await;
        let version = self.reserve_version(name).await?;
        let dir = version_dir(name, version);
        let fitted = self.store_transforms(&dir, transforms).await?;
        use sha2::Digest;
        let mv = ModelVersion {
            model: name.to_string(),
            version,
            created_at: now_secs(),
            digest: hex::encode(sha2::Sha256::digest(&onnx)),
            size: onnx.len() as u64,
            signature: loaded.signature.clone(),
            source,
            metrics,
            metadata,
            transforms: fitted,
        };
        self.storage.put(&format!("{dir}/model.onnx"), onnx).await?;
        self.storage
            .put_json(&format!("{dir}/version.json"), &mv)
            .await?;
        let mv = Arc::new(mv);
        {
            let mut models = self.models.lock().unwrap();
            let e = models.entry(name.to_string()).or_default();
            e.record.name = name.to_string();
            e.versions.insert(version, mv.clone());
        }
        let cell = self.plans.cell((name.to_string(), version), mv.size);
        if cell.set(Arc::new(loaded)).is_ok() {
            self.plans.loaded();
        }
        Ok(mv)
    }

    async fn update_record(
        &self,
        name: &str,
        change: impl FnOnce(&mut Entry) -> Result<(), ModelError>,
    ) -> Result<ModelRecord, ModelError> {
        let _w = self.write.lock().await;
        let mut record = {
            let models = self.models.lock().unwrap();
            let e = models
                .get(name)
                .filter(|e| !e.versions.is_empty())
                .ok_or_else(|| ModelError::NotFound(format!("no model named `{name}`")))?;
            // Apply to a copy first, so a failed write leaves memory as the store has it.
            let mut copy = Entry {
                record: e.record.clone(),
                versions: e.versions.clone(),
            };
            change(&mut copy)?;
            copy.record
        };
        record.name = name.to_string();
        self.storage.put_json(&model_key(name), &record).await?;
        self.models
            .lock()
            .unwrap()
            .get_mut(name)
            .expect("present")
            .record = record.clone();
        Ok(record)
    }

    /// Point `alias` at `version` (which must exist). Aliases are names that are not numbers.
    pub async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: u32,
    ) -> Result<ModelRecord, ModelError> {
        check_alias(alias)?;
        let record = self
            .update_record(name, |e| {
                if !e.versions.contains_key(&version) {
                    return Err(ModelError::NotFound(format!(
                        "model `{name}` has no version {version}"
                    )));
                }
                e.record.aliases.insert(alias.to_string(), version);
                Ok(())
            })
            .await?;
        self.notifier.emit(
            "model.published",
            serde_json::json!({"model": name, "alias": alias, "version": version}),
        );
        Ok(record)
    }

    /// Remove `alias`.
    pub async fn delete_alias(&self, name: &str, alias: &str) -> Result<ModelRecord, ModelError> {
        self.update_record(name, |e| match e.record.aliases.remove(alias) {
            Some(_) => Ok(()),
            None => Err(ModelError::NotFound(format!(
                "model `{name}` has no alias `{alias}`"
            ))),
        })
        .await
    }

    /// Set the model's publish gate.
    pub async fn set_gate(&self, name: &str, gate: Gate) -> Result<ModelRecord, ModelError> {
        gate.validate().map_err(ModelError::Invalid)?;
        self.update_record(name, |e| {
            e.record.gate = gate;
            Ok(())
        })
        .await
    }

    /// Turn dynamic batching on (`Some`) or off for every version of a model.
    pub async fn set_batching(
        &self,
        name: &str,
        batching: Option<Batching>,
    ) -> Result<ModelRecord, ModelError> {
        if let Some(b) = &batching {
            b.validate().map_err(ModelError::Invalid)?;
        }
        let record = self
            .update_record(name, |e| {
                e.record.batching = batching;
                Ok(())
            })
            .await?;
        // Queues of the old setting drain and stop when their last request is answered.
        self.batchers.lock().unwrap().retain(|(m, _), _| m != name);
        Ok(record)
    }

    /// The batching queue for a version, if its model has batching on and the model can be
    /// batched (variable first dimension everywhere).
    pub fn batcher(&self, v: &ModelVersion, plan: &Arc<LoadedModel>) -> Option<Arc<Batcher>> {
        if !batchable(plan) {
            return None;
        }
        // Both locks, models first (as everywhere): the setting read and the queue found or
        // made agree, and no queue is made for a version deleted meanwhile.
        let models = self.models.lock().unwrap();
        let e = models.get(&v.model)?;
        let cfg = e.record.batching?;
        if !e.versions.contains_key(&v.version) {
            return None;
        }
        let mut batchers = self.batchers.lock().unwrap();
        let key = (v.model.clone(), v.version);
        if let Some(b) = batchers.get(&key)
            && b.config() == cfg
        {
            return Some(b.clone());
        }
        let b = Arc::new(Batcher::start(plan.clone(), cfg));
        batchers.insert(key, b.clone());
        Some(b)
    }

    /// `(model, version, requests, batches)` of every batching queue, for metrics.
    pub fn all_batch_stats(&self) -> Vec<(String, u32, u64, u64)> {
        use std::sync::atomic::Ordering::Relaxed;
        let batchers = self.batchers.lock().unwrap();
        batchers
            .iter()
            .map(|((m, v), b)| {
                let s = b.stats();
                (
                    m.clone(),
                    *v,
                    s.requests.load(Relaxed),
                    s.batches.load(Relaxed),
                )
            })
            .collect()
    }

    /// Batching counters of each version of `name` that has a queue, by version.
    pub fn batch_stats(&self, name: &str) -> BTreeMap<u32, serde_json::Value> {
        let batchers = self.batchers.lock().unwrap();
        batchers
            .iter()
            .filter(|((m, _), _)| m == name)
            .map(|((_, v), b)| (*v, serde_json::to_value(b.stats()).unwrap_or_default()))
            .collect()
    }

    /// Delete a version; refused while an alias points at it.
    pub async fn delete_version(&self, name: &str, version: u32) -> Result<(), ModelError> {
        let _w = self.write.lock().await;
        let mv = {
            let models = self.models.lock().unwrap();
            let e = models
                .get(name)
                .filter(|e| !e.versions.is_empty())
                .ok_or_else(|| ModelError::NotFound(format!("no model named `{name}`")))?;
            let aliases: Vec<&str> = e
                .record
                .aliases
                .iter()
                .filter(|(_, v)| **v == version)
                .map(|(a, _)| a.as_str())
                .collect();
            if !aliases.is_empty() {
                return Err(ModelError::Conflict(format!(
                    "version {version} of `{name}` is aliased as {}; move the alias first",
                    aliases.join(", ")
                )));
            }
            e.versions.get(&version).cloned().ok_or_else(|| {
                ModelError::NotFound(format!("model `{name}` has no version {version}"))
            })?
        };
        let dir = version_dir(name, version);
        self.storage.delete(&format!("{dir}/version.json")).await?;
        self.models
            .lock()
            .unwrap()
            .get_mut(name)
            .expect("present")
            .versions
            .remove(&version);
        self.plans.remove(&(name.to_string(), version));
        self.storage.delete(&format!("{dir}/model.onnx")).await?;
        for t in &mv.transforms {
            self.storage.delete(&t.state_key).await?;
        }
        Ok(())
    }
}
