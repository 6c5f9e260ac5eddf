//! Served models for plugins: the models capability's side of the `inference` import.
//!
//! Tensors arrive as raw little-endian bytes (the OIP binary form), are checked against the
//! version's signature like an HTTP request, and run on the same shared plan (through the
//! batcher when the model has batching on). Versions with fitted transforms are refused: their
//! transforms are plugins themselves, and a plugin call waiting on another plugin's slot could
//! deadlock the pool; a plugin can apply the transform first and call the bare model.

use super::tensor::{DataType, raw_to_tract, tract_to_raw};
use super::versions::ModelRegistry;
use crate::runtime::ModelRunner;
use crate::runtime::Tensor as WitTensor;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tract_onnx::prelude::*;

pub struct PluginModels(pub Arc<ModelRegistry>);

/// A WIT tensor as a tract tensor, checked like an OIP binary input (BYTES is refused: the
/// import carries numbers).
fn to_tract(t: &WitTensor) -> Result<Tensor, String> {
    let dt: DataType = serde_json::from_value(serde_json::Value::String(t.datatype.clone()))
        .map_err(|_| format!("input `{}`: unknown datatype {:?}", t.name, t.datatype))?;
    if dt == DataType::Bytes {
        return Err(format!(
            "input `{}`: BYTES tensors are not supported here",
            t.name
        ));
    }
    let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
    raw_to_tract(&t.name, dt, &shape, &t.data)
}

fn to_wit(name: &str, t: &Tensor) -> Result<WitTensor, String> {
    let dt = DataType::from_datum(t.datum_type())
        .filter(|d| *d != DataType::Bytes)
        .ok_or_else(|| {
            format!(
                "output `{name}` has type {:?}, which the inference import cannot carry",
                t.datum_type()
            )
        })?;
    let data = tract_to_raw(t)?;
    Ok(WitTensor {
        name: name.to_string(),
        datatype: dt.as_str().to_string(),
        shape: t.shape().iter().map(|&d| d as u64).collect(),
        data,
    })
}

impl PluginModels {
    async fn run(&self, model: &str, inputs: Vec<WitTensor>) -> Result<Vec<WitTensor>, String> {
        let (name, reference) = match model.split_once('@') {
            Some((n, r)) => (n, Some(r)),
            None => (model, None),
        };
        let v = self.0.resolve(name, reference).map_err(|e| e.to_string())?;
        if !v.transforms.is_empty() {
            return Err(format!(
                "model `{name}` v{} has fitted transforms; call it over HTTP or apply them first",
                v.version
            ));
        }
        let plan = self.0.plan(&v).await.map_err(|e| e.to_string())?;
        let sig = &plan.signature;
        let mut tensors = TVec::new();
        for spec in &sig.inputs {
            let t = inputs
                .iter()
                .find(|t| t.name == spec.name)
                .ok_or_else(|| format!("missing input `{}`", spec.name))?;
            let tensor = to_tract(t)?;
            if t.datatype != spec.datatype.as_str() {
                return Err(format!(
                    "input `{}` expects {}, got {}",
                    spec.name, spec.datatype, t.datatype
                ));
            }
            let fits = tensor.rank() == spec.shape.len()
                && tensor
                    .shape()
                    .iter()
                    .zip(&spec.shape)
                    .all(|(&got, &want)| want < 0 || got as i64 == want);
            if !fits {
                return Err(format!(
                    "input `{}` expects shape {:?} (-1: any size), got {:?}",
                    spec.name, spec.shape, t.shape
                ));
            }
            tensors.push(tensor);
        }
        if let Some(extra) = inputs
            .iter()
            .find(|t| !sig.inputs.iter().any(|s| s.name == t.name))
        {
            return Err(format!("unknown input `{}`", extra.name));
        }
        let outputs: TVec<Tensor> = match self.0.batcher(&v, &plan) {
            Some(b) => b.infer(tensors).await.map_err(|e| e.to_string())?,
            None => {
                let plan = plan.clone();
                tokio::task::spawn_blocking(move || {
                    plan.run(tensors.into_iter().map(TValue::from).collect())
                        .map(|o| {
                            o.into_iter()
                                .map(|v| v.into_tensor())
                                .collect::<TVec<Tensor>>()
                        })
                        .map_err(|e| format!("inference failed: {e:#}"))
                })
                .await
                .map_err(|e| e.to_string())??
            }
        };
        sig.outputs
            .iter()
            .zip(outputs.iter())
            .map(|(s, t)| to_wit(&s.name, t))
            .collect()
    }
}

impl ModelRunner for PluginModels {
    fn infer<'a>(
        &'a self,
        model: &'a str,
        inputs: Vec<WitTensor>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<WitTensor>, String>> + Send + 'a>> {
        Box::pin(self.run(model, inputs))
    }
}
