//! What a run keeps: its trigger, the spec it runs (a snapshot, so editing the pipeline never
//! changes a run in flight or its history), and per step the state, timings, input and output
//! datasets, metrics, the plugin's log lines and the error. Stored as
//! `pipelines/runs/{id}.json` at every step boundary, which is also what resume starts from.

use super::spec::PipelineSpec;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Succeeded | RunState::Failed | RunState::Cancelled
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// What started a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    /// `manual`, `cron` or `object`.
    pub kind: String,
    /// The object key, or the scheduled time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Later triggers that joined this run while it was queued.
    #[serde(default)]
    pub coalesced: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// `collect`, `clean[0]`, `split`, `transform[0]`, `train`, `evaluate`, `publish`.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    pub state: StepState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Dataset read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Dataset written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Rows, objects, scores... whatever the step measures.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub metrics: serde_json::Value,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Step {
    pub fn new(id: impl Into<String>, plugin: Option<String>) -> Step {
        Step {
            id: id.into(),
            plugin,
            state: StepState::Pending,
            started_ms: None,
            finished_ms: None,
            duration_ms: None,
            input: None,
            output: None,
            metrics: serde_json::Value::Null,
            logs: Vec::new(),
            error: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    pub pipeline: String,
    pub state: RunState,
    pub trigger: Trigger,
    pub steps: Vec<Step>,
    pub created_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Times a host restart resumed this run.
    #[serde(default)]
    pub resumed: u32,
    /// The model version the run stored, and whether it was published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<serde_json::Value>,
    /// The intermediate datasets were deleted by retention.
    #[serde(default)]
    pub datasets_deleted: bool,
    pub spec: PipelineSpec,
}

/// The steps a spec runs, in order.
pub fn plan(spec: &PipelineSpec) -> Vec<Step> {
    let mut steps = vec![Step::new(
        "collect",
        spec.source
            .collector
            .clone()
            .or_else(|| spec.source.dataset.clone()),
    )];
    for (i, c) in spec.clean.iter().enumerate() {
        steps.push(Step::new(format!("clean[{i}]"), Some(c.plugin.clone())));
    }
    steps.push(Step::new("split", None));
    for (i, t) in spec.transform.iter().enumerate() {
        steps.push(Step::new(format!("transform[{i}]"), Some(t.plugin.clone())));
    }
    steps.push(Step::new("train", Some(spec.train.trainer.clone())));
    steps.push(Step::new("evaluate", None));
    steps.push(Step::new("publish", None));
    steps
}

/// The dataset a run's step writes.
pub fn dataset(run: &str, step: &str) -> String {
    let step = step.replace(['[', ']'], "-");
    format!("run-{run}-{}", step.trim_end_matches('-'))
}

/// A run as lists show it.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub id: String,
    pub pipeline: String,
    pub state: RunState,
    pub trigger: Trigger,
    pub created_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Run {
    pub fn summary(&self) -> RunSummary {
        RunSummary {
            id: self.id.clone(),
            pipeline: self.pipeline.clone(),
            state: self.state,
            trigger: self.trigger.clone(),
            created_ms: self.created_ms,
            finished_ms: self.finished_ms,
            step: self
                .steps
                .iter()
                .find(|s| s.state == StepState::Running)
                .map(|s| s.id.clone()),
            error: self.error.clone(),
        }
    }

    /// The datasets this run's steps wrote.
    pub fn datasets(&self) -> Vec<String> {
        self.steps.iter().filter_map(|s| s.output.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_names_are_valid_and_distinct_per_run_and_step() {
        let a = dataset("00ff00ff00ff00ff", "clean[1]");
        assert_eq!(a, "run-00ff00ff00ff00ff-clean-1");
        assert!(crate::platform::names::valid_name(&a));
        assert_ne!(a, dataset("00ff00ff00ff00fe", "clean[1]"));
        assert_eq!(dataset("ab", "collect"), "run-ab-collect");
    }
}
