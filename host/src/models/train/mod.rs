//! Training jobs: `POST /v1/train` queues one, a worker runs it, `GET /v1/train/{id}` shows its
//! state, phase, the trainer's live progress, every candidate's validation scores and, at the
//! end, the stored model version with its test metrics and whether it passed the gate.
//!
//! Jobs run one at a time by default (training is CPU-bound; the host has other work). A job's
//! record is written to `models/.jobs/{id}.json` at each state change, so finished jobs survive
//! a restart; a job that was running when the host stopped is marked failed at start, never
//! left "running".

pub(crate) mod run;
pub mod spec;

use super::versions::ModelRegistry;
use crate::platform::storage::Storage;
use crate::plugins::Registry;
use crate::runtime::Progress;
use crate::warehouse::Warehouse;
use serde::{Deserialize, Serialize};
use spec::TrainRequest;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Why a job was not queued: the request is wrong (400) or the store failed (500).
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("{0}")]
    Invalid(String),
    #[error("storing the job: {0}")]
    Storage(String),
}

/// Lifecycle of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
}

/// One hyperparameter configuration tried.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Candidate {
    pub hyperparameters: BTreeMap<String, String>,
    /// Validation scores (train scores when the job keeps no validation split).
    #[serde(default)]
    pub scores: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub train_ms: f64,
}

/// What a successful job produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobResult {
    pub model: String,
    pub version: u32,
    pub hyperparameters: BTreeMap<String, String>,
    /// The chosen metric and its validation value.
    pub metric: String,
    pub validation_score: f64,
    /// Scalar metrics on the test split.
    pub test_scores: BTreeMap<String, f64>,
    /// Whether the gate passed and the alias was moved; the reasons when it did not.
    pub published: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_failures: Option<String>,
    /// Rows in each split (`train`, `validation`, `test`).
    #[serde(default)]
    pub split: BTreeMap<String, usize>,
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub state: JobState,
    /// What the job is doing now (`splitting`, `training 2/6`, `evaluating`...).
    pub phase: String,
    /// The trainer's last progress report.
    pub progress: Progress,
    pub request: TrainRequest,
    pub candidates: Vec<Candidate>,
    pub candidates_total: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
}

/// A live job: its record, and the cell the running trainer writes its progress to.
struct Live {
    job: Mutex<Job>,
    progress: Arc<Mutex<Progress>>,
}

/// Everything a job needs.
#[derive(Clone)]
pub struct Deps {
    pub plugins: Arc<Registry>,
    pub models: Arc<ModelRegistry>,
    pub warehouse: Arc<Warehouse>,
    pub storage: Storage,
}

pub struct Jobs {
    deps: Deps,
    jobs: Mutex<BTreeMap<String, Arc<Live>>>,
    /// Jobs running at once.
    slots: Arc<tokio::sync::Semaphore>,
}

fn job_key(id: &str) -> String {
    format!("models/.jobs/{id}.json")
}

impl Jobs {
    /// Load past jobs; mark the ones a stop interrupted as failed.
    pub async fn open(deps: Deps, concurrency: usize) -> anyhow::Result<Jobs> {
        let mut jobs = BTreeMap::new();
        for key in deps.storage.list("models/.jobs/").await? {
            let Some(mut job) = deps.storage.get_json::<Job>(&key).await? else {
                continue;
            };
            if matches!(job.state, JobState::Queued | JobState::Running) {
                job.state = JobState::Failed;
                job.error = Some("interrupted: the host stopped while the job ran".into());
                job.finished_ms = Some(crate::platform::clock::now_ms());
                deps.storage.put_json(&key, &job).await?;
            }
            let id = job.id.clone();
            let live = Live {
                progress: Arc::new(Mutex::new(job.progress.clone())),
                job: Mutex::new(job),
            };
            jobs.insert(id, Arc::new(live));
        }
        Ok(Jobs {
            deps,
            jobs: Mutex::new(jobs),
            slots: Arc::new(tokio::sync::Semaphore::new(concurrency.max(1))),
        })
    }

