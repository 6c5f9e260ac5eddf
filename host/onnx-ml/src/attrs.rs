//! Reading an ONNX-ML node's attributes, with the checks every operator needs.
//!
//! Attributes come from an uploaded file, so every read is checked: lengths against each other,
//! ids against their ranges, counts against [`MAX_LEN`]. A malformed model is an error naming
//! the operator and the attribute, never a panic or an allocation sized by the file.

use tract_onnx::pb::{AttributeProto, NodeProto, TensorProto, tensor_proto::DataType};
use tract_onnx::tract_hir::internal::*;

/// The most elements any attribute array may have (a forest of ten million nodes is already far
/// past what scikit-learn exports); a larger count is refused before anything is allocated.
pub const MAX_LEN: usize = 1 << 24;

/// The attributes of one node.
#[derive(Clone, Copy)]
pub struct Attrs<'a> {
    node: &'a NodeProto,
}

impl<'a> Attrs<'a> {
    pub fn new(node: &'a NodeProto) -> Self {
        Attrs { node }
    }

    /// The operator's type, for messages.
    pub fn op(&self) -> &str {
        &self.node.op_type
    }

    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    /// An error about attribute `name`.
    pub fn error(&self, name: &str, what: impl std::fmt::Display) -> TractError {
        format_err!("{} attribute {name}: {what}", self.op())
    }

    /// A string attribute.
    pub fn string(&self, name: &str) -> TractResult<Option<String>> {
        self.get(name)
            .map(|a| utf8(&a.s).map_err(|e| self.error(name, e)))
            .transpose()
    }

    /// A string attribute with a default.
    pub fn string_or(&self, name: &str, default: &str) -> TractResult<String> {
        Ok(self.string(name)?.unwrap_or_else(|| default.to_string()))
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).map(|a| a.i)
    }

    pub fn float(&self, name: &str) -> Option<f32> {
        self.get(name).map(|a| a.f)
    }

    /// An `ints` attribute, checked against [`MAX_LEN`].
    pub fn ints(&self, name: &str) -> TractResult<Option<&'a [i64]>> {
        let Some(a) = self.get(name) else {
            return Ok(None);
        };
        self.checked_len(name, a.ints.len())?;
        Ok(Some(&a.ints))
    }

    /// A `floats` attribute, or its `NAME_as_tensor` form (doubles, narrowed to f32 as
    /// onnxruntime's float kernels do).
    pub fn floats(&self, name: &str) -> TractResult<Option<Vec<f32>>> {
        if let Some(a) = self.get(name) {
            self.checked_len(name, a.floats.len())?;
            return Ok(Some(a.floats.clone()));
        }
        let tensor_name = format!("{name}_as_tensor");
        match self.get(&tensor_name).and_then(|a| a.t.as_ref()) {
            Some(t) => self.tensor_floats(&tensor_name, t).map(Some),
            None => Ok(None),
        }
    }

    /// A `strings` attribute, each UTF-8.
    pub fn strings(&self, name: &str) -> TractResult<Option<Vec<String>>> {
        let Some(a) = self.get(name) else {
            return Ok(None);
        };
        self.checked_len(name, a.strings.len())?;
        a.strings
            .iter()
            .map(|s| utf8(s).map_err(|e| self.error(name, e)))
            .collect::<TractResult<_>>()
            .map(Some)
    }

    /// An attribute that must be present.
    pub fn required<T>(&self, name: &str, value: TractResult<Option<T>>) -> TractResult<T> {
        value?.ok_or_else(|| self.error(name, "missing"))
    }

    /// Requires `len` to be `want`.
    pub fn expect_len(&self, name: &str, len: usize, want: usize) -> TractResult<()> {
        if len != want {
            return Err(self.error(name, format!("has {len} values, expected {want}")));
        }
        Ok(())
    }

    fn checked_len(&self, name: &str, len: usize) -> TractResult<()> {
        if len > MAX_LEN {
            return Err(self.error(name, format!("{len} values is over the limit of {MAX_LEN}")));
        }
        Ok(())
    }

    fn tensor_floats(&self, name: &str, t: &TensorProto) -> TractResult<Vec<f32>> {
        let bad = |what: &str| self.error(name, what);
        if !t.external_data.is_empty() {
            return Err(bad("external data is not accepted"));
        }
        let count: usize = t
            .dims
            .iter()
            .try_fold(1usize, |n, &d| {
                usize::try_from(d).ok().and_then(|d| n.checked_mul(d))
            })
            .ok_or_else(|| bad("has a negative or overflowing dimension"))?;
        self.checked_len(name, count)?;
        let values: Vec<f32> = match DataType::try_from(t.data_type) {
            Ok(DataType::Float) if !t.raw_data.is_empty() => le_chunks::<4>(&t.raw_data)
                .map(f32::from_le_bytes)
                .collect(),
            Ok(DataType::Float) => t.float_data.clone(),
            Ok(DataType::Double) if !t.raw_data.is_empty() => le_chunks::<8>(&t.raw_data)
                .map(|b| f64::from_le_bytes(b) as f32)
                .collect(),
            Ok(DataType::Double) => t.double_data.iter().map(|&v| v as f32).collect(),
            _ => return Err(bad("must be a float or double tensor")),
        };
        self.expect_len(name, values.len(), count)?;
        Ok(values)
    }
}

fn utf8(bytes: &[u8]) -> Result<String, std::str::Utf8Error> {
    std::str::from_utf8(bytes).map(str::to_string)
}

fn le_chunks<const N: usize>(raw: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    raw.chunks_exact(N)
        .map(|c| c.try_into().expect("chunks_exact yields N bytes"))
}

/// `values` as indices below `bound`.
pub fn indices(attrs: &Attrs, name: &str, values: &[i64], bound: usize) -> TractResult<Vec<usize>> {
    values
        .iter()
        .map(|&v| match usize::try_from(v) {
            Ok(i) if i < bound => Ok(i),
            _ => Err(attrs.error(name, format!("{v} is out of range 0..{bound}"))),
        })
        .collect()
}

/// One value per column (`len` of them) from an attribute holding either one value for all
/// columns or one per column.
pub fn per_column(attrs: &Attrs, name: &str, values: &[f32], len: usize) -> TractResult<Vec<f32>> {
    match values.len() {
        1 => Ok(vec![values[0]; len]),
        n if n == len => Ok(values.to_vec()),
        n => Err(attrs.error(name, format!("has {n} values for {len} columns"))),
    }
}
