//! Open Inference Protocol tensors ⇄ tract tensors.
//!
//! An OIP tensor is `{"name", "shape", "datatype", "data"}` with `data` row-major, either flat
//! (`[1, 2, 3, 4]`) or nested like the shape (`[[1, 2], [3, 4]]`). Conversion checks that the
//! element count matches the shape and that every element fits the datatype (an `INT8` of 300 is
//! an error, not a wrap-around), and names the tensor in every error.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ndarray::{ArrayD, IxDyn};

/// The OIP tensor datatypes the host serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DataType {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp32,
    Fp64,
    Bytes,
}

impl DataType {
    /// The OIP name, e.g. `FP32`.
    pub fn as_str(self) -> &'static str {
        use DataType::*;
        match self {
            Bool => "BOOL",
            Uint8 => "UINT8",
            Uint16 => "UINT16",
            Uint32 => "UINT32",
            Uint64 => "UINT64",
            Int8 => "INT8",
            Int16 => "INT16",
            Int32 => "INT32",
            Int64 => "INT64",
            Fp32 => "FP32",
            Fp64 => "FP64",
            Bytes => "BYTES",
        }
    }

    pub fn from_datum(d: DatumType) -> Option<DataType> {
        use DataType::*;
        Some(match d {
            DatumType::Bool => Bool,
            DatumType::U8 => Uint8,
            DatumType::U16 => Uint16,
            DatumType::U32 => Uint32,
            DatumType::U64 => Uint64,
            DatumType::I8 => Int8,
            DatumType::I16 => Int16,
            DatumType::I32 => Int32,
            DatumType::I64 => Int64,
            DatumType::F32 => Fp32,
            DatumType::F64 => Fp64,
            DatumType::String => Bytes,
            _ => return None,
        })
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One tensor of a request or response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InferTensor {
    pub name: String,
    pub shape: Vec<i64>,
    /// Kept as text so an unknown datatype is a 400 naming it, not a JSON error.
    pub datatype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Map<String, Value>>,
    /// The elements; absent when the tensor travels as binary data (or, in a request, until
    /// `json` is parsed).
    #[serde(default, skip_serializing_if = "Data::is_none")]
    pub data: Data,
    /// The tensor's bytes under the binary tensor data extension (little-endian elements;
    /// BYTES as 4-byte length + bytes per element), instead of `data`.
    #[serde(skip)]
    pub raw: Option<bytes::Bytes>,
    /// A request's `data` as its JSON text, parsed once the datatype is known (see
    /// [`json_data`](super::json_data)); requests never build a `Value` tree of their data.
    #[serde(skip)]
    pub json: Option<Box<serde_json::value::RawValue>>,
}

/// Longest `parameters` object of a request, a tensor or a requested output, as JSON text:
/// parameters are small flags, and a parsed JSON tree takes several times its text.
pub const MAX_PARAMETERS_BYTES: usize = 16 << 10;
/// Most tensors in a request's `inputs` or `outputs`, and most dimensions in a shape.
pub const MAX_TENSORS: usize = 1024;
pub const MAX_DIMS: usize = 64;
/// Most elements of one BYTES tensor: each becomes a `String` of its own (24 bytes plus its
/// text), many times the 3 or 4 bytes a short element takes in the body.
pub const MAX_BYTES_ELEMENTS: usize = 1 << 20;

/// `deserialize_with` for `parameters`: refused past [`MAX_PARAMETERS_BYTES`] before any tree
/// is built.
pub fn bounded_parameters<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<serde_json::Map<String, Value>>, D::Error> {
    let Some(raw) = Option::<Box<serde_json::value::RawValue>>::deserialize(d)? else {
        return Ok(None);
    };
    if raw.get().len() > MAX_PARAMETERS_BYTES {
        return Err(serde::de::Error::custom(format!(
            "`parameters` is {} bytes of JSON, more than the {MAX_PARAMETERS_BYTES} allowed",
            raw.get().len()
        )));
    }
    serde_json::from_str(raw.get()).map_err(serde::de::Error::custom)
}

/// A JSON array of at most `N` items, refused as soon as it runs past.
pub struct Bounded<T, const N: usize>(pub Vec<T>);

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Bounded<T, N> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Items<T, const N: usize>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> serde::de::Visitor<'de> for Items<T, N> {
            type Value = Vec<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "an array of at most {N} items")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Vec<T>, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    if items.len() == N {
                        return Err(serde::de::Error::custom(format!(
                            "more than {N} items in an array"
                        )));
                    }
                    items.push(item);
                }
                Ok(items)
            }
        }
        d.deserialize_seq(Items::<T, N>(std::marker::PhantomData))
            .map(Bounded)
    }
}

