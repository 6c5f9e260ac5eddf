//! ONNX models through tract: load and optimise once, run many times.
//!
//! [`load`] reads the bytes, names any operator tract does not implement (so an upload fails
//! with a 422 that says which), optimises the graph and keeps the plan in an `Arc`: a runnable
//! plan is `Send + Sync` and every [`LoadedModel::run`] makes its own per-call state, so one
//! loaded version serves every request. Running is CPU work: callers run it off the async
//! threads (`spawn_blocking`).
//!
//! The plan keeps the batch dimension symbolic, so one plan serves every batch size. For
//! convolutional models, tract lays out the convolution's input far better when it knows the
//! shape (a batch-1 plan ran the bench CNN in 51 µs against 81 µs; BENCHMARKS.md), and batch 1 is
//! what most Open Inference Protocol clients send: such models get a second plan, optimised for
//! batch 1 at load, used whenever a request has one row. Dense models gain nothing from it
//! (4.2–4.9 µs either way) and keep one plan.

use super::tensor::DataType;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tract_onnx::prelude::*;

/// The name, datatype and shape of one model input or output; `-1` marks a dimension that
/// varies per request (the batch size).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<i64>,
}

/// A model's inputs and outputs, as Open Inference Protocol metadata shows them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Signature {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// Why bytes are not a model the host can serve.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a valid ONNX model: {0}")]
    Malformed(String),
    #[error("unsupported ONNX operator(s): {}", .0.join(", "))]
    Unsupported(Vec<String>),
    #[error("tract cannot optimise this model: {0}")]
    Invalid(String),
}

/// An optimised model, shared by every request for its version.
pub struct LoadedModel {
    plan: Arc<TypedRunnableModel>,
    /// The plan for one-row requests, for convolutional models (see the module docs).
    single: Option<Arc<TypedRunnableModel>>,
    pub signature: Signature,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("signature", &self.signature)
            .finish()
    }
}

fn chain(e: &anyhow::Error) -> String {
    format!("{e:#}")
}

/// Load, check and optimise `bytes` (CPU-heavy: call from a blocking thread).
pub fn load(bytes: &[u8]) -> Result<LoadedModel, LoadError> {
    let model = aimass_onnx_ml::onnx()
        .model_for_read(&mut std::io::Cursor::new(bytes))
        .map_err(|e| LoadError::Malformed(chain(&e)))?;
    let mut unsupported: Vec<String> = model
        .nodes()
        .iter()
        .filter_map(|n| {
            let name = n.op.name();
            let op = name.strip_prefix("Unimplemented(")?.strip_suffix(')')?;
            Some(op.to_string())
        })
        .collect();
    unsupported.sort();
    unsupported.dedup();
    if !unsupported.is_empty() {
        return Err(LoadError::Unsupported(unsupported));
    }
    let model = name_unknown_dims(model)?;
    let mut typed = model
        .into_typed()
        .map_err(|e| LoadError::Invalid(chain(&e)))?;
    aimass_onnx_ml::cast_dim_outputs(&mut typed).map_err(|e| LoadError::Invalid(chain(&e)))?;
    let signature = signature(&typed).map_err(LoadError::Invalid)?;
    let single = single_row_plan(&typed);
    let plan = typed
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(|e| LoadError::Invalid(chain(&e)))?;
    Ok(LoadedModel {
        plan,
        single,
        signature,
    })
}

