//! Encoders and selectors: OneHotEncoder, LabelEncoder, ArrayFeatureExtractor and ZipMap.

use crate::attrs::Attrs;
use crate::op::{self, Fact, Kernel, slice};
use std::collections::HashMap;
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

/// Serves a ZipMap as the `[N, classes]` probabilities tensor it maps: the Open Inference
/// Protocol has no map type, and the tensor holds the same numbers in the class order the
/// model declares.
#[derive(Debug, Clone, PartialEq)]
pub struct ZipMap {
    classes: usize,
}

impl ZipMap {
    pub fn parse(node: &NodeProto) -> TractResult<Self> {
        let a = Attrs::new(node);
        let ints = a.ints("classlabels_int64s")?.map(<[i64]>::len);
        let strings = a.strings("classlabels_strings")?.map(|s| s.len());
        match (ints, strings) {
            (Some(classes), None) | (None, Some(classes)) => Ok(ZipMap { classes }),
            _ => bail!("ZipMap: exactly one of classlabels_int64s and classlabels_strings"),
        }
    }
}

impl Kernel for ZipMap {
    const NAME: &'static str = "ZipMap";

    fn output_facts(&self, inputs: &[(DatumType, &[TDim])]) -> TractResult<Vec<Fact>> {
        let (dt, shape) = inputs[0];
        if dt != f32::datum_type() {
            bail!("ZipMap: input must be float, got {dt:?}");
        }
        op::check_columns(Self::NAME, "class labels", self.classes, shape)?;
        Ok(vec![(dt, shape.into())])
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        Ok(inputs)
    }
}

/// Selects columns (its second input, constant indices) of the last axis.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayFeatureExtractor;

impl Kernel for ArrayFeatureExtractor {
    const NAME: &'static str = "ArrayFeatureExtractor";

    fn inputs(&self) -> usize {
        2
    }

    fn output_facts(&self, inputs: &[(DatumType, &[TDim])]) -> TractResult<Vec<Fact>> {
        let (dt, shape) = inputs[0];
        let picked: TDim = inputs[1].1.iter().product();
        let mut out: TVec<TDim> = match shape.len() {
            0 => bail!("ArrayFeatureExtractor: input must have at least one axis"),
            1 => tvec!(1.into()),
            _ => shape[..shape.len() - 1].into(),
        };
        out.push(picked);
        Ok(vec![(dt, out)])
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let columns = *x.shape().last().unwrap_or(&1);
        let indices = inputs[1].cast_to::<i64>()?;
        let indices: Vec<usize> = slice::<i64>(&indices)?
            .iter()
            .map(|&i| match usize::try_from(i) {
                Ok(i) if i < columns => Ok(i),
                _ => bail!("ArrayFeatureExtractor: index {i} out of range 0..{columns}"),
            })
            .collect::<TractResult<_>>()?;
        let rows = x.len() / columns.max(1);
        let mut shape: TVec<usize> = match x.rank() {
            1 => tvec![1],
            _ => x.shape()[..x.rank() - 1].into(),
        };
        shape.push(indices.len());
        let picked = match x.datum_type() {
            DatumType::F32 => gather::<f32>(x, rows, columns, &indices)?,
            DatumType::F64 => gather::<f64>(x, rows, columns, &indices)?,
            DatumType::I64 => gather::<i64>(x, rows, columns, &indices)?,
            DatumType::I32 => gather::<i32>(x, rows, columns, &indices)?,
            DatumType::String => gather::<String>(x, rows, columns, &indices)?,
            dt => bail!("ArrayFeatureExtractor: input of type {dt:?} is not supported"),
        };
        Ok(tvec!(picked.into_shape(&shape)?.into_tvalue()))
    }
}

/// `indices` of each row's `columns`, as a `[rows, indices]` tensor.
fn gather<T: Datum + Clone>(
    x: &Tensor,
    rows: usize,
    columns: usize,
    indices: &[usize],
) -> TractResult<Tensor> {
    let src = slice::<T>(x)?;
    let mut out = Vec::with_capacity(rows * indices.len());
    for r in 0..rows {
        out.extend(indices.iter().map(|&c| src[r * columns + c].clone()));
    }
    Ok(tract_ndarray::Array::from_shape_vec((rows, indices.len()), out)?.into_tensor())
}

