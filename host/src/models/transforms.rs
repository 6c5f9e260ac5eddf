//! Fitted transforms in front of a served model, so the endpoint takes raw features.
//!
//! A version trained with transforms (e.g. `standard-scaler`) stores each transform's fitted
//! state; at serving the FP32 `[N, F]` input becomes an Arrow batch with the model's feature
//! names, each transform's `apply` runs on it in Wasm with its state, and the result is turned
//! back into the `[N, F]` tensor the ONNX graph was trained on. The live version of each
//! transform plugin runs (the fitted state format is the plugin's contract across versions).

use super::evaluate::features_tensor;
use super::versions::ModelVersion;
use crate::platform::formats::{decode_ipc, encode_ipc};
use crate::plugins::{CallError, Registry};
use crate::runtime::Call;
use crate::runtime::InvokeError;
use arrow_array::{ArrayRef, Float32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use std::sync::Arc;
use tract_onnx::prelude::*;

/// The FP32 `[N, F]` tensor as a batch with one Float32 column per feature.
pub fn tensor_to_batch(t: &Tensor, features: &[String]) -> Result<RecordBatch, String> {
    let view = t.to_plain_array_view::<f32>().map_err(|e| e.to_string())?;
    let shape = view.shape();
    if shape.len() != 2 || shape[1] != features.len() {
        return Err(format!(
            "expected [N, {}] features, got {shape:?}",
            features.len()
        ));
    }
    let columns: Vec<ArrayRef> = (0..features.len())
        .map(|j| {
            Arc::new(Float32Array::from_iter_values(
                (0..shape[0]).map(|i| view[[i, j]]),
            )) as ArrayRef
        })
        .collect();
    let schema = Schema::new(
        features
            .iter()
            .map(|f| Field::new(f, DataType::Float32, false))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(Arc::new(schema), columns).map_err(|e| e.to_string())
}

/// Why the transforms failed: the request's data (400), a busy plugin (503) or anything else
/// on the host's side (500).
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Failed(String),
}

/// Apply `version`'s transforms (with their `states`, in order) to the feature tensor.
pub async fn apply(
    plugins: &Registry,
    version: &ModelVersion,
    states: &[Bytes],
    input: &Tensor,
) -> Result<Tensor, TransformError> {
    use TransformError::*;
    let features: Vec<String> = version
        .metadata
        .get("features")
        .ok_or_else(|| Failed("the model has transforms but no `features` metadata".into()))?
        .split(',')
        .map(str::to_string)
        .collect();
    let mut batch = tensor_to_batch(input, &features).map_err(Input)?;
    for (t, state) in version.transforms.iter().zip(states) {
        let entry = plugins
            .get(&t.plugin)
            .ok_or_else(|| Failed(format!("transform plugin `{}` is not registered", t.plugin)))?;
        let ipc = encode_ipc(&batch.schema(), std::slice::from_ref(&batch)).map_err(Failed)?;
        let call = Call::Apply {
            input: ipc,
            state: state.to_vec(),
        };
        let out = plugins
            .call_version(&entry, entry.live(), call, t.config.clone())
            .await
            .map_err(|e| {
                let m = format!("transform `{}`: {e}", t.plugin);
                match e {
                    CallError::Busy(_) | CallError::HostBusy(_) | CallError::Limited(_) => Busy(m),
                    CallError::Invoke(InvokeError::InvalidInput(_)) => Input(m),
                    _ => Failed(m),
                }
            })?;
        let (schema, batches) = decode_ipc(&out.output).map_err(Failed)?;
        batch = arrow_select::concat::concat_batches(&schema, &batches)
            .map_err(|e| Failed(e.to_string()))?;
    }
    features_tensor(&batch, &features).map_err(Failed)
}