    /// Validate and queue a job; returns it as first stored.
    pub async fn submit(self: &Arc<Self>, request: TrainRequest) -> Result<Job, SubmitError> {
        request.validate(&self.deps).map_err(SubmitError::Invalid)?;
        let id = format!("{:016x}", rand::random::<u64>());
        let job = Job {
            id: id.clone(),
            state: JobState::Queued,
            phase: "queued".into(),
            progress: Progress::default(),
            candidates: vec![],
            candidates_total: request.candidates().map(|c| c.len()).unwrap_or(0),
            request,
            result: None,
            error: None,
            created_ms: crate::platform::clock::now_ms(),
            finished_ms: None,
        };
        self.deps
            .storage
            .put_json(&job_key(&id), &job)
            .await
            .map_err(|e| SubmitError::Storage(format!("{e:#}")))?;
        let live = Arc::new(Live {
            job: Mutex::new(job.clone()),
            progress: Arc::default(),
        });
        self.jobs.lock().unwrap().insert(id, live.clone());
        let this = self.clone();
        tokio::spawn(async move {
            let _slot = this.slots.clone().acquire_owned().await;
            this.execute(live).await;
        });
        Ok(job)
    }

    async fn execute(&self, live: Arc<Live>) {
        let request = {
            let mut job = live.job.lock().unwrap();
            job.state = JobState::Running;
            job.phase = "starting".into();
            job.request.clone()
        };
        self.persist(&live).await;
        let outcome = run::run(&self.deps, &request, &Reporter { live: &live }).await;
        {
            let mut job = live.job.lock().unwrap();
            job.progress = live.progress.lock().unwrap().clone();
            job.finished_ms = Some(crate::platform::clock::now_ms());
            match outcome {
                Ok(result) => {
                    job.state = JobState::Succeeded;
                    job.phase = "done".into();
                    job.result = Some(result);
                }
                Err(e) => {
                    tracing::warn!(job = %job.id, "training job failed: {e}");
                    job.state = JobState::Failed;
                    job.phase = "failed".into();
                    job.error = Some(e);
                }
            }
        }
        self.persist(&live).await;
    }

    async fn persist(&self, live: &Live) {
        let job = live.job.lock().unwrap().clone();
        if let Err(e) = self.deps.storage.put_json(&job_key(&job.id), &job).await {
            tracing::error!(job = %job.id, "saving the job record: {e:#}");
        }
    }

    /// A job with its live progress.
    pub fn get(&self, id: &str) -> Option<Job> {
        let live = self.jobs.lock().unwrap().get(id)?.clone();
        let mut job = live.job.lock().unwrap().clone();
        if job.state == JobState::Running {
            job.progress = live.progress.lock().unwrap().clone();
        }
        Some(job)
    }

    /// Every job, newest first.
    pub fn list(&self) -> Vec<Job> {
        let ids: Vec<String> = self.jobs.lock().unwrap().keys().cloned().collect();
        let mut jobs: Vec<Job> = ids.iter().filter_map(|id| self.get(id)).collect();
        jobs.sort_by_key(|j| std::cmp::Reverse(j.created_ms));
        jobs
    }
}

/// Where a running job is. Jobs show it as their `phase`; pipelines map it onto their steps.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    Reading,
    Splitting,
    Transforming { index: usize, plugin: String },
    Training { candidate: usize, of: usize },
    Evaluating,
    Storing,
    Gating,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phase::Reading => f.write_str("reading the dataset"),
            Phase::Splitting => f.write_str("splitting"),
            Phase::Transforming { index, plugin } => {
                write!(f, "fitting transform {} ({plugin})", index + 1)
            }
            Phase::Training { candidate, of } => write!(f, "training {}/{of}", candidate + 1),
            Phase::Evaluating => f.write_str("evaluating on the test split"),
            Phase::Storing => f.write_str("storing the model"),
            Phase::Gating => f.write_str("checking the gate"),
        }
    }
}

/// How a running training reports what it does.
pub(crate) trait Report: Send + Sync {
    fn phase(&self, phase: Phase);
    fn candidate(&self, c: Candidate);
    /// The cell a trainer call writes its progress reports to.
    fn progress_cell(&self) -> Arc<Mutex<Progress>>;
}

/// A job's reporter: the phase as text, candidates appended to the record.
struct Reporter<'a> {
    live: &'a Live,
}

impl Report for Reporter<'_> {
    fn phase(&self, phase: Phase) {
        self.live.job.lock().unwrap().phase = phase.to_string();
    }

    fn candidate(&self, c: Candidate) {
        self.live.job.lock().unwrap().candidates.push(c);
    }

    fn progress_cell(&self) -> Arc<Mutex<Progress>> {
        self.live.progress.clone()
    }
}
