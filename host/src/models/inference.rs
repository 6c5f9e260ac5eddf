//! One Open Inference Protocol inference: check the request against the model's signature,
//! run the shared plan, and shape the outputs.
//!
//! Checks happen before tract sees anything, so a wrong request gets a 400 that names the input
//! and what was expected (`input `features` expects FP32, got FP64`), in the protocol's words.

use super::onnx::LoadedModel;
use super::tensor::InferTensor;
use serde::{Deserialize, Serialize};
use tract_onnx::prelude::*;

/// `POST .../infer` body.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InferRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::tensor::bounded_parameters"
    )]
    pub parameters: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(deserialize_with = "super::tensor::deserialize_inputs")]
    pub inputs: Vec<InferTensor>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::tensor::bounded_outputs"
    )]
    pub outputs: Option<Vec<RequestedOutput>>,
}

/// An entry of the request's `outputs`: which outputs to return.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RequestedOutput {
    pub name: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::tensor::bounded_parameters"
    )]
    pub parameters: Option<serde_json::Map<String, serde_json::Value>>,
}

/// An output to return: its index in the signature, and whether as binary data.
#[derive(Debug, Clone, Copy)]
pub struct Wanted {
    pub index: usize,
    pub binary: bool,
}

/// `POST .../infer` response.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct InferResponse {
    pub model_name: String,
    pub model_version: String,
    pub id: String,
    pub outputs: Vec<InferTensor>,
}

/// Why an inference failed: `BadRequest` → 400, `Failed` → 500.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("{0}")]
    BadRequest(String),
    #[error("inference failed: {0}")]
    Failed(String),
}

/// The tract inputs for `req`, in the model's input order, after checking names, datatypes and
/// shapes. Returns the batch tensors and which outputs were asked for (indices, in request order).
pub fn prepare(
    model: &LoadedModel,
    req: &InferRequest,
) -> Result<(TVec<TValue>, Vec<Wanted>), InferError> {
    let sig = &model.signature;
    let bad = InferError::BadRequest;
    for t in &req.inputs {
        if !sig.inputs.iter().any(|s| s.name == t.name) {
            let known: Vec<&str> = sig.inputs.iter().map(|s| s.name.as_str()).collect();
            return Err(bad(format!(
                "unknown input `{}` (the model takes {})",
                t.name,
                known.join(", ")
            )));
        }
        if req.inputs.iter().filter(|o| o.name == t.name).count() > 1 {
            return Err(bad(format!("input `{}` given twice", t.name)));
        }
    }
    let mut inputs = TVec::new();
    for spec in &sig.inputs {
        let t = req
            .inputs
            .iter()
            .find(|t| t.name == spec.name)
            .ok_or_else(|| bad(format!("missing input `{}`", spec.name)))?;
        let dt = t.datatype().map_err(bad)?;
        if dt != spec.datatype {
            return Err(bad(format!(
                "input `{}` expects {}, got {dt}",
                spec.name, spec.datatype
            )));
        }
        let fits = t.shape.len() == spec.shape.len()
            && t.shape
                .iter()
                .zip(&spec.shape)
                .all(|(&got, &want)| want < 0 || got == want);
        if !fits {
            return Err(bad(format!(
                "input `{}` expects shape {:?} (-1: any size), got {:?}",
                spec.name, spec.shape, t.shape
            )));
        }
        inputs.push(t.to_tract().map_err(bad)?.into());
    }
    let wanted = wanted_outputs(model, req)?;
    Ok((inputs, wanted))
}

/// The outputs asked for (all when the request names none), in request order, each with
/// whether it goes back as binary: per output `parameters.binary_data`, else the request's
/// `parameters.binary_data_output`, else JSON (the binary tensor data extension).
fn wanted_outputs(model: &LoadedModel, req: &InferRequest) -> Result<Vec<Wanted>, InferError> {
    let sig = &model.signature;
    let bad = InferError::BadRequest;
    let flag = |p: Option<&serde_json::Map<String, serde_json::Value>>, key: &str| {
        p.and_then(|p| p.get(key))
            .and_then(serde_json::Value::as_bool)
    };
    let all_binary = flag(req.parameters.as_ref(), "binary_data_output").unwrap_or(false);
    let wanted = match &req.outputs {
        None => (0..sig.outputs.len())
            .map(|i| Wanted {
                index: i,
                binary: all_binary,
            })
            .collect(),
        Some(list) => list
            .iter()
            .map(|o| {
                sig.outputs
                    .iter()
                    .position(|s| s.name == o.name)
                    .map(|index| Wanted {
                        index,
                        binary: flag(o.parameters.as_ref(), "binary_data").unwrap_or(all_binary),
                    })
                    .ok_or_else(|| {
                        let known: Vec<&str> =
                            sig.outputs.iter().map(|s| s.name.as_str()).collect();
                        bad(format!(
                            "unknown output `{}` (the model has {})",
                            o.name,
                            known.join(", ")
                        ))
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(wanted)
}

/// Run a prepared request (CPU work: call from a blocking thread).
pub fn run(
    model: &LoadedModel,
    inputs: TVec<TValue>,
    wanted: &[Wanted],
) -> Result<Vec<InferTensor>, InferError> {
    let outputs = model
        .run(inputs)
        .map_err(|e| InferError::Failed(format!("{e:#}")))?;
    let outputs: Vec<Tensor> = outputs.into_iter().map(|v| v.into_tensor()).collect();
    respond(model, &outputs, wanted)
}

/// The requested outputs as OIP tensors.
pub fn respond(
    model: &LoadedModel,
    outputs: &[Tensor],
    wanted: &[Wanted],
) -> Result<Vec<InferTensor>, InferError> {
    wanted
        .iter()
        .map(|w| {
            let name = &model.signature.outputs[w.index].name;
            let t = &outputs[w.index];
            let out = if w.binary {
                InferTensor::from_tract_raw(name, t)
            } else {
                InferTensor::from_tract(name, t)
            };
            out.map_err(InferError::Failed)
        })
        .collect()
}
