//! One training job from dataset to published version: read, split, fit transforms, train each
//! candidate in Wasm, select on validation, evaluate on test through tract, store, gate, alias.

use super::super::evaluate::{Evaluation, evaluate, higher_is_better, label_values};
use super::super::onnx::{LoadedModel, load};
use super::super::split::{Split, SplitSpec, split};
use super::super::versions::{NewTransform, Provenance};
use super::spec::{Task, TrainRequest};
use super::{Candidate, Deps, JobResult, Phase, Report};
use crate::platform::formats::{decode_ipc, encode_ipc};
use crate::plugins::PluginEntry;
use crate::runtime::DatasetReader;
use crate::runtime::{Call, Outcome};
use arrow_array::{RecordBatch, UInt32Array};
use arrow_schema::DataType;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// The best candidate so far.
struct Best {
    score: f64,
    hyperparameters: BTreeMap<String, String>,
    model: Arc<LoadedModel>,
    outcome: Outcome,
    classes: Option<Vec<i64>>,
    trainer_version: u32,
}

/// Rows per batch the trainer reads through `next-batch`.
const BATCH_ROWS: usize = 8192;

type Res<T> = Result<T, String>;

fn plugin(deps: &Deps, name: &str) -> Res<Arc<PluginEntry>> {
    deps.plugins
        .get(name)
        .ok_or_else(|| format!("plugin `{name}` is gone"))
}

async fn call(
    deps: &Deps,
    entry: &PluginEntry,
    call: Call,
    config: Vec<(String, String)>,
    timeout_ms: Option<u64>,
) -> Res<(u32, Outcome)> {
    let live = entry.live();
    let version = live.version;
    let out = deps
        .plugins
        .call_queued(entry, live, call, config, timeout_ms)
        .await
        .map_err(|e| format!("{} v{version}: {e}", entry.name))?;
    Ok((version, out))
}

fn ipc(batch: &RecordBatch) -> Res<Vec<u8>> {
    encode_ipc(&batch.schema(), std::slice::from_ref(batch))
}

fn from_ipc(bytes: &[u8]) -> Res<RecordBatch> {
    let (schema, batches) = decode_ipc(bytes)?;
    arrow_select::concat::concat_batches(&schema, &batches).map_err(|e| e.to_string())
}

fn take(all: &RecordBatch, rows: &[usize]) -> Res<RecordBatch> {
    let idx = UInt32Array::from(rows.iter().map(|&r| r as u32).collect::<Vec<_>>());
    arrow_select::take::take_record_batch(all, &idx).map_err(|e| e.to_string())
}

/// Only the `features` columns of `batch`, in that order.
fn project(batch: &RecordBatch, features: &[String]) -> Res<RecordBatch> {
    let schema = batch.schema();
    let idx = features
        .iter()
        .map(|f| {
            schema
                .index_of(f)
                .map_err(|_| format!("feature column `{f}` is missing"))
        })
        .collect::<Res<Vec<_>>>()?;
    batch.project(&idx).map_err(|e| e.to_string())
}

/// `transformed` plus the label column of `original` (same rows).
fn with_label(transformed: RecordBatch, original: &RecordBatch, label: &str) -> Res<RecordBatch> {
    if transformed.num_rows() != original.num_rows() {
        return Err(format!(
            "a transform returned {} rows for {}; transforms must keep every row",
            transformed.num_rows(),
            original.num_rows()
        ));
    }
    let schema = original.schema();
    let i = schema.index_of(label).map_err(|e| e.to_string())?;
    let mut fields: Vec<_> = transformed.schema().fields().iter().cloned().collect();
    fields.push(schema.fields()[i].clone());
    let mut columns = transformed.columns().to_vec();
    columns.push(original.column(i).clone());
    RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), columns)
        .map_err(|e| e.to_string())
}

/// `batch` with its boolean `label` column as Int64 0/1.
fn label_as_int(batch: &RecordBatch, label: &str) -> Res<RecordBatch> {
    let i = batch.schema().index_of(label).map_err(|e| e.to_string())?;
    let cast = arrow_cast::cast(batch.column(i), &DataType::Int64).map_err(|e| e.to_string())?;
    let mut columns = batch.columns().to_vec();
    columns[i] = cast;
    let mut fields: Vec<_> = batch.schema().fields().iter().cloned().collect();
    fields[i] = Arc::new(fields[i].as_ref().clone().with_data_type(DataType::Int64));
    RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), columns)
        .map_err(|e| e.to_string())
}