/// A category or key: an integer, a string, or a float's bits (NaN matches NaN).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Int(i64),
    Str(String),
    Float(u32),
}

impl Key {
    fn float(v: f32) -> Key {
        Key::Float(if v.is_nan() {
            f32::NAN.to_bits()
        } else {
            (v + 0.0).to_bits()
        })
    }
}

/// The keys of a tensor, read as `kind` (ints from any integer or float input, as onnxruntime
/// casts them).
fn keys(t: &Tensor, kind: KeyKind) -> TractResult<Vec<Key>> {
    Ok(match kind {
        KeyKind::Str => slice::<String>(t)?.iter().cloned().map(Key::Str).collect(),
        KeyKind::Int => {
            let i = t.cast_to::<i64>()?;
            slice::<i64>(&i)?.iter().map(|&v| Key::Int(v)).collect()
        }
        KeyKind::Float => {
            let f = t.cast_to::<f32>()?;
            slice::<f32>(&f)?.iter().map(|&v| Key::float(v)).collect()
        }
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum KeyKind {
    Int,
    Str,
    Float,
}

impl KeyKind {
    fn accepts(self, dt: DatumType) -> bool {
        match self {
            KeyKind::Str => dt == DatumType::String,
            KeyKind::Int | KeyKind::Float => dt.is_number() || dt == TDim::datum_type(),
        }
    }
}

/// Categories in order, for lookups.
#[derive(Debug, Clone, PartialEq)]
struct Categories {
    kind: KeyKind,
    index: HashMap<Key, usize>,
    len: usize,
}

impl Categories {
    fn new(kind: KeyKind, keys: Vec<Key>) -> Self {
        let len = keys.len();
        let mut index = HashMap::with_capacity(len);
        for (i, k) in keys.into_iter().enumerate() {
            index.entry(k).or_insert(i);
        }
        Categories { kind, index, len }
    }

    /// From whichever of `ints`, `strings` and `floats` (attribute names) is set.
    fn parse(a: &Attrs, ints: &str, strings: &str, floats: Option<&str>) -> TractResult<Self> {
        let i = a.ints(ints)?.filter(|v| !v.is_empty());
        let s = a.strings(strings)?.filter(|v| !v.is_empty());
        let f = match floats {
            Some(name) => a.floats(name)?.filter(|v| !v.is_empty()),
            None => None,
        };
        Ok(match (i, s, f) {
            (Some(i), None, None) => {
                Self::new(KeyKind::Int, i.iter().map(|&v| Key::Int(v)).collect())
            }
            (None, Some(s), None) => Self::new(KeyKind::Str, s.into_iter().map(Key::Str).collect()),
            (None, None, Some(f)) => {
                Self::new(KeyKind::Float, f.into_iter().map(Key::float).collect())
            }
            _ => bail!(
                "{}: exactly one of {ints}, {strings}{} must be set",
                a.op(),
                floats.map(|f| format!(", {f}")).unwrap_or_default()
            ),
        })
    }
}

/// One-hot encodes each value against the categories: the output appends an axis of one float
/// per category. An unknown value is all zeros, or an error when `zeros` is 0.
#[derive(Debug, Clone, PartialEq)]
pub struct OneHotEncoder {
    categories: Categories,
    zeros: bool,
}

impl OneHotEncoder {
    pub fn parse(node: &NodeProto) -> TractResult<Self> {
        let a = Attrs::new(node);
        let categories = Categories::parse(&a, "cats_int64s", "cats_strings", None)?;
        Ok(OneHotEncoder {
            categories,
            zeros: a.int("zeros").unwrap_or(1) != 0,
        })
    }
}

impl Kernel for OneHotEncoder {
    const NAME: &'static str = "OneHotEncoder";

    fn output_facts(&self, inputs: &[(DatumType, &[TDim])]) -> TractResult<Vec<Fact>> {
        let (dt, shape) = inputs[0];
        if !self.categories.kind.accepts(dt) {
            bail!("OneHotEncoder: input of type {dt:?} does not match its categories");
        }
        let mut out: TVec<TDim> = shape.into();
        out.push(self.categories.len.into());
        Ok(vec![(f32::datum_type(), out)])
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let k = self.categories.len;
        let values = keys(&inputs[0], self.categories.kind)?;
        let mut out = vec![0f32; values.len() * k];
        for (i, v) in values.iter().enumerate() {
            match self.categories.index.get(v) {
                Some(&c) => out[i * k + c] = 1.0,
                None if self.zeros => {}
                None => bail!("OneHotEncoder: {v:?} is not one of the categories"),
            }
        }
        let mut shape: TVec<usize> = inputs[0].shape().into();
        shape.push(k);
        op::tensor(&shape, &out).map(|t| tvec!(t))
    }
}

/// Maps each value through `keys -> values`, or to the default.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelEncoder {
    keys: Categories,
    values: Arc<Tensor>,
    default: Arc<Tensor>,
}

impl LabelEncoder {
    pub fn parse(node: &NodeProto) -> TractResult<Self> {
        let a = Attrs::new(node);
        if a.strings("classes_strings")?.is_some() {
            bail!(
                "LabelEncoder: version 1 (classes_strings) is not supported; export with ai.onnx.ml opset 2 or later"
            );
        }
        let keys = Categories::parse(&a, "keys_int64s", "keys_strings", Some("keys_floats"))?;
        let values: Tensor = if let Some(v) = a.ints("values_int64s")?.filter(|v| !v.is_empty()) {
            tensor1(v)
        } else if let Some(v) = a.strings("values_strings")?.filter(|v| !v.is_empty()) {
            tensor1(&v)
        } else if let Some(v) = a.floats("values_floats")?.filter(|v| !v.is_empty()) {
            tensor1(&v)
        } else {
            bail!("LabelEncoder: one of values_int64s, values_strings, values_floats must be set");
        };
        a.expect_len("values", values.len(), keys.len)?;
        let default = match values.datum_type() {
            DatumType::I64 => tensor0(a.int("default_int64").unwrap_or(-1)),
            DatumType::String => tensor0(a.string_or("default_string", "_Unused")?),
            _ => tensor0(a.float("default_float").unwrap_or(-0.0)),
        };
        Ok(LabelEncoder {
            keys,
            values: values.into_arc_tensor(),
            default: default.into_arc_tensor(),
        })
    }
}

impl Kernel for LabelEncoder {
    const NAME: &'static str = "LabelEncoder";

    fn output_facts(&self, inputs: &[(DatumType, &[TDim])]) -> TractResult<Vec<Fact>> {
        let (dt, shape) = inputs[0];
        if !self.keys.kind.accepts(dt) {
            bail!("LabelEncoder: input of type {dt:?} does not match its keys");
        }
        Ok(vec![(self.values.datum_type(), shape.into())])
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let found: Vec<Option<usize>> = keys(&inputs[0], self.keys.kind)?
            .iter()
            .map(|k| self.keys.index.get(k).copied())
            .collect();
        let out = match self.values.datum_type() {
            DatumType::I64 => map_values::<i64>(&self.values, &self.default, &found)?,
            DatumType::String => map_values::<String>(&self.values, &self.default, &found)?,
            _ => map_values::<f32>(&self.values, &self.default, &found)?,
        };
        Ok(tvec!(out.into_shape(inputs[0].shape())?.into_tvalue()))
    }
}

fn map_values<T: Datum + Clone>(
    values: &Tensor,
    default: &Tensor,
    found: &[Option<usize>],
) -> TractResult<Tensor> {
    let values = slice::<T>(values)?;
    let default = &slice::<T>(default)?[0];
    let out: Vec<T> = found
        .iter()
        .map(|f| f.map_or_else(|| default.clone(), |i| values[i].clone()))
        .collect();
    Ok(tract_ndarray::Array::from_vec(out).into_tensor())
}

pub fn register(reg: &mut tract_onnx::model::OnnxOpRegister) {
    reg.insert("ZipMap", |_, node| {
        Ok((op::op(ZipMap::parse(node)?), vec![]))
    });
    reg.insert("ArrayFeatureExtractor", |_, _| {
        Ok((op::op(ArrayFeatureExtractor), vec![]))
    });
    reg.insert("OneHotEncoder", |_, node| {
        Ok((op::op(OneHotEncoder::parse(node)?), vec![]))
    });
    reg.insert("LabelEncoder", |_, node| {
        Ok((op::op(LabelEncoder::parse(node)?), vec![]))
    });
}
