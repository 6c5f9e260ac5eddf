//! The pipeline file: one TOML document declaring collect → clean → transform → split → train →
//! evaluate → publish, and what starts it. Parsing errors come from the TOML parser with the line,
//! column and a caret under the bad token; checks that need the registry (a plugin of the wrong
//! world, a bad cron line) name the field as a path (`clean[1].plugin`) and its line.
//!
//! ```toml
//! description = "churn model, retrained as data lands"
//!
//! [source]                       # or: dataset = "churn-raw"
//! prefix = "raw/churn/"
//! suffix = ".csv"
//! collector = "csv-collector"
//!
//! [[clean]]
//! plugin = "dedup"
//! [[clean]]
//! plugin = "drop-nulls"
//!
//! [[transform]]
//! plugin = "standard-scaler"
//!
//! [split]
//! validation = 0.2
//! test = 0.2
//! seed = 42
//!
//! [train]
//! model = "churn"
//! trainer = "logistic-regression"
//! label = "churned"
//! hyperparameters = { c = [0.1, 1.0, 10.0] }
//!
//! [publish]
//! alias = "production"
//! gate = { min_auc = 0.9 }
//!
//! [triggers]
//! cron = "0 3 * * *"             # standard 5 fields (a leading seconds field is accepted)
//! on_new_objects = true          # run when objects land under the source prefix
//!
//! [runs]
//! max_concurrent = 1             # runs of this pipeline at once; more wait, queued
//! keep = 5                       # runs whose intermediate datasets are kept
//! resume = true                  # after a host restart, resume interrupted runs
//! ```

use crate::models::search::Search;
use crate::models::split::SplitSpec;
use crate::models::train::Deps;
use crate::models::train::spec::{Task, TrainRequest, TransformStep};
use crate::models::versions::{Gate, PRODUCTION};
use crate::platform::names::valid_name;
use crate::platform::storage::is_reserved;
use crate::runtime::World;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub source: SourceSpec,
    #[serde(default)]
    pub clean: Vec<StepSpec>,
    #[serde(default)]
    pub transform: Vec<StepSpec>,
    #[serde(default)]
    pub split: SplitSpec,
    pub train: TrainSpec,
    #[serde(default)]
    pub publish: PublishSpec,
    #[serde(default)]
    pub triggers: TriggerSpec,
    #[serde(default)]
    pub runs: RunPolicy,
}

/// Where the rows come from: objects under a prefix read by a collector, or a warehouse dataset
/// (e.g. one a hook keeps up to date), copied when the run starts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub config: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
}

/// A plugin step: a cleaner, or a transform fitted on the train split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub plugin: String,
    /// Plugin configuration (strings, numbers or booleans).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub config: Map<String, Value>,
    /// Deadline of the call, instead of the plugin's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl StepSpec {
    pub fn config_pairs(&self) -> Vec<(String, String)> {
        pairs(&self.config)
    }
}

pub fn pairs(config: &Map<String, Value>) -> Vec<(String, String)> {
    config
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect()
}

fn default_train_timeout() -> u64 {
    600_000
}

/// The training job of the run (see `POST /v1/train` for each field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    pub model: String,
    pub trainer: String,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<Task>,
    #[serde(default)]
    pub hyperparameters: BTreeMap<String, Value>,
    #[serde(default)]
    pub search: Search,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default = "default_train_timeout")]
    pub timeout_ms: u64,
}

fn production() -> String {
    PRODUCTION.to_string()
}

/// Which alias a version that passes the gate moves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishSpec {
    #[serde(default = "production")]
    pub alias: String,
    /// The model's own gate when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
}

impl Default for PublishSpec {
    fn default() -> Self {
        PublishSpec {
            alias: production(),
            gate: None,
        }
    }
}

/// What starts a run besides `POST /v1/pipelines/{name}/runs`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// Run when objects land under the source prefix (or parts land in the source dataset).
    /// Triggers arriving while a triggered run is still queued join it.
    #[serde(default)]
    pub on_new_objects: bool,
}