/// `deserialize_with` for a request's optional `outputs`, at most [`MAX_TENSORS`] of them.
pub fn bounded_outputs<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Bounded<T, MAX_TENSORS>>::deserialize(d)?.map(|b| b.0))
}

/// A request tensor as it arrives.
#[derive(Deserialize)]
struct WireTensor {
    name: String,
    shape: Bounded<i64, MAX_DIMS>,
    datatype: String,
    #[serde(default, deserialize_with = "bounded_parameters")]
    parameters: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    data: Option<Box<serde_json::value::RawValue>>,
}

/// `deserialize_with` for a request's `inputs`: `data` stays raw JSON text, `parameters` are
/// bounded, and so are the number of tensors and of their dimensions.
pub fn deserialize_inputs<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<InferTensor>, D::Error> {
    let wire = Bounded::<WireTensor, MAX_TENSORS>::deserialize(d)?.0;
    if let Some(w) = wire.iter().find(|w| {
        // Negative dimensions are refused later, naming them.
        let elements = w
            .shape
            .0
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d.max(0) as u64));
        w.datatype == "BYTES" && elements.is_none_or(|n| n > MAX_BYTES_ELEMENTS as u64)
    }) {
        return Err(serde::de::Error::custom(format!(
            "input `{}`: a BYTES tensor holds at most {MAX_BYTES_ELEMENTS} elements, shape {:?} \
             has more",
            w.name, w.shape.0
        )));
    }
    Ok(wire
        .into_iter()
        .map(|w| InferTensor {
            name: w.name,
            shape: w.shape.0,
            datatype: w.datatype,
            parameters: w.parameters,
            data: Data::None,
            raw: None,
            json: w.data.filter(|j| j.get().trim() != "null"),
        })
        .collect())
}

fn typed<T: super::json_data::Element + Datum>(
    name: &str,
    json: &str,
    shape: &[usize],
    count: usize,
    dt: DataType,
) -> Result<Tensor, String> {
    let values = super::json_data::parse::<T>(json, shape, count).map_err(|e| {
        format!(
            "input `{name}`: {}",
            e.replace("is not valid", &format!("is not a valid {dt}"))
        )
    })?;
    let array = ArrayD::from_shape_vec(IxDyn(shape), values).map_err(|e| e.to_string())?;
    Ok(array.into())
}

/// The tract element type of an OIP datatype.
fn datum(dt: DataType) -> DatumType {
    use DataType::*;
    match dt {
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
        Bytes => DatumType::String,
    }
}

