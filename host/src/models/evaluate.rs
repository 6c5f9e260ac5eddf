//! Evaluate a candidate model by running it through tract — the engine that will serve it — on a
//! held-out split, so the stored metrics describe exactly what the endpoint returns.
//!
//! Models follow the bundled trainers' contract (`aimass_plugin_sdk::learn::export`): an FP32
//! `[N, F]` input; classifiers output `probabilities` `[N, K]` in the order of the `classes`
//! metadata, regressors `prediction` `[N]` or `[N, 1]`.

use super::onnx::LoadedModel;
use super::scores::{self, Classification, Regression};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use serde::Serialize;
use std::collections::BTreeMap;
use tract_onnx::prelude::*;

/// The features of `batch` as a row-major FP32 `[N, F]` tensor.
pub fn features_tensor(batch: &RecordBatch, features: &[String]) -> Result<Tensor, String> {
    let n = batch.num_rows();
    let mut data = vec![0f32; n * features.len()];
    for (j, name) in features.iter().enumerate() {
        let col = batch
            .column_by_name(name)
            .ok_or_else(|| format!("feature column `{name}` is missing"))?;
        let col = arrow_cast::cast(col, &DataType::Float32)
            .map_err(|e| format!("feature `{name}`: {e}"))?;
        if col.null_count() > 0 {
            return Err(format!("feature column `{name}` has nulls"));
        }
        for (i, v) in col
            .as_primitive::<Float32Type>()
            .values()
            .iter()
            .enumerate()
        {
            data[i * features.len() + j] = *v;
        }
    }
    Tensor::from_shape(&[n, features.len()], &data).map_err(|e| e.to_string())
}

/// The label column as `f64`.
pub fn label_values(batch: &RecordBatch, label: &str) -> Result<Vec<f64>, String> {
    let col = batch
        .column_by_name(label)
        .ok_or_else(|| format!("label column `{label}` is missing"))?;
    let col =
        arrow_cast::cast(col, &DataType::Float64).map_err(|e| format!("label `{label}`: {e}"))?;
    if col.null_count() > 0 {
        return Err(format!("label column `{label}` has nulls"));
    }
    Ok(col.as_primitive::<Float64Type>().values().to_vec())
}

/// Metrics of one evaluation, with the scalar scores model selection and the gate use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub task: &'static str,
    /// Scalar metrics by name: `accuracy`, `precision`, `recall`, `f1`, `precision_macro`,
    /// `recall_macro`, `f1_macro`, `auc`, `log_loss` for classifiers; `rmse`, `mae`, `r2` for
    /// regressors.
    pub scores: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regression: Option<Regression>,
}

/// Every metric name a job can select on or gate with.
pub const METRICS: &[&str] = &[
    "accuracy",
    "precision",
    "recall",
    "f1",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "auc",
    "log_loss",
    "rmse",
    "mae",
    "r2",
];

/// Whether a larger value of metric `name` is better (`false` for losses and errors).
pub fn higher_is_better(name: &str) -> bool {
    !matches!(name, "log_loss" | "rmse" | "mae")
}

fn output<'a>(model: &LoadedModel, outputs: &'a TVec<TValue>, name: &str) -> Option<&'a TValue> {
    let i = model
        .signature
        .outputs
        .iter()
        .position(|o| o.name == name)?;
    outputs.get(i)
}

/// Run `model` on `batch` and score it against the label. `classes` is the class order of the
/// `probabilities` output (the trainer's `classes` metadata); `None` for regression.
pub fn evaluate(
    model: &LoadedModel,
    batch: &RecordBatch,
    features: &[String],
    label: &str,
    classes: Option<&[i64]>,
) -> Result<Evaluation, String> {
    let x = features_tensor(batch, features)?;
    let y = label_values(batch, label)?;
    let outputs = model
        .run(tvec!(x.into()))
        .map_err(|e| format!("running the model: {e:#}"))?;
    match classes {
        Some(classes) => classify(model, &outputs, &y, classes),
        None => regress(model, &outputs, &y),
    }
}

/// Classification scores from the `probabilities` output (columns in `classes` order).
fn classify(
    model: &LoadedModel,
    outputs: &TVec<TValue>,
    y: &[f64],
    classes: &[i64],
) -> Result<Evaluation, String> {
    let proba =
        output(model, outputs, "probabilities").ok_or("the model has no `probabilities` output")?;
    let view = proba
        .to_plain_array_view::<f32>()
        .map_err(|e| e.to_string())?;
    let k = classes.len();
    if view.shape() != [y.len(), k] {
        return Err(format!(
            "`probabilities` has shape {:?}, expected [{}, {k}]",
            view.shape(),
            y.len()
        ));
    }
    let proba: Vec<f64> = view.iter().map(|&p| f64::from(p)).collect();
    let truth = y
        .iter()
        .map(|v| {
            classes.iter().position(|c| *c as f64 == *v).ok_or_else(|| {
                format!("label value {v} is not one of the model's classes {classes:?}")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let m = scores::classification(&truth, &proba, k)?;
    let mut scores = BTreeMap::new();
    scores.insert("accuracy".into(), m.accuracy);
    for (name, v) in [
        ("precision", m.precision),
        ("recall", m.recall),
        ("f1", m.f1),
        ("auc", m.roc_auc),
    ] {
        if let Some(v) = v {
            scores.insert(name.into(), v);
        }
    }
    scores.insert("precision_macro".into(), m.precision_macro);
    scores.insert("recall_macro".into(), m.recall_macro);
    scores.insert("f1_macro".into(), m.f1_macro);
    scores.insert("log_loss".into(), m.log_loss);
    Ok(Evaluation {
        task: "classification",
        scores,
        classification: Some(m),
        regression: None,
    })
}

/// Regression scores from the `prediction` output.
fn regress(model: &LoadedModel, outputs: &TVec<TValue>, y: &[f64]) -> Result<Evaluation, String> {
    let pred =
        output(model, outputs, "prediction").ok_or("the model has no `prediction` output")?;
    let view = pred
        .to_plain_array_view::<f32>()
        .map_err(|e| e.to_string())?;
    if view.len() != y.len() {
        return Err(format!(
            "`prediction` has {} values for {} rows",
            view.len(),
            y.len()
        ));
    }
    let pred: Vec<f64> = view.iter().map(|&p| f64::from(p)).collect();
    let m = scores::regression(y, &pred)?;
    let scores = BTreeMap::from([
        ("rmse".to_string(), m.rmse),
        ("mae".to_string(), m.mae),
        ("r2".to_string(), m.r2),
    ]);
    Ok(Evaluation {
        task: "regression",
        scores,
        classification: None,
        regression: Some(m),
    })
}
