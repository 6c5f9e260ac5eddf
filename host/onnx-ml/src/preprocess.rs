//! Column-wise preprocessing: Scaler, Imputer and Binarizer (scikit-learn's scalers,
//! SimpleImputer and Binarizer export to these).

use crate::attrs::Attrs;
use crate::op::{self, Fact, Kernel, check_columns, slice};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

/// `Y = (X - offset) * scale`, per column; the output is float whatever the numeric input.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

impl Scaler {
    pub fn parse(node: &NodeProto) -> TractResult<Self> {
        let a = Attrs::new(node);
        let offset = a.floats("offset")?.unwrap_or_else(|| vec![0.0]);
        let scale = a.floats("scale")?.unwrap_or_else(|| vec![1.0]);
        if offset.is_empty() || scale.is_empty() {
            bail!("Scaler: offset and scale must not be empty");
        }
        Ok(Scaler { offset, scale })
    }
}

/// The value for column `j` of a per-column attribute (one value, or one per column).
fn at(values: &[f32], j: usize) -> f32 {
    if values.len() == 1 {
        values[0]
    } else {
        values[j]
    }
}

/// Checks that an attribute of `len` values fits `columns` at run time.
fn fits(op: &str, what: &str, len: usize, columns: usize) -> TractResult<()> {
    if len != 1 && len != columns {
        bail!("{op}: {what} has {len} values for an input of {columns} columns");
    }
    Ok(())
}

impl Kernel for Scaler {
    const NAME: &'static str = "Scaler";

    fn output_facts(&self, inputs: &[(DatumType, &[TDim])]) -> TractResult<Vec<Fact>> {
        let (_, shape) = inputs[0];
        check_columns(Self::NAME, "offset", self.offset.len(), shape)?;
        check_columns(Self::NAME, "scale", self.scale.len(), shape)?;
        Ok(vec![(f32::datum_type(), shape.into())])
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let mut t = inputs[0].cast_to::<f32>()?.into_owned();
        let columns = t.shape().last().copied().unwrap_or(1).max(1);
        fits(Self::NAME, "offset", self.offset.len(), columns)?;
        fits(Self::NAME, "scale", self.scale.len(), columns)?;
        let mut values = t.try_as_plain_ram_mut()?;
        for (i, v) in values.as_slice_mut::<f32>()?.iter_mut().enumerate() {
            let j = i % columns;
            *v = (*v - at(&self.offset, j)) * at(&self.scale, j);
        }
        Ok(tvec!(t.into_tvalue()))
    }
}

/// Replaces a marker value (NaN by default for floats) by a per-column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Imputer {
    Float { values: Vec<f32>, replaced: f32 },
    Int { values: Vec<i64>, replaced: i64 },
}

impl Imputer {
    pub fn parse(node: &NodeProto) -> TractResult<Self> {
        let a = Attrs::new(node);
        let floats = a.floats("imputed_value_floats")?.filter(|v| !v.is_empty());
        let ints = a.ints("imputed_value_int64s")?.filter(|v| !v.is_empty());
        match (floats, ints) {
            (Some(values), None) => Ok(Imputer::Float {
                values,
                replaced: a.float("replaced_value_float").unwrap_or(0.0),
            }),
            (None, Some(values)) => Ok(Imputer::Int {
                values: values.to_vec(),
                replaced: a.int("replaced_value_int64").unwrap_or(0),
            }),
            _ => bail!("Imputer: exactly one of imputed_value_floats and imputed_value_int64s"),
        }
    }

    fn len(&self) -> usize {
        match self {
            Imputer::Float { values, .. } => values.len(),
            Imputer::Int { values, .. } => values.len(),
        }
    }
}

impl Kernel for Imputer {
    const NAME: &'static str = "Imputer";

    fn output_facts(&self, inputs: &[(DatumType, &[TDim])]) -> TractResult<Vec<Fact>> {
        let (dt, shape) = inputs[0];
        check_columns(Self::NAME, "imputed values", self.len(), shape)?;
        let want = match self {
            Imputer::Float { .. } => dt.is_float(),
            Imputer::Int { .. } => dt == i64::datum_type(),
        };
        if !want {
            bail!("Imputer: input of type {dt:?} does not match its imputed values");
        }
        Ok(vec![(dt, shape.into())])
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let dt = inputs[0].datum_type();
        let columns = inputs[0].shape().last().copied().unwrap_or(1).max(1);
        fits(Self::NAME, "imputed values", self.len(), columns)?;
        let mut t = inputs[0].clone().into_tensor();
        match self {
            Imputer::Float { values, replaced } => {
                let mut f = t.cast_to::<f32>()?.into_owned();
                let hit = |v: f32| {
                    if replaced.is_nan() {
                        v.is_nan()
                    } else {
                        v == *replaced
                    }
                };
                let mut view = f.try_as_plain_ram_mut()?;
                for (i, v) in view.as_slice_mut::<f32>()?.iter_mut().enumerate() {
                    if hit(*v) {
                        *v = at(values, i % columns);
                    }
                }
                t = f.cast_to_dt(dt)?.into_owned();
            }
            Imputer::Int { values, replaced } => {
                let at = |j: usize| {
                    if values.len() == 1 {
                        values[0]
                    } else {
                        values[j]
                    }
                };
                let mut view = t.try_as_plain_ram_mut()?;
                for (i, v) in view.as_slice_mut::<i64>()?.iter_mut().enumerate() {
                    if v == replaced {
                        *v = at(i % columns);
                    }
                }
            }
        }
        Ok(tvec!(t.into_tvalue()))
    }
}