/// A tensor from raw element bytes, checked: the byte count fits the shape, BOOL bytes are 0 or
/// 1, BYTES elements are length-prefixed UTF-8.
pub fn raw_to_tract(
    name: &str,
    dt: DataType,
    shape: &[usize],
    bytes: &[u8],
) -> Result<Tensor, String> {
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("input `{name}`: shape {shape:?} is too large"))?;
    if dt == DataType::Bytes {
        let mut items = Vec::with_capacity(count.min(bytes.len() / 4));
        let mut rest = bytes;
        while rest.len() >= 4 {
            let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
            let item = rest
                .get(4..4 + len)
                .ok_or_else(|| format!("input `{name}`: truncated BYTES element"))?;
            items.push(
                String::from_utf8(item.to_vec())
                    .map_err(|_| format!("input `{name}`: BYTES element is not UTF-8"))?,
            );
            rest = &rest[4 + len..];
        }
        if !rest.is_empty() || items.len() != count {
            return Err(format!(
                "input `{name}`: shape {shape:?} needs {count} BYTES elements, the binary data has {}",
                items.len()
            ));
        }
        let array = ArrayD::from_shape_vec(IxDyn(shape), items).map_err(|e| e.to_string())?;
        return Ok(array.into());
    }
    let d = datum(dt);
    let want = count
        .checked_mul(d.size_of())
        .ok_or_else(|| format!("input `{name}`: shape {shape:?} is too large"))?;
    if bytes.len() != want {
        return Err(format!(
            "input `{name}`: shape {shape:?} of {dt} needs {want} bytes, got {}",
            bytes.len()
        ));
    }
    if d == DatumType::Bool && bytes.iter().any(|b| *b > 1) {
        return Err(format!("input `{name}`: BOOL bytes must be 0 or 1"));
    }
    // SAFETY: the length matches the shape and every bit pattern is a valid value of the type
    // (BOOL checked above).
    unsafe { Tensor::from_raw_dt(d, shape, bytes) }.map_err(|e| format!("input `{name}`: {e:#}"))
}