fn one() -> u32 {
    1
}
fn five() -> usize {
    5
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunPolicy {
    #[serde(default = "one")]
    pub max_concurrent: u32,
    /// Finished runs whose intermediate datasets are kept; older runs' are deleted (their
    /// records stay).
    #[serde(default = "five")]
    pub keep: usize,
    /// Resume runs a host stop interrupted, from the last completed step; when false they are
    /// marked failed.
    #[serde(default = "yes")]
    pub resume: bool,
}

impl Default for RunPolicy {
    fn default() -> Self {
        RunPolicy {
            max_concurrent: 1,
            keep: 5,
            resume: true,
        }
    }
}

/// Parse a 5-field cron line (or 6 with leading seconds).
pub fn cron(line: &str) -> Result<croner::Cron, String> {
    let fields = line.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(format!(
            "{line:?} has {fields} fields; use 5 (minute hour day-of-month month day-of-week)"
        ));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(line)
        .map_err(|e| format!("{line:?}: {e}"))
}

/// Parse a pipeline file: TOML, or JSON when `json`.
pub fn parse(text: &str, json: bool) -> Result<PipelineSpec, String> {
    if json {
        serde_json::from_str(text).map_err(|e| format!("invalid pipeline: {e}"))
    } else {
        toml::from_str(text).map_err(|e| format!("invalid pipeline: {e}"))
    }
}

impl PipelineSpec {
    /// The training request of a run reading `dataset`. The `[train]` section is a training
    /// request without what the pipeline's other sections set (dataset, split, transforms,
    /// publish); it stays a struct of its own because serde cannot refuse unknown fields
    /// through `flatten`. Both sides are destructured whole, so a field added to either fails
    /// to compile until it is mapped here, and validation is the request's own.
    pub fn train_request(&self, dataset: &str) -> TrainRequest {
        let TrainSpec {
            model,
            trainer,
            label,
            features,
            task,
            hyperparameters,
            search,
            metric,
            timeout_ms,
        } = self.train.clone();
        TrainRequest {
            model,
            trainer,
            dataset: dataset.to_string(),
            label,
            features,
            task,
            hyperparameters,
            search,
            metric,
            split: self.split,
            transforms: self
                .transform
                .iter()
                .map(|s| TransformStep {
                    plugin: s.plugin.clone(),
                    config: s.config_pairs().into_iter().collect(),
                })
                .collect(),
            alias: Some(self.publish.alias.clone()),
            gate: self.publish.gate.clone(),
            timeout_ms,
        }
    }

    /// Check everything that can be checked before a run. `Err` starts with the field's path.
    pub fn validate(&self, deps: &Deps) -> Result<(), String> {
        let world = |field: &str, name: &str, want: World| -> Result<(), String> {
            let entry = deps
                .plugins
                .get(name)
                .ok_or_else(|| format!("{field}: no plugin named `{name}`"))?;
            let got = entry.live().prepared.world();
            if got != want {
                return Err(format!(
                    "{field}: plugin `{name}` is a {got} plugin, not a {want}"
                ));
            }
            Ok(())
        };
        let s = &self.source;
        match (&s.prefix, &s.dataset) {
            (Some(_), Some(_)) | (None, None) => {
                return Err("source: set either `prefix` (with a `collector`) or `dataset`".into());
            }
            (Some(prefix), None) => {
                if prefix.is_empty() || prefix.starts_with('/') || prefix.contains("//") {
                    return Err(format!("source.prefix: {prefix:?} is not a key prefix"));
                }
                if is_reserved(prefix) {
                    return Err(format!(
                        "source.prefix: {prefix:?} is inside the host's own namespace"
                    ));
                }
                let collector = s.collector.as_deref().ok_or(
                    "source.collector: a prefix source needs a collector plugin to read its objects",
                )?;
                world("source.collector", collector, World::Collector)?;
            }
            (None, Some(dataset)) => {
                if !valid_name(dataset) {
                    return Err(format!("source.dataset: {dataset:?} is not a dataset name"));
                }
                if s.collector.is_some() || s.suffix.is_some() || !s.config.is_empty() {
                    return Err(
                        "source: `collector`, `suffix` and `config` go with `prefix`, not `dataset`"
                            .into(),
                    );
                }
            }
        }
        for (i, c) in self.clean.iter().enumerate() {
            world(&format!("clean[{i}].plugin"), &c.plugin, World::Cleaner)?;
        }
        for (i, c) in self.transform.iter().enumerate() {
            if c.timeout_ms.is_some() {
                return Err(format!(
                    "transform[{i}].timeout_ms: transforms run under train.timeout_ms"
                ));
            }
        }
        self.train_request("validation")
            .validate(deps)
            .map_err(|e| train_field(&e))?;
        if let Some(line) = &self.triggers.cron {
            cron(line).map_err(|e| format!("triggers.cron: {e}"))?;
        }
        if !(1..=16).contains(&self.runs.max_concurrent) {
            return Err("runs.max_concurrent: must be 1 to 16".into());
        }
        if self.runs.keep == 0 {
            return Err("runs.keep: must keep at least the last run's datasets".into());
        }
        Ok(())
    }
}

/// A training request's error, with its field renamed to where it is in a pipeline file.
fn train_field(e: &str) -> String {
    let (field, rest) = e.split_once(':').unwrap_or(("train", e));
    let head = field.split(['.', '[']).next().unwrap_or(field);
    let renamed = match head {
        "split" => field.to_string(),
        "transforms" => field.replacen("transforms", "transform", 1),
        "alias" | "gate" => format!("publish.{field}"),
        _ => format!("train.{field}"),
    };
    format!("{renamed}:{rest}")
}

/// The line of a field path (`train.trainer`, `clean[1].plugin`) in a TOML text, best effort:
/// the table header, then the key after it.
pub fn locate(text: &str, path: &str) -> Option<usize> {
    let mut segs = path.split('.');
    let table = segs.next()?;
    let key = segs.next();
    let (name, index) = match table.split_once('[') {
        Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()?),
        None => (table, 0),
    };
    let lines: Vec<&str> = text.lines().collect();
    let header = |l: &str| {
        let t = l.trim();
        t == format!("[{name}]") || t == format!("[[{name}]]")
    };
    let start = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| header(l))
        .nth(index)
        .map(|(i, _)| i);
    let Some(start) = start else {
        // `name = ...` or `name.key = ...` at top level.
        return lines
            .iter()
            .position(|l| l.trim_start().starts_with(name))
            .map(|i| i + 1);
    };
    let Some(key) = key else {
        return Some(start + 1);
    };
    let key = key.split('[').next().unwrap_or(key);
    lines[start + 1..]
        .iter()
        .take_while(|l| !l.trim_start().starts_with('['))
        .position(|l| {
            let t = l.trim_start();
            t.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('=') || r.starts_with('.'))
        })
        .map(|i| start + 2 + i)
        .or(Some(start + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[source]
prefix = "raw/churn/"
collector = "csv-collector"

[[clean]]
plugin = "dedup"

[[clean]]
plugin = "drop-nulls"
config = { columns = "a,b" }

[train]
model = "churn"
trainer = "logistic-regression"
label = "churned"
hyperparameters = { c = [0.1, 1.0] }

[publish]
gate = { min_auc = 0.9 }

[triggers]
cron = "*/5 * * * *"
"#;

    #[test]
    fn a_pipeline_file_parses_with_defaults() {
        let p = parse(FILE, false).unwrap();
        assert_eq!(p.clean.len(), 2);
        assert_eq!(
            p.clean[1].config_pairs(),
            vec![("columns".into(), "a,b".into())]
        );
        assert_eq!(p.publish.alias, "production");
        assert_eq!(p.runs, RunPolicy::default());
        assert_eq!(p.split, SplitSpec::default());
        let req = p.train_request("ds");
        assert_eq!(req.dataset, "ds");
        assert_eq!(req.alias.as_deref(), Some("production"));
        assert_eq!(req.gate.unwrap().0["min_auc"], 0.9);
    }

    #[test]
    fn toml_errors_point_at_line_and_column() {
        let bad = FILE.replace("label = ", "lable = ");
        let e = parse(&bad, false).unwrap_err();
        assert!(e.contains("line 16"), "{e}");
        assert!(e.contains("unknown field `lable`"), "{e}");
        let e = parse("[source]\nprefix = 3\n", false).unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn cron_takes_five_fields_or_leading_seconds() {
        assert!(cron("0 3 * * *").is_ok());
        assert!(cron("*/2 * * * * *").is_ok());
        assert!(cron("0 3 * *").unwrap_err().contains("4 fields"));
        assert!(cron("61 * * * *").is_err());
    }

    #[test]
    fn training_errors_are_renamed_to_pipeline_fields() {
        assert_eq!(
            train_field("trainer: no plugin"),
            "train.trainer: no plugin"
        );
        assert_eq!(
            train_field("transforms[1].plugin: no"),
            "transform[1].plugin: no"
        );
        assert_eq!(train_field("gate: bad"), "publish.gate: bad");
        assert_eq!(train_field("split.validation: x"), "split.validation: x");
    }

    #[test]
    fn fields_are_located_by_path() {
        assert_eq!(locate(FILE, "clean[1].plugin"), Some(10));
        assert_eq!(locate(FILE, "clean[0].plugin"), Some(7));
        assert_eq!(locate(FILE, "train.trainer"), Some(15));
        assert_eq!(locate(FILE, "triggers.cron"), Some(23));
        assert_eq!(locate(FILE, "source.collector"), Some(4));
    }
}