/// A plan with the batch fixed at 1, for a model with a convolution whose inputs all lead with
/// the same symbolic batch dimension; `None` otherwise, or if tract cannot build it (the
/// symbolic plan then serves every request, as for any other model).
fn single_row_plan(typed: &TypedModel) -> Option<Arc<TypedRunnableModel>> {
    use tract_onnx::tract_hir::tract_core::ops::cnn::Conv;
    if !typed.nodes().iter().any(|n| n.op_is::<Conv>()) {
        return None;
    }
    let mut batch: Option<Symbol> = None;
    for outlet in typed.input_outlets().ok()? {
        let fact = typed.outlet_fact(*outlet).ok()?;
        let TDim::Sym(sym) = fact.shape.iter().next()? else {
            return None;
        };
        if batch.get_or_insert_with(|| sym.clone()) != sym {
            return None;
        }
    }
    let subs = std::collections::HashMap::from([(batch?, TDim::from(1))]);
    let plan = typed
        .set_symbols(&subs)
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable());
    match plan {
        Ok(plan) => Some(plan),
        Err(e) => {
            tracing::debug!("no batch-1 plan: {}", chain(&e));
            None
        }
    }
}

/// Exporters such as skl2onnx leave the batch dimension unnamed (`[None, 4]`); tract needs
/// every input dimension to be a number or a symbol, so unnamed ones get a symbol of their own.
fn name_unknown_dims(mut model: InferenceModel) -> Result<InferenceModel, LoadError> {
    use tract_onnx::tract_hir::infer::Factoid;
    for i in 0..model.inputs.len() {
        let fact = model
            .input_fact(i)
            .map_err(|e| LoadError::Invalid(chain(&e)))?
            .clone();
        if !fact.shape.is_open() && fact.shape.dims().all(|d| d.concretize().is_some()) {
            continue;
        }
        let Some(dt) = fact.datum_type.concretize() else {
            return Err(LoadError::Invalid(format!("input {i} has no element type")));
        };
        if fact.shape.is_open() {
            return Err(LoadError::Invalid(format!("input {i} has no rank")));
        }
        let dims: TVec<TDim> = fact
            .shape
            .dims()
            .enumerate()
            .map(|(j, d)| {
                d.concretize()
                    .unwrap_or_else(|| model.symbols.sym(&format!("unk_{i}_{j}")).into())
            })
            .collect();
        model
            .set_input_fact(i, InferenceFact::dt_shape(dt, dims))
            .map_err(|e| LoadError::Invalid(chain(&e)))?;
    }
    Ok(model)
}

fn spec(model: &TypedModel, outlet: OutletId) -> Result<TensorSpec, String> {
    let fact = model.outlet_fact(outlet).map_err(|e| chain(&e))?;
    let datatype = DataType::from_datum(fact.datum_type)
        .ok_or_else(|| format!("tensor type {:?} cannot be served", fact.datum_type))?;
    let shape = fact
        .shape
        .iter()
        .map(|d| d.to_i64().unwrap_or(-1))
        .collect();
    let name = model
        .outlet_label(outlet)
        .map(str::to_string)
        .unwrap_or_else(|| model.node(outlet.node).name.clone());
    Ok(TensorSpec {
        name,
        datatype,
        shape,
    })
}

fn signature(model: &TypedModel) -> Result<Signature, String> {
    let inputs = model.input_outlets().map_err(|e| chain(&e))?;
    let outputs = model.output_outlets().map_err(|e| chain(&e))?;
    Ok(Signature {
        inputs: inputs
            .iter()
            .map(|o| spec(model, *o))
            .collect::<Result<_, _>>()?,
        outputs: outputs
            .iter()
            .map(|o| spec(model, *o))
            .collect::<Result<_, _>>()?,
    })
}

impl LoadedModel {
    /// Run on `inputs` (in the order of `signature.inputs`); outputs come in the order of
    /// `signature.outputs`. A shape or type tract rejects is an error naming the problem.
    pub fn run(&self, inputs: TVec<TValue>) -> anyhow::Result<TVec<TValue>> {
        match &self.single {
            Some(single) if inputs.iter().all(|t| t.shape().first() == Some(&1)) => {
                single.run(inputs)
            }
            _ => self.plan.run(inputs),
        }
    }

    /// Whether one-row requests run on a plan of their own (see the module docs).
    pub fn has_single_row_plan(&self) -> bool {
        self.single.is_some()
    }
}