/// A tensor's raw element bytes (BYTES: 4-byte little-endian length + bytes per element).
pub fn tract_to_raw(t: &Tensor) -> Result<Vec<u8>, String> {
    if t.datum_type() == DatumType::String {
        let view = t
            .to_plain_array_view::<String>()
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for s in view.iter() {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        return Ok(out);
    }
    Ok(t.as_bytes().to_vec())
}

impl InferTensor {
    /// The datatype, or an error naming the unknown one.
    pub fn datatype(&self) -> Result<DataType, String> {
        serde_json::from_value(Value::String(self.datatype.clone())).map_err(|_| {
            format!(
                "input `{}`: unknown datatype {:?}",
                self.name, self.datatype
            )
        })
    }

    /// The tensor as tract sees it.
    pub fn to_tract(&self) -> Result<Tensor, String> {
        let name = self.name.as_str();
        let shape = self
            .shape
            .iter()
            .map(|&d| {
                usize::try_from(d)
                    .map_err(|_| format!("input `{name}`: negative dimension {d} in shape"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let dt = self.datatype()?;
        if let Some(raw) = &self.raw {
            return raw_to_tract(name, dt, &shape, raw);
        }
        if let Some(json) = &self.json {
            let count = shape
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| format!("input `{name}`: shape {shape:?} is too large"))?;
            let j = json.get();
            use DataType::*;
            return match dt {
                Bool => typed::<bool>(name, j, &shape, count, dt),
                Uint8 => typed::<u8>(name, j, &shape, count, dt),
                Uint16 => typed::<u16>(name, j, &shape, count, dt),
                Uint32 => typed::<u32>(name, j, &shape, count, dt),
                Uint64 => typed::<u64>(name, j, &shape, count, dt),
                Int8 => typed::<i8>(name, j, &shape, count, dt),
                Int16 => typed::<i16>(name, j, &shape, count, dt),
                Int32 => typed::<i32>(name, j, &shape, count, dt),
                Int64 => typed::<i64>(name, j, &shape, count, dt),
                Fp32 => typed::<f32>(name, j, &shape, count, dt),
                Fp64 => typed::<f64>(name, j, &shape, count, dt),
                Bytes => typed::<String>(name, j, &shape, count, dt),
            };
        }
        Err(format!("input `{name}` has no `data`"))
    }

    /// An output tensor as binary data: no `data`, the bytes in `raw` and their count in
    /// `parameters.binary_data_size`.
    pub fn from_tract_raw(name: &str, t: &Tensor) -> Result<InferTensor, String> {
        let dt = DataType::from_datum(t.datum_type()).ok_or_else(|| {
            format!(
                "output `{name}` has type {:?}, which OIP cannot carry",
                t.datum_type()
            )
        })?;
        let raw = tract_to_raw(t)?;
        let mut parameters = serde_json::Map::new();
        parameters.insert("binary_data_size".into(), raw.len().into());
        Ok(InferTensor {
            name: name.to_string(),
            shape: t.shape().iter().map(|&d| d as i64).collect(),
            datatype: dt.as_str().to_string(),
            parameters: Some(parameters),
            data: Data::None,
            raw: Some(raw.into()),
            json: None,
        })
    }

    /// An output tensor from tract's result; its elements are written straight from the tensor
    /// when the response is serialised.
    pub fn from_tract(name: &str, t: &Tensor) -> Result<InferTensor, String> {
        let dt = DataType::from_datum(t.datum_type()).ok_or_else(|| {
            format!(
                "output `{name}` has type {:?}, which OIP cannot carry",
                t.datum_type()
            )
        })?;
        Ok(InferTensor {
            name: name.to_string(),
            shape: t.shape().iter().map(|&d| d as i64).collect(),
            datatype: dt.as_str().to_string(),
            parameters: None,
            data: Data::Tensor(Arc::new(t.clone())),
            raw: None,
            json: None,
        })
    }
}

/// A tensor's `data`: absent, JSON (a response read back), or an output tensor serialised
/// element by element without building a `serde_json::Value` per element.
#[derive(Debug, Clone, Default)]
pub enum Data {
    #[default]
    None,
    Json(Value),
    Tensor(Arc<Tensor>),
}

impl Data {
    pub fn is_none(&self) -> bool {
        matches!(self, Data::None)
    }
}

impl Serialize for Data {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fn seq<T: Datum + Serialize, S: serde::Serializer>(
            t: &Tensor,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            let view = t
                .to_plain_array_view::<T>()
                .map_err(serde::ser::Error::custom)?;
            s.collect_seq(view.iter())
        }
        match self {
            Data::None => s.serialize_none(),
            Data::Json(v) => v.serialize(s),
            Data::Tensor(t) => match t.datum_type() {
                DatumType::Bool => seq::<bool, S>(t, s),
                DatumType::U8 => seq::<u8, S>(t, s),
                DatumType::U16 => seq::<u16, S>(t, s),
                DatumType::U32 => seq::<u32, S>(t, s),
                DatumType::U64 => seq::<u64, S>(t, s),
                DatumType::I8 => seq::<i8, S>(t, s),
                DatumType::I16 => seq::<i16, S>(t, s),
                DatumType::I32 => seq::<i32, S>(t, s),
                DatumType::I64 => seq::<i64, S>(t, s),
                DatumType::F32 => seq::<f32, S>(t, s),
                DatumType::F64 => seq::<f64, S>(t, s),
                DatumType::String => seq::<String, S>(t, s),
                other => Err(serde::ser::Error::custom(format!(
                    "{other:?} cannot be carried"
                ))),
            },
        }
    }
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Null => Data::None,
            v => Data::Json(v),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A request tensor as the wire delivers it (`data` kept as JSON text).
    fn tensor(shape: Vec<i64>, datatype: &str, data: Value) -> InferTensor {
        let json = json!([{"name": "x", "shape": shape, "datatype": datatype, "data": data}]);
        let text = json.to_string();
        let mut de = serde_json::Deserializer::from_str(&text);
        deserialize_inputs(&mut de).unwrap().remove(0)
    }

    #[test]
    fn flat_and_nested_data_give_the_same_tensor() {
        let flat = tensor(vec![2, 2], "FP32", json!([1, 2.5, 3, 4]))
            .to_tract()
            .unwrap();
        let nested = tensor(vec![2, 2], "FP32", json!([[1, 2.5], [3, 4]]))
            .to_tract()
            .unwrap();
        assert_eq!(flat, nested);
        assert_eq!(flat.shape(), &[2, 2]);
        let back = InferTensor::from_tract("y", &flat).unwrap();
        assert_eq!(
            serde_json::to_value(&back.data).unwrap(),
            json!([1.0, 2.5, 3.0, 4.0])
        );
        assert_eq!((back.shape, back.datatype.as_str()), (vec![2, 2], "FP32"));
    }

    #[test]
    fn every_datatype_round_trips() {
        let cases = [
            ("BOOL", json!([true, false])),
            ("UINT8", json!([0, 255])),
            ("UINT16", json!([0, 65535])),
            ("UINT32", json!([0, 4294967295u64])),
            ("UINT64", json!([0, u64::MAX])),
            ("INT8", json!([-128, 127])),
            ("INT16", json!([-32768, 32767])),
            ("INT32", json!([i32::MIN, i32::MAX])),
            ("INT64", json!([i64::MIN, i64::MAX])),
            ("FP32", json!([-1.5, 0.25])),
            ("FP64", json!([-1.5, 1e300])),
            ("BYTES", json!(["a", "été"])),
        ];
        for (dt, data) in cases {
            let t = tensor(vec![2], dt, data.clone()).to_tract().unwrap();
            let back = InferTensor::from_tract("x", &t).unwrap();
            let out = serde_json::to_value(&back.data).unwrap();
            assert_eq!((back.datatype.as_str(), &out), (dt, &data), "{dt}");
        }
    }

    #[test]
    fn raw_bytes_round_trip_every_datatype() {
        let cases = [
            ("BOOL", json!([true, false])),
            ("UINT16", json!([0, 65535])),
            ("INT64", json!([i64::MIN, 7])),
            ("FP32", json!([-1.5, 0.25])),
            ("FP64", json!([-1.5, 1e300])),
            ("BYTES", json!(["a", "été"])),
        ];
        for (dt, data) in cases {
            let t = tensor(vec![2], dt, data).to_tract().unwrap();
            let raw = tract_to_raw(&t).unwrap();
            let mut binary = tensor(vec![2], dt, Value::Null);
            binary.raw = Some(raw.into());
            assert_eq!(binary.to_tract().unwrap(), t, "{dt}");
        }
        let bad = |dt: &str, bytes: &[u8]| {
            let mut t = tensor(vec![2], dt, Value::Null);
            t.raw = Some(bytes.to_vec().into());
            t.to_tract().unwrap_err()
        };
        assert!(bad("FP32", &[0; 7]).contains("needs 8 bytes"));
        assert!(bad("BOOL", &[0, 2]).contains("0 or 1"));
        assert!(bad("BYTES", &[9, 0, 0, 0, b'a']).contains("truncated"));
        assert!(bad("BYTES", &[1, 0, 0, 0, b'a']).contains("needs 2 BYTES elements"));
    }

    #[test]
    fn bad_tensors_are_named_errors() {
        let err = |t: InferTensor| t.to_tract().unwrap_err();
        assert!(
            err(tensor(vec![2], "INT8", json!([1, 300])))
                .contains("element 1 (300) is not a valid INT8")
        );
        assert!(err(tensor(vec![2], "UINT8", json!([-1, 0]))).contains("not a valid UINT8"));
        assert!(err(tensor(vec![2, 2], "FP32", json!([1, 2, 3]))).contains("needs 4 values"));
        assert!(err(tensor(vec![1], "FP16X", json!([1]))).contains("unknown datatype \"FP16X\""));
        assert!(err(tensor(vec![-1], "FP32", json!([1]))).contains("negative dimension"));
        assert!(err(tensor(vec![1], "FP32", json!(1))).contains("must be an array"));
        assert!(err(tensor(vec![1], "BOOL", json!([1]))).contains("not a valid BOOL"));
        assert!(err(tensor(vec![1], "FP32", json!(["a"]))).contains("not a valid FP32"));
        assert!(err(tensor(vec![1], "FP32", json!([1e39]))).contains("not a valid FP32"));
        assert!(
            err(tensor(vec![2, 2], "FP32", json!([[1, 2, 3], [4]])))
                .contains("does not follow the shape")
        );
        assert!(
            err(tensor(vec![2, 2], "FP32", json!([[1, 2], 3, 4])))
                .contains("does not follow the shape")
        );
        assert!(
            err(tensor(vec![4], "FP32", json!([[1, 2], [3, 4]])))
                .contains("does not follow the shape")
        );
        let huge = i64::MAX / 2;
        assert!(err(tensor(vec![huge, huge], "FP32", json!([1]))).contains("too large"));
    }
}
