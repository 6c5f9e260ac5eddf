//! Served models for plugins: the models capability's side of the `inference` import.
//!
//! Tensors arrive as raw little-endian bytes (the OIP binary form), are checked against the
//! version's signature like an HTTP request, and run on the same shared plan (through the
//! batcher when the model has batching on). Versions with fitted transforms are refused: their
//! transforms are plugins themselves, and a plugin call waiting on another plugin's slot could
//! deadlock the pool; a plugin can apply the transform first and call the bare model.

use super::registry::ModelRegistry;
use super::tensor::DataType;
use crate::runtime::bindings::inference::Tensor as WitTensor;
use crate::runtime::inference::ModelRunner;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tract_onnx::prelude::*;

pub struct PluginModels(pub Arc<ModelRegistry>);

fn datum(dt: DataType) -> Option<DatumType> {
    use DataType::*;
    Some(match dt {
        Bool => DatumType::Bool,
        Uint8 => DatumType::U8,
        Uint16 => DatumType::U16,
        Uint32 => DatumType::U32,
        Uint64 => DatumType::U64,
        Int8 => DatumType::I8,
        Int16 => DatumType::I16,
        Int32 => DatumType::I32,
        Int64 => DatumType::I64,
        Fp32 => DatumType::F32,
        Fp64 => DatumType::F64,
        Bytes => return None,
    })
}

/// A WIT tensor as a tract tensor, checked: known datatype, bytes matching the shape.
fn to_tract(t: &WitTensor) -> Result<Tensor, String> {
    let dt: DataType = serde_json::from_value(serde_json::Value::String(t.datatype.clone()))
        .map_err(|_| format!("input `{}`: unknown datatype {:?}", t.name, t.datatype))?;
    let datum = datum(dt)
        .ok_or_else(|| format!("input `{}`: BYTES tensors are not supported here", t.name))?;
    let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
    let want = shape
        .iter()
        .try_fold(datum.size_of(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("input `{}`: shape {:?} is too large", t.name, t.shape))?;
    if t.data.len() != want {
        return Err(format!(
            "input `{}`: shape {:?} of {dt} needs {want} bytes, got {}",
            t.name,
            t.shape,
            t.data.len()
        ));
    }
    if datum == DatumType::Bool && t.data.iter().any(|b| *b > 1) {
        return Err(format!("input `{}`: BOOL bytes must be 0 or 1", t.name));
    }
    unsafe { Tensor::from_raw_dt(datum, &shape, &t.data) }
        .map_err(|e| format!("input `{}`: {e:#}", t.name))
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
    let data = t.as_bytes().to_vec();
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
