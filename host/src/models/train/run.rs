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

pub(crate) async fn run(deps: &Deps, req: &TrainRequest, report: &dyn Report) -> Res<JobResult> {
    report.phase(Phase::Reading);
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

    report.phase(Phase::Splitting);
    let labels = label_values(&all, &req.label)?;
    let strata: Option<Vec<i64>> = (task == Task::Classification && req.split.stratify)
        .then(|| labels.iter().map(|v| *v as i64).collect());
    let parts = split(all.num_rows(), strata.as_deref(), &req.split);
    let (mut train, mut valid, mut test) = (
        take(&all, &parts.train)?,
        take(&all, &parts.validation)?,
        take(&all, &parts.test)?,
    );
    check_split(&labels, &parts, task, &req.split)?;

    // Transforms see only the feature columns, as they will at serving time; the label is put
    // back beside their output.
    let mut fitted = Vec::new();
    for (i, step) in req.transforms.iter().enumerate() {
        report.phase(Phase::Transforming {
            index: i,
            plugin: step.plugin.clone(),
        });
        let entry = plugin(deps, &step.plugin)?;
        let config: Vec<(String, String)> = step.config.clone().into_iter().collect();
        let fit = Call::Fit(ipc(&project(&train, &features)?)?);
        let (version, out) = call(deps, &entry, fit, config.clone(), Some(req.timeout_ms)).await?;
        let state = out.output;
        for split in [&mut train, &mut valid, &mut test] {
            let input = ipc(&project(split, &features)?)?;
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

    let trainer = plugin(deps, &req.trainer)?;
    let candidates = req.candidates()?;
    let metric = req.metric.clone().unwrap_or_else(|| match task {
        Task::Classification => "auc".into(),
        Task::Regression => "rmse".into(),
    });
    let selection = if valid.num_rows() > 0 { &valid } else { &train };
    let mut best: Option<Best> = None;
    let mut first_error = None;
    for (i, hp) in candidates.iter().enumerate() {
        report.phase(Phase::Training {
            candidate: i,
            of: candidates.len(),
        });
        let mut config = vec![
            ("label".to_string(), req.label.clone()),
            ("features".to_string(), features.join(",")),
            ("seed".to_string(), req.split.seed.to_string()),
            ("task".to_string(), format!("{task:?}").to_lowercase()),
        ];
        config.extend(hp.clone());
        let started = Instant::now();
        let attempt = async {
            let (version, out) = call(
                deps,
                &trainer,
                Call::Train(reader(&train, report.progress_cell())?),
                config,
                Some(req.timeout_ms),
            )
            .await?;
            let model = Arc::new(load_model(out.output.clone()).await?);
            let classes = match task {
                Task::Classification => Some(classes(&out.metadata)?),
                Task::Regression => None,
            };
            let eval = score(
                model.clone(),
                selection.clone(),
                features.clone(),
                req.label.clone(),
                classes.clone(),
            )
            .await?;
            Ok::<_, String>((version, out, model, classes, eval))
        };
        let attempt = attempt.await;
        let train_ms = started.elapsed().as_secs_f64() * 1e3;
        match attempt {
            Ok((version, out, model, classes, eval)) => {
                let value = eval
                    .scores
                    .get(&metric)
                    .or_else(|| {
                        (req.metric.is_none() && metric == "auc")
                            .then(|| eval.scores.get("accuracy"))
                            .flatten()
                    })
                    .copied()
                    .ok_or_else(|| {
                        format!("metric: `{metric}` is not computed for a {task:?} model")
                            .to_lowercase()
                    })?;
                report.candidate(Candidate {
                    hyperparameters: hp.clone(),
                    scores: eval.scores.clone(),
                    error: None,
                    train_ms,
                });
                // A NaN score (e.g. a diverged regressor) is never the best.
                let better = value.is_finite()
                    && match &best {
                        None => true,
                        Some(Best { score: b, .. }) => {
                            if higher_is_better(&metric) {
                                value > *b
                            } else {
                                value < *b
                            }
                        }
                    };
                if better {
                    best = Some(Best {
                        score: value,
                        hyperparameters: hp.clone(),
                        model,
                        outcome: out,
                        classes,
                        trainer_version: version,
                    });
                }
            }
            Err(e) => {
                report.candidate(Candidate {
                    hyperparameters: hp.clone(),
                    scores: BTreeMap::new(),
                    error: Some(e.clone()),
                    train_ms,
                });
                first_error.get_or_insert(e);
            }
        }
    }
    let Some(Best {
        score: validation_score,
        hyperparameters,
        model,
        outcome,
        classes,
        trainer_version,
    }) = best
    else {
        return Err(format!(
            "every candidate failed; the first: {}",
            first_error.unwrap_or_default()
        ));
    };

    report.phase(Phase::Evaluating);
    let test_eval = score(model, test, features.clone(), req.label.clone(), classes).await?;
    let metrics = serde_json::json!({
        "test": test_eval,
        "selection": { "metric": metric, "validation": validation_score, "split": {
            "train": parts.train.len(), "validation": parts.validation.len(), "test": parts.test.len() } },
    });
    report.phase(Phase::Storing);
    let mut metadata: BTreeMap<String, String> = outcome.metadata.iter().cloned().collect();
    metadata.insert("features".into(), features.join(","));
    metadata.insert("label".into(), req.label.clone());
    metadata.insert("task".into(), format!("{task:?}").to_lowercase());
    let source = Provenance {
        kind: "training".into(),
        job: None,
        trainer: Some(format!("{}@{trainer_version}", req.trainer)),
        dataset: Some(req.dataset.clone()),
        hyperparameters: hyperparameters.clone(),
    };
    let version = deps
        .models
        .create_version(
            &req.model,
            outcome.output.into(),
            source,
            Some(metrics),
            metadata,
            fitted,
        )
        .await
        .map_err(|e| format!("storing the model: {e}"))?;

    report.phase(Phase::Gating);
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
            .set_alias(&req.model, alias, version.version)
            .await
            .map_err(|e| format!("moving alias `{alias}`: {e}"))?;
        published = true;
    }
    Ok(JobResult {
        model: req.model.clone(),
        version: version.version,
        hyperparameters,
        metric,
        validation_score,
        test_scores: test_eval.scores,
        published,
        alias: req.alias.clone(),
        gate_failures: gate_result.err(),
        split: [
            ("train".to_string(), parts.train.len()),
            ("validation".to_string(), parts.validation.len()),
            ("test".to_string(), parts.test.len()),
        ]
        .into(),
    })
}
