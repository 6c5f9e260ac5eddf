//! The body of `POST /v1/train`, with defaults a scikit-learn or MLflow user would expect, and
//! its validation: each error names the field.
//!
//! ```json
//! {"model": "breast-cancer", "trainer": "logistic-regression", "dataset": "bc",
//!  "label": "label", "features": ["mean_radius", "..."],
//!  "hyperparameters": {"c": [0.1, 1, 10]}, "search": {"kind": "grid"},
//!  "metric": "auc", "split": {"validation": 0.2, "test": 0.2, "seed": 42},
//!  "transforms": [{"plugin": "standard-scaler"}],
//!  "alias": "production", "gate": {"min_auc": 0.98}}
//! ```

use super::super::evaluate::METRICS;
use super::super::search::{Search, candidates};
use super::super::split::SplitSpec;
use super::super::versions::{Gate, check_alias, check_name};
use super::Deps;
use crate::runtime::World;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Classification or regression; by default inferred from the label's type (integers and
/// booleans: classification; floats: regression).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Classification,
    Regression,
}

/// A transform fitted on the train split and applied in front of the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformStep {
    pub plugin: String,
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

fn production() -> Option<String> {
    Some(super::super::versions::PRODUCTION.to_string())
}

fn default_timeout() -> u64 {
    600_000
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainRequest {
    /// Registry name the new version goes to.
    pub model: String,
    /// A plugin of the `trainer` world.
    pub trainer: String,
    /// A warehouse dataset.
    pub dataset: String,
    pub label: String,
    /// Feature columns; by default every numeric column but the label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Task>,
    /// Hyperparameter space (see `search`).
    #[serde(default)]
    pub hyperparameters: BTreeMap<String, Value>,
    #[serde(default)]
    pub search: Search,
    /// Metric that picks the best candidate on the validation split: `auc` (classification, or
    /// `accuracy` when AUC is undefined) and `rmse` (regression) by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default)]
    pub split: SplitSpec,
    #[serde(default)]
    pub transforms: Vec<TransformStep>,
    /// Alias moved to the new version when it passes the gate; `null` to never move one.
    #[serde(default = "production")]
    pub alias: Option<String>,
    /// Publish gate; the model's own gate when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
    /// Deadline of each trainer call.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

impl TrainRequest {
    pub fn candidates(&self) -> Result<Vec<BTreeMap<String, String>>, String> {
        candidates(&self.hyperparameters, &self.search)
    }

    /// Check everything that can be checked before running.
    pub fn validate(&self, deps: &Deps) -> Result<(), String> {
        check_name("model name", &self.model).map_err(|e| format!("model: {e}"))?;
        let world = |field: &str, name: &str, want: World| -> Result<(), String> {
            let entry = deps
                .plugins
                .get(name)
                .ok_or_else(|| format!("{field}: no plugin named `{name}`"))?;
            let got = entry.live().prepared.world();
            if got != want {
                return Err(format!(
                    "{field}: plugin `{name}` is a {got:?} plugin, not a {want:?}"
                )
                .to_lowercase());
            }
            Ok(())
        };
        world("trainer", &self.trainer, World::Trainer)?;
        for (i, t) in self.transforms.iter().enumerate() {
            world(
                &format!("transforms[{i}].plugin"),
                &t.plugin,
                World::Transform,
            )?;
        }
        if self.label.trim().is_empty() {
            return Err("label: must name the label column".into());
        }
        if let Some(f) = &self.features {
            if f.is_empty() {
                return Err(
                    "features: must not be empty (omit it to use every numeric column)".into(),
                );
            }
            if f.contains(&self.label) {
                return Err(format!("features: `{}` is the label", self.label));
            }
        }
        self.split.validate().map_err(|e| format!("split: {e}"))?;
        let n = self
            .candidates()
            .map_err(|e| format!("hyperparameters: {e}"))?
            .len();
        if n > 1 && self.split.validation == 0.0 {
            return Err(
                "split.validation: choosing among several candidates needs a validation split"
                    .into(),
            );
        }
        for key in self.hyperparameters.keys() {
            if ["label", "features", "seed", "task"].contains(&key.as_str()) {
                return Err(format!("hyperparameters: `{key}` is set by the job itself"));
            }
        }
        if let Some(m) = &self.metric
            && !METRICS.contains(&m.as_str())
        {
            return Err(format!(
                "metric: unknown metric `{m}` (one of {})",
                METRICS.join(", ")
            ));
        }
        if let Some(a) = &self.alias {
            check_alias(a).map_err(|e| format!("alias: {e}"))?;
        }
        if let Some(g) = &self.gate {
            g.validate().map_err(|e| format!("gate: {e}"))?;
        }
        if self.timeout_ms == 0 {
            return Err("timeout_ms: must be positive".into());
        }
        Ok(())
    }
}