/// Refuse, before any training, splits the job cannot use: an empty train or test split, no
/// validation rows when validation was asked for, or (classification) a class with no train
/// row — the model could never predict it.
fn check_split(labels: &[f64], parts: &Split, task: Task, spec: &SplitSpec) -> Res<()> {
    let hint = "use more rows or other split fractions";
    if parts.train.is_empty() || parts.test.is_empty() {
        return Err(format!(
            "split: {} train and {} test rows; both must be non-empty ({hint})",
            parts.train.len(),
            parts.test.len()
        ));
    }
    if spec.validation > 0.0 && parts.validation.is_empty() {
        return Err(format!("split: the validation split is empty ({hint})"));
    }
    if task == Task::Classification {
        let in_train: std::collections::BTreeSet<i64> =
            parts.train.iter().map(|&r| labels[r] as i64).collect();
        let all: std::collections::BTreeSet<i64> = labels.iter().map(|&v| v as i64).collect();
        if let Some(missing) = all.difference(&in_train).next() {
            return Err(format!(
                "split: class {missing} has no row in the train split ({hint})"
            ));
        }
    }
    Ok(())
}

fn reader(
    batch: &RecordBatch,
    watch: Arc<std::sync::Mutex<crate::runtime::Progress>>,
) -> Res<DatasetReader> {
    let schema = batch.schema();
    let mut batches = Vec::new();
    let mut offset = 0;
    while offset < batch.num_rows() {
        let len = BATCH_ROWS.min(batch.num_rows() - offset);
        batches.push(ipc(&batch.slice(offset, len))?);
        offset += len;
    }
    Ok(DatasetReader {
        schema: encode_ipc(&schema, &[])?,
        batches: Arc::new(batches),
        rows: batch.num_rows() as u64,
        cursor: 0,
        watch: Some(watch),
    })
}

async fn load_model(onnx: Vec<u8>) -> Res<LoadedModel> {
    tokio::task::spawn_blocking(move || load(&onnx))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("the trainer's model does not load in tract: {e}"))
}

/// The class order of a trained classifier, from its `classes` metadata.
fn classes(meta: &[(String, String)]) -> Res<Vec<i64>> {
    let csv = meta
        .iter()
        .find(|(k, _)| k == "classes")
        .map(|(_, v)| v.as_str())
        .ok_or("the trainer returned a classifier without `classes` metadata")?;
    csv.split(',')
        .map(|c| {
            c.trim()
                .parse::<i64>()
                .map_err(|_| format!("bad `classes` metadata {csv:?}"))
        })
        .collect()
}