/// `Y = X > threshold ? 1 : 0`, in the input's type.
#[derive(Debug, Clone, PartialEq)]
pub struct Binarizer {
    threshold: f32,
}

impl Binarizer {
    pub fn parse(node: &NodeProto) -> TractResult<Self> {
        let threshold = Attrs::new(node).float("threshold").unwrap_or(0.0);
        Ok(Binarizer { threshold })
    }
}

impl Kernel for Binarizer {
    const NAME: &'static str = "Binarizer";

    fn output_facts(&self, inputs: &[(DatumType, &[TDim])]) -> TractResult<Vec<Fact>> {
        let (dt, shape) = inputs[0];
        if !dt.is_number() {
            bail!("Binarizer: input of type {dt:?} is not numeric");
        }
        Ok(vec![(dt, shape.into())])
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let dt = inputs[0].datum_type();
        let f = inputs[0].cast_to::<f32>()?;
        let out: Vec<f32> = slice::<f32>(&f)?
            .iter()
            .map(|&v| if v > self.threshold { 1.0 } else { 0.0 })
            .collect();
        let t = Tensor::from_shape(f.shape(), &out)?;
        Ok(tvec!(t.cast_to_dt(dt)?.into_owned().into_tvalue()))
    }
}

/// Scales each row by its largest value, or its L1 or L2 norm (a zero norm leaves the row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalizer {
    Max,
    L1,
    L2,
}

impl Normalizer {
    pub fn parse(node: &NodeProto) -> TractResult<Self> {
        let a = Attrs::new(node);
        Ok(match a.string_or("norm", "MAX")?.as_str() {
            "MAX" => Normalizer::Max,
            "L1" => Normalizer::L1,
            "L2" => Normalizer::L2,
            other => return Err(a.error("norm", format!("unknown norm {other:?}"))),
        })
    }

    fn row(self, x: &mut [f32]) {
        let norm = match self {
            // onnxruntime's MAX is the largest value, not the largest magnitude.
            Normalizer::Max => x.iter().copied().fold(f32::MIN, f32::max),
            Normalizer::L1 => x.iter().map(|v| v.abs()).sum(),
            Normalizer::L2 => x.iter().map(|v| v * v).sum::<f32>().sqrt(),
        };
        if norm != 0.0 {
            x.iter_mut().for_each(|v| *v /= norm);
        }
    }
}

impl Kernel for Normalizer {
    const NAME: &'static str = "Normalizer";

    fn output_facts(&self, inputs: &[(DatumType, &[TDim])]) -> TractResult<Vec<Fact>> {
        let (dt, shape) = inputs[0];
        if !dt.is_number() || shape.len() > 2 {
            bail!(
                "Normalizer: input must be numeric of rank 1 or 2, got {dt:?} of rank {}",
                shape.len()
            );
        }
        Ok(vec![(f32::datum_type(), shape.into())])
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (mut t, _, columns) = op::matrix(&inputs[0])?;
        let mut view = t.try_as_plain_ram_mut()?;
        for row in view.as_slice_mut::<f32>()?.chunks_mut(columns.max(1)) {
            self.row(row);
        }
        Ok(tvec!(t.into_shape(inputs[0].shape())?.into_tvalue()))
    }
}

pub fn register(reg: &mut tract_onnx::model::OnnxOpRegister) {
    reg.insert("Scaler", |_, node| {
        Ok((op::op(Scaler::parse(node)?), vec![]))
    });
    reg.insert("Imputer", |_, node| {
        Ok((op::op(Imputer::parse(node)?), vec![]))
    });
    reg.insert("Normalizer", |_, node| {
        Ok((op::op(Normalizer::parse(node)?), vec![]))
    });
    reg.insert("Binarizer", |_, node| {
        Ok((op::op(Binarizer::parse(node)?), vec![]))
    });
}
