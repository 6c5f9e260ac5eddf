//! Numeric columns as `f64`, for statistics (z-scores, scaling, quantiles).
//!
//! `arrow_cast::cast(array, &DataType::Float64)` does the same, but `cast` dispatches over every
//! pair of Arrow types, so linking it adds about 5 MB of code to a Wasm component that only ever
//! converts numbers. This module covers just the numeric types, with the same results as that
//! cast: integers and floats by `as f64`, decimals as `unscaled / 10^scale`.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Decimal32Type, Decimal64Type, Decimal128Type, Decimal256Type, Float16Type, Float32Type,
    Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};
use arrow_array::{Array, Float64Array};
use arrow_schema::{DataType, Schema};

use crate::config::Config;
use num_traits::ToPrimitive;

use crate::error::{Error, Result};

/// Whether [`to_f64`] accepts columns of `data_type`: the integer, unsigned, floating-point and
/// decimal types (`DataType::is_numeric`).
pub fn is_numeric(data_type: &DataType) -> bool {
    data_type.is_numeric()
}

/// The values of a numeric column as `Float64` (same length, same nulls).
///
/// A non-numeric column is an [`Error::InvalidInput`].
pub fn to_f64(array: &dyn Array) -> Result<Float64Array> {
    fn scale(s: i8) -> f64 {
        10f64.powi(i32::from(s))
    }
    Ok(match array.data_type() {
        DataType::Float64 => array.as_primitive::<Float64Type>().clone(),
        DataType::Float32 => array.as_primitive::<Float32Type>().unary(f64::from),
        DataType::Float16 => array.as_primitive::<Float16Type>().unary(|v| v.to_f64()),
        DataType::Int8 => array.as_primitive::<Int8Type>().unary(f64::from),
        DataType::Int16 => array.as_primitive::<Int16Type>().unary(f64::from),
        DataType::Int32 => array.as_primitive::<Int32Type>().unary(f64::from),
        DataType::Int64 => array.as_primitive::<Int64Type>().unary(|v| v as f64),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().unary(f64::from),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().unary(f64::from),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().unary(f64::from),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().unary(|v| v as f64),
        DataType::Decimal32(_, s) => {
            let d = scale(*s);
            array
                .as_primitive::<Decimal32Type>()
                .unary(|v| f64::from(v) / d)
        }
        DataType::Decimal64(_, s) => {
            let d = scale(*s);
            array
                .as_primitive::<Decimal64Type>()
                .unary(|v| v as f64 / d)
        }
        DataType::Decimal128(_, s) => {
            let d = scale(*s);
            array
                .as_primitive::<Decimal128Type>()
                .unary(|v| v as f64 / d)
        }
        DataType::Decimal256(_, s) => {
            let d = scale(*s);
            array
                .as_primitive::<Decimal256Type>()
                .unary(|v| v.to_f64().unwrap_or(f64::NAN) / d)
        }
        other => {
            return Err(Error::invalid_input(format!(
                "expected a numeric column, found {other}"
            )));
        }
    })
}

/// Indices of the numeric columns a plugin works on: the ones the config key `key` names
/// (comma-separated; each must exist and be numeric, else invalid-config), or every numeric column
/// when the key is unset.
pub fn numeric_columns(schema: &Schema, config: &Config, key: &str) -> Result<Vec<usize>> {
    let Some(names) = config.list(key) else {
        return Ok(schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| is_numeric(f.data_type()))
            .map(|(i, _)| i)
            .collect());
    };
    if names.is_empty() {
        return Err(Error::invalid_config(format!(
            "`{key}` is set but names no column"
        )));
    }
    names
        .iter()
        .map(|name| {
            let i = schema.index_of(name).map_err(|_| {
                Error::invalid_config(format!("unknown column `{name}` in `{key}`"))
            })?;
            let ty = schema.field(i).data_type();
            if !is_numeric(ty) {
                return Err(Error::invalid_config(format!(
                    "column `{name}` in `{key}` is not numeric (it is {ty})"
                )));
            }
            Ok(i)
        })
        .collect()
}

/// Mean and population standard deviation (two passes), `None` for no values.
pub fn mean_std(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    Some((mean, var.sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{
        Decimal128Array, Decimal256Array, Float32Array, Int64Array, StringArray, UInt8Array,
    };
    use arrow_buffer::i256;

    fn values(a: &Float64Array) -> Vec<Option<f64>> {
        a.iter().collect()
    }

    #[test]
    fn integers_floats_keep_nulls() {
        let a = Int64Array::from(vec![Some(-3), None, Some(1 << 40)]);
        assert_eq!(
            values(&to_f64(&a).unwrap()),
            vec![Some(-3.0), None, Some(1099511627776.0)]
        );
        let a = UInt8Array::from(vec![255, 0]);
        assert_eq!(values(&to_f64(&a).unwrap()), vec![Some(255.0), Some(0.0)]);
        let a = Float32Array::from(vec![Some(0.5), None]);
        assert_eq!(values(&to_f64(&a).unwrap()), vec![Some(0.5), None]);
    }

    #[test]
    fn decimals_are_scaled() {
        let a = Decimal128Array::from(vec![Some(12345), None, Some(-5)])
            .with_precision_and_scale(10, 2)
            .unwrap();
        assert_eq!(
            values(&to_f64(&a).unwrap()),
            vec![Some(123.45), None, Some(-0.05)]
        );
        let a = Decimal256Array::from(vec![i256::from_i128(-250)])
            .with_precision_and_scale(40, 1)
            .unwrap();
        assert_eq!(values(&to_f64(&a).unwrap()), vec![Some(-25.0)]);
    }

    #[test]
    fn non_numeric_is_invalid_input() {
        assert!(!is_numeric(&DataType::Utf8));
        assert!(is_numeric(&DataType::Decimal128(5, 1)));
        let err = to_f64(&StringArray::from(vec!["1"])).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(m) if m.contains("Utf8")));
    }
}