async fn score(
    model: Arc<LoadedModel>,
    batch: RecordBatch,
    features: Vec<String>,
    label: String,
    classes: Option<Vec<i64>>,
) -> Res<Evaluation> {
    tokio::task::spawn_blocking(move || {
        evaluate(&model, &batch, &features, &label, classes.as_deref())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// The rows a job trains on, after reading: the feature columns and the task settled.
struct Table {
    all: RecordBatch,
    features: Vec<String>,
    task: Task,
}

/// The rows of each split, with the index lists they were taken by.
struct Splits {
    train: RecordBatch,
    valid: RecordBatch,
    test: RecordBatch,
    parts: Split,
}

impl Splits {
    /// The rows candidates are compared on: validation, or train when there are none.
    fn selection(&self) -> &RecordBatch {
        if self.valid.num_rows() > 0 {
            &self.valid
        } else {
            &self.train
        }
    }
}

/// What one candidate produced.
struct Trained {
    version: u32,
    outcome: Outcome,
    model: Arc<LoadedModel>,
    classes: Option<Vec<i64>>,
    eval: Evaluation,
}

pub(crate) async fn run(deps: &Deps, req: &TrainRequest, report: &dyn Report) -> Res<JobResult> {
    report.phase(Phase::Reading);
    let table = read(deps, req).await?;
    report.phase(Phase::Splitting);
    let mut splits = split_rows(&table, req)?;
    let fitted = fit_transforms(deps, req, &table.features, &mut splits, report).await?;
    let metric = req.metric.clone().unwrap_or_else(|| match table.task {
        Task::Classification => "auc".into(),
        Task::Regression => "rmse".into(),
    });
    let best = search(deps, req, &table, &splits, &metric, report).await?;
    report.phase(Phase::Evaluating);
    let Splits { test, parts, .. } = splits;
    let Best {
        score: validation_score,
        hyperparameters,
        model,
        outcome,
        classes,
        trainer_version,
    } = best;
    let features = table.features.clone();
    let test_eval = score(model, test, features, req.label.clone(), classes).await?;
    report.phase(Phase::Storing);
    let counts = [
        ("train".to_string(), parts.train.len()),
        ("validation".to_string(), parts.validation.len()),
        ("test".to_string(), parts.test.len()),
    ];
    let metrics = serde_json::json!({
        "test": test_eval,
        "selection": { "metric": metric, "validation": validation_score, "split": {
            "train": counts[0].1, "validation": counts[1].1, "test": counts[2].1 } },
    });
    let winner = Winner {
        onnx: outcome.output,
        metadata: outcome.metadata,
        hyperparameters: hyperparameters.clone(),
        trainer_version,
    };
    let version = store(deps, req, &table, winner, metrics, fitted).await?;
    report.phase(Phase::Gating);
    let (published, gate_failures) = gate(deps, req, version, &test_eval).await?;
    Ok(JobResult {
        model: req.model.clone(),
        version,
        hyperparameters,
        metric,
        validation_score,
        test_scores: test_eval.scores,
        published,
        alias: req.alias.clone(),
        gate_failures,
        split: counts.into(),
    })
}

/// Reading: the dataset's rows, its label checked and its feature columns chosen.
async fn read(deps: &Deps, req: &TrainRequest) -> Res<Table> {
    let (schema, batches) = deps
        .warehouse
        .rows(&req.dataset, 0, u64::MAX)
        .await
        .map_err(|e| format!("reading dataset `{}`: {e:#}", req.dataset))?
        .ok_or_else(|| format!("dataset: no dataset named `{}`", req.dataset))?;
    let mut all =
        arrow_select::concat::concat_batches(&schema, &batches).map_err(|e| e.to_string())?;
    if all.num_rows() == 0 {
        return Err(format!("dataset `{}` has no rows", req.dataset));
    }
    let label_type = schema
        .field_with_name(&req.label)
        .map_err(|_| {
            format!(
                "label: no column `{}` in dataset `{}`",
                req.label, req.dataset
            )
        })?
        .data_type()
        .clone();
    let features = feature_columns(&schema, req)?;
    let task = req.task.unwrap_or(
        if label_type.is_integer() || label_type == DataType::Boolean {
            Task::Classification
        } else {
            Task::Regression
        },
    );
    if label_type == DataType::Boolean {
        // Trainers read numeric columns: a boolean label becomes the classes 0 and 1.
        all = label_as_int(&all, &req.label)?;
    }
    Ok(Table {
        all,
        features,
        task,
    })
}

/// The columns named as features, or every numeric column but the label; each must be numeric.
fn feature_columns(schema: &arrow_schema::Schema, req: &TrainRequest) -> Res<Vec<String>> {
    let features: Vec<String> = match &req.features {
        Some(f) => f.clone(),
        None => schema
            .fields()
            .iter()
            .filter(|f| f.name() != &req.label && f.data_type().is_numeric())
            .map(|f| f.name().clone())
            .collect(),
    };
    for f in &features {
        let field = schema
            .field_with_name(f)
            .map_err(|_| format!("features: no column `{f}` in dataset `{}`", req.dataset))?;
        if !field.data_type().is_numeric() {
            return Err(format!(
                "features: column `{f}` is {}, not numeric",
                field.data_type()
            ));
        }
    }
    Ok(features)
}

/// Splitting: train, validation and test rows, stratified by class when asked.
fn split_rows(table: &Table, req: &TrainRequest) -> Res<Splits> {
    let all = &table.all;
    let labels = label_values(all, &req.label)?;
    let strata: Option<Vec<i64>> = (table.task == Task::Classification && req.split.stratify)
        .then(|| labels.iter().map(|v| *v as i64).collect());
    let parts = split(all.num_rows(), strata.as_deref(), &req.split);
    let splits = Splits {
        train: take(all, &parts.train)?,
        valid: take(all, &parts.validation)?,
        test: take(all, &parts.test)?,
        parts,
    };
    check_split(&labels, &splits.parts, table.task, &req.split)?;
    Ok(splits)
}

/// Transforming: each transform is fitted on the train rows and applied to every split.
/// Transforms see only the feature columns, as they will at serving time; the label is put back
/// beside their output.
async fn fit_transforms(
    deps: &Deps,
    req: &TrainRequest,
    features: &[String],
    splits: &mut Splits,
    report: &dyn Report,
) -> Res<Vec<NewTransform>> {
    let mut fitted = Vec::new();
    for (i, step) in req.transforms.iter().enumerate() {
        report.phase(Phase::Transforming {
            index: i,
            plugin: step.plugin.clone(),
        });
        let entry = plugin(deps, &step.plugin)?;
        let config: Vec<(String, String)> = step.config.clone().into_iter().collect();
        let fit = Call::Fit(ipc(&project(&splits.train, features)?)?);
        let (version, out) = call(deps, &entry, fit, config.clone(), Some(req.timeout_ms)).await?;
        let state = out.output;
        for split in [&mut splits.train, &mut splits.valid, &mut splits.test] {
            let input = ipc(&project(split, features)?)?;
            let apply = Call::Apply {
                input,
                state: state.clone(),
            };
            let (_, out) = call(deps, &entry, apply, config.clone(), Some(req.timeout_ms)).await?;
            *split = with_label(from_ipc(&out.output)?, split, &req.label)?;
        }
        fitted.push(NewTransform {
            plugin: step.plugin.clone(),
            plugin_version: version,
            config,
            state: state.into(),
        });
    }
    Ok(fitted)
}

/// Training: every candidate is trained and scored on the validation rows (the train rows when
/// there are none); the best by `metric` wins.
async fn search(
    deps: &Deps,
    req: &TrainRequest,
    table: &Table,
    splits: &Splits,
    metric: &str,
    report: &dyn Report,
) -> Res<Best> {
    let trainer = plugin(deps, &req.trainer)?;
    let candidates = req.candidates()?;
    let mut best: Option<Best> = None;
    let mut first_error = None;
    for (i, hp) in candidates.iter().enumerate() {
        report.phase(Phase::Training {
            candidate: i,
            of: candidates.len(),
        });
        let started = Instant::now();
        let attempt = train_one(deps, req, table, &trainer, hp, splits, report).await;
        let train_ms = started.elapsed().as_secs_f64() * 1e3;
        let trained = match attempt {
            Ok(trained) => trained,
            Err(e) => {
                report.candidate(Candidate {
                    hyperparameters: hp.clone(),
                    scores: BTreeMap::new(),
                    error: Some(e.clone()),
                    train_ms,
                });
                first_error.get_or_insert(e);
                continue;
            }
        };
        let value = selection_score(&trained.eval, metric, req, table.task)?;
        report.candidate(Candidate {
            hyperparameters: hp.clone(),
            scores: trained.eval.scores.clone(),
            error: None,
            train_ms,
        });
        if beats(value, best.as_ref(), metric) {
            best = Some(Best {
                score: value,
                hyperparameters: hp.clone(),
                model: trained.model,
                outcome: trained.outcome,
                classes: trained.classes,
                trainer_version: trained.version,
            });
        }
    }
    best.ok_or_else(|| {
        format!(
            "every candidate failed; the first: {}",
            first_error.unwrap_or_default()
        )
    })
}

/// One candidate: train in Wasm, load the model in tract, score it on the selection rows.
async fn train_one(
    deps: &Deps,
    req: &TrainRequest,
    table: &Table,
    trainer: &PluginEntry,
    hp: &BTreeMap<String, String>,
    splits: &Splits,
    report: &dyn Report,
) -> Res<Trained> {
    let task = table.task;
    let mut config = vec![
        ("label".to_string(), req.label.clone()),
        ("features".to_string(), table.features.join(",")),
        ("seed".to_string(), req.split.seed.to_string()),
        ("task".to_string(), format!("{task:?}").to_lowercase()),
    ];
    config.extend(hp.clone());
    let input = Call::Train(reader(&splits.train, report.progress_cell())?);
    let (version, outcome) = call(deps, trainer, input, config, Some(req.timeout_ms)).await?;
    let model = Arc::new(load_model(outcome.output.clone()).await?);
    let classes = match task {
        Task::Classification => Some(classes(&outcome.metadata)?),
        Task::Regression => None,
    };
    let eval = score(
        model.clone(),
        splits.selection().clone(),
        table.features.clone(),
        req.label.clone(),
        classes.clone(),
    )
    .await?;
    Ok(Trained {
        version,
        outcome,
        model,
        classes,
        eval,
    })
}

/// The candidate's value of `metric`; a classifier without AUC falls back to accuracy when no
/// metric was asked for.
fn selection_score(eval: &Evaluation, metric: &str, req: &TrainRequest, task: Task) -> Res<f64> {
    eval.scores
        .get(metric)
        .or_else(|| {
            (req.metric.is_none() && metric == "auc")
                .then(|| eval.scores.get("accuracy"))
                .flatten()
        })
        .copied()
        .ok_or_else(|| {
            format!("metric: `{metric}` is not computed for a {task:?} model").to_lowercase()
        })
}

/// True if `value` beats the best so far. A NaN score (e.g. a diverged regressor) never does.
fn beats(value: f64, best: Option<&Best>, metric: &str) -> bool {
    value.is_finite()
        && match best {
            None => true,
            Some(Best { score: b, .. }) => {
                if higher_is_better(metric) {
                    value > *b
                } else {
                    value < *b
                }
            }
        }
}

/// What the store needs of the winning candidate.
struct Winner {
    onnx: Vec<u8>,
    metadata: Vec<(String, String)>,
    hyperparameters: BTreeMap<String, String>,
    trainer_version: u32,
}

/// Storing: the winner becomes a new version of the model, with its provenance, metrics and
/// fitted transforms. Returns the version number.
async fn store(
    deps: &Deps,
    req: &TrainRequest,
    table: &Table,
    winner: Winner,
    metrics: serde_json::Value,
    fitted: Vec<NewTransform>,
) -> Res<u32> {
    let mut metadata: BTreeMap<String, String> = winner.metadata.into_iter().collect();
    metadata.insert("features".into(), table.features.join(","));
    metadata.insert("label".into(), req.label.clone());
    metadata.insert("task".into(), format!("{:?}", table.task).to_lowercase());
    let source = Provenance {
        kind: "training".into(),
        job: None,
        trainer: Some(format!("{}@{}", req.trainer, winner.trainer_version)),
        dataset: Some(req.dataset.clone()),
        hyperparameters: winner.hyperparameters,
    };
    let version = deps
        .models
        .create_version(
            &req.model,
            winner.onnx.into(),
            source,
            Some(metrics),
            metadata,
            fitted,
        )
        .await
        .map_err(|e| format!("storing the model: {e}"))?;
    Ok(version.version)
}

/// Gating: the job's gate (else the model's) on the test scores; when it passes and an alias was
/// asked for, the alias moves to the new version. Returns (published, gate failures).
async fn gate(
    deps: &Deps,
    req: &TrainRequest,
    version: u32,
    test_eval: &Evaluation,
) -> Res<(bool, Option<String>)> {
    let gate = match &req.gate {
        Some(g) => g.clone(),
        None => deps
            .models
            .get(&req.model)
            .map(|(r, _)| r.gate)
            .unwrap_or_default(),
    };
    let gate_result = gate.check(&test_eval.scores);
    let mut published = false;
    if let (Ok(()), Some(alias)) = (&gate_result, &req.alias) {
        deps.models
            .set_alias(&req.model, alias, version)
            .await
            .map_err(|e| format!("moving alias `{alias}`: {e}"))?;
        published = true;
    }
    Ok((published, gate_result.err()))
}
