//! Calling the host's served models from a plugin (the WIT `inference` import), e.g. to score
//! rows while cleaning. The plugin must be granted the model at upload (`models=NAME`).
//!
//! ```no_run
//! use aimass_plugin_sdk::inference::{Tensor, infer};
//! // Two rows of three features for a model with an FP32 [N, 3] input named `features`.
//! let x = Tensor::f32("features", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
//! let out = infer("churn", vec![x]).unwrap();
//! let label = out.iter().find(|t| t.name == "label").unwrap().to_i64().unwrap();
//! # let _ = label;
//! ```

use crate::error::{Error, Result};

/// A tensor: the WIT `inference.tensor` record (OIP datatype name, shape, and row-major
/// little-endian element bytes), passed to the host import as it is.
pub use crate::__private::wit::aimass::plugin::inference::Tensor;

impl Tensor {
    /// An `FP32` tensor.
    pub fn f32(name: &str, shape: &[u64], values: &[f32]) -> Tensor {
        Tensor::raw(
            name,
            "FP32",
            shape,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        )
    }

    /// An `FP64` tensor.
    pub fn f64(name: &str, shape: &[u64], values: &[f64]) -> Tensor {
        Tensor::raw(
            name,
            "FP64",
            shape,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        )
    }

    /// An `INT64` tensor.
    pub fn i64(name: &str, shape: &[u64], values: &[i64]) -> Tensor {
        Tensor::raw(
            name,
            "INT64",
            shape,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        )
    }

    fn raw(name: &str, datatype: &str, shape: &[u64], data: Vec<u8>) -> Tensor {
        Tensor {
            name: name.to_string(),
            datatype: datatype.to_string(),
            shape: shape.to_vec(),
            data,
        }
    }

    fn values<const N: usize, T>(&self, want: &str, from: fn([u8; N]) -> T) -> Result<Vec<T>> {
        if self.datatype != want {
            return Err(Error::internal(format!(
                "tensor `{}` is {}, not {want}",
                self.name, self.datatype
            )));
        }
        Ok(self
            .data
            .chunks_exact(N)
            .map(|c| from(c.try_into().expect("N bytes")))
            .collect())
    }

    /// The values of an `FP32` tensor.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        self.values("FP32", f32::from_le_bytes)
    }

    /// The values of an `FP64` tensor.
    pub fn to_f64(&self) -> Result<Vec<f64>> {
        self.values("FP64", f64::from_le_bytes)
    }

    /// The values of an `INT64` tensor.
    pub fn to_i64(&self) -> Result<Vec<i64>> {
        self.values("INT64", i64::from_le_bytes)
    }
}

/// Run served model `model` (`name`, `name@3` or `name@alias`) on `inputs`; every output comes
/// back in the model's order. Errors (model not granted, unknown, wrong input) are
/// [`Error::Internal`] with the host's message. Outside the host (native unit tests) there is no
/// model to call, and the result is an error.
pub fn infer(model: &str, inputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
    #[cfg(target_arch = "wasm32")]
    {
        crate::__private::wit::aimass::plugin::inference::infer(model, &inputs)
            .map_err(|e| Error::internal(format!("inference on `{model}`: {e}")))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (model, inputs);
        Err(Error::internal(
            "no host: models can only be called inside aimass",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_round_trip_their_values() {
        let t = Tensor::f32("x", &[2], &[1.5, -2.0]);
        assert_eq!(t.data.len(), 8);
        assert_eq!(t.to_f32().unwrap(), [1.5, -2.0]);
        assert!(t.to_i64().is_err());
        assert_eq!(Tensor::i64("y", &[1], &[-7]).to_i64().unwrap(), [-7]);
        assert_eq!(Tensor::f64("z", &[1], &[0.25]).to_f64().unwrap(), [0.25]);
        assert!(
            infer("m", vec![t])
                .unwrap_err()
                .message()
                .contains("no host")
        );
    }
}
