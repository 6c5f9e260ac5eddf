//! `standard-scaler` — an aimass transform that standardises numeric columns.
//!
//! `fit` learns each column's mean and population standard deviation; `apply` replaces each
//! fitted column by `Float64` values `(x − mean) / std`, so the same scaling learned on training
//! data runs again at serving time.
//!
//! # Fit
//!
//! Config:
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `columns` | all numeric columns | comma-separated column names; an unknown or non-numeric column is an invalid-config error |
//!
//! Numeric columns are the Arrow integer, unsigned, floating-point and decimal types. Over a
//! column's non-null **finite** values `x_1..x_n`: `mean = Σx_i / n` and
//! `std = sqrt(Σ(x_i − mean)² / n)` (population standard deviation). A column without any such
//! value gets `mean = 0, std = 0`.
//!
//! The state is JSON: `{"columns":[{"name":"age","mean":41.5,"std":12.25}, ...]}`, in schema order.
//!
//! # Apply
//!
//! Each column named in the state is converted to `f64` (`aimass_plugin_sdk::numeric::to_f64`) and replaced, in place and with the same
//! name, nullability and metadata, by `(x − mean) / std`; when `std = 0` every non-null value
//! becomes `0.0`. Nulls stay null (NaN stays NaN when `std > 0`). Other columns are untouched.
//! A state column missing from the input, or not numeric there, is an invalid-input error, as is
//! a state that is not the JSON above (or has a negative or non-finite `std` or a non-finite
//! `mean`).
//!
//! Config: `columns` (optional) restricts `apply` to some of the fitted columns; naming a column
//! that is not in the state is an invalid-config error. This lets one step config serve both
//! calls.

use std::sync::Arc;

use aimass_plugin_sdk::numeric::{is_numeric, mean_std, numeric_columns, to_f64};
use aimass_plugin_sdk::{Config, Error, Result, Table, Transform, export_transform, log};
use arrow_array::types::Float64Type;
use arrow_array::{ArrayRef, Float64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

/// The plugin type bound to the `transform` world.
pub struct StandardScaler;

impl Transform for StandardScaler {
    fn fit(data: Table, config: &Config) -> Result<Vec<u8>> {
        fit(&data, config)?.to_bytes()
    }

    fn apply(input: Table, state: &[u8], config: &Config) -> Result<Table> {
        let state = State::from_bytes(state)?;
        apply(input, &state, config)
    }
}

export_transform!(StandardScaler);

/// Config keys this plugin accepts (for both `fit` and `apply`).
pub const CONFIG_KEYS: &[&str] = &["columns"];

/// The fitted state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub columns: Vec<ColumnStats>,
}

/// One fitted column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnStats {
    pub name: String,
    pub mean: f64,
    pub std: f64,
}

impl State {
    /// Serialise as the JSON state.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| Error::internal(format!("cannot write state: {e}")))
    }

    /// Read and validate the JSON state.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let state: State = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid_input(format!("invalid standard-scaler state: {e}")))?;
        for c in &state.columns {
            if !c.mean.is_finite() || !c.std.is_finite() || c.std < 0.0 {
                return Err(Error::invalid_input(format!(
                    "invalid standard-scaler state: column `{}` has mean {} and std {}",
                    c.name, c.mean, c.std
                )));
            }
        }
        Ok(state)
    }
}

/// Learn mean and population std of the selected numeric columns of `data`.
pub fn fit(data: &Table, config: &Config) -> Result<State> {
    config.check_keys(CONFIG_KEYS)?;
    let schema = data.schema();
    let columns = numeric_columns(schema, config, "columns")?;
    let mut stats = Vec::with_capacity(columns.len());
    for &c in &columns {
        let arrays = data
            .batches()
            .iter()
            .map(|b| to_f64(b.column(c).as_ref()))
            .collect::<Result<Vec<_>>>()?;
        let values: Vec<f64> = arrays
            .iter()
            .flat_map(|a| a.iter().flatten())
            .filter(|x| x.is_finite())
            .collect();
        let (mean, std) = mean_std(&values).unwrap_or((0.0, 0.0));
        stats.push(ColumnStats {
            name: schema.field(c).name().clone(),
            mean,
            std,
        });
    }
    log::debug(format!(
        "standard-scaler: fitted {} columns over {} rows",
        stats.len(),
        data.num_rows()
    ));
    Ok(State { columns: stats })
}

/// Replace the fitted columns of `input` by their standardised `Float64` values.
pub fn apply(input: Table, state: &State, config: &Config) -> Result<Table> {
    config.check_keys(CONFIG_KEYS)?;
    let only = config.list("columns");
    if let Some(names) = &only
        && let Some(bad) = names
            .iter()
            .find(|n| !state.columns.iter().any(|c| &c.name == *n))
    {
        return Err(Error::invalid_config(format!(
            "column `{bad}` in `columns` was not fitted"
        )));
    }
    let schema = input.schema().clone();
    // (column index, stats) for every column to scale.
    let mut targets = Vec::new();
    for stats in &state.columns {
        if only
            .as_ref()
            .is_some_and(|names| !names.contains(&stats.name))
        {
            continue;
        }
        let i = schema.index_of(&stats.name).map_err(|_| {
            Error::invalid_input(format!(
                "input has no column `{}` (fitted by the state)",
                stats.name
            ))
        })?;
        let ty = schema.field(i).data_type();
        if !is_numeric(ty) {
            return Err(Error::invalid_input(format!(
                "column `{}` is not numeric (it is {ty})",
                stats.name
            )));
        }
        targets.push((i, stats));
    }

    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for &(i, _) in &targets {
        fields[i] = fields[i].clone().with_data_type(DataType::Float64);
    }
    let out_schema: SchemaRef =
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));

    let (_, batches) = input.into_parts();
    let batches = batches
        .into_iter()
        .map(|batch| {
            let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
            for &(i, stats) in &targets {
                columns[i] = Arc::new(scale(&to_f64(columns[i].as_ref())?, stats.mean, stats.std));
            }
            Ok(RecordBatch::try_new(out_schema.clone(), columns)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Table::new(out_schema, batches))
}

/// `(x − mean) / std`, or `0.0` for every non-null value when `std` is 0.
pub fn scale(values: &Float64Array, mean: f64, std: f64) -> Float64Array {
    if std == 0.0 {
        values.unary::<_, Float64Type>(|_| 0.0)
    } else {
        values.unary::<_, Float64Type>(|x| (x - mean) / std)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::{Int32Array, StringArray};
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        Config::from_pairs(pairs.iter().copied())
    }

    fn schema() -> SchemaRef {
        let mut meta = HashMap::new();
        meta.insert("unit".to_string(), "years".to_string());
        Arc::new(Schema::new(vec![
            Field::new("age", DataType::Int32, true).with_metadata(meta),
            Field::new("w", DataType::Float64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("k", DataType::Int32, false),
        ]))
    }

    /// age: 2, 4, 4, 4 | 5, 5, 7, 9, null → mean 5, std 2.
    /// w: 1, 1, 1, 1 | 1, 1, 1, 1, 1 → std 0.   k: 0..9 → mean 4, std sqrt(60/9).
    fn table() -> Table {
        let b1 = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int32Array::from(vec![2, 4, 4, 4])),
                Arc::new(Float64Array::from(vec![1.0; 4])),
                Arc::new(StringArray::from(vec!["a", "b", "c", "d"])),
                Arc::new(Int32Array::from(vec![0, 1, 2, 3])),
            ],
        )
        .unwrap();
        let b2 = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int32Array::from(vec![
                    Some(5),
                    Some(5),
                    Some(7),
                    Some(9),
                    None,
                ])),
                Arc::new(Float64Array::from(vec![1.0; 5])),
                Arc::new(StringArray::from(vec!["e", "f", "g", "h", "i"])),
                Arc::new(Int32Array::from(vec![4, 5, 6, 7, 8])),
            ],
        )
        .unwrap();
        Table::new(schema(), vec![b1, b2])
    }

    fn column(t: &Table, name: &str) -> Vec<Option<f64>> {
        let b = t.concat().unwrap();
        b.column_by_name(name)
            .unwrap()
            .as_primitive::<Float64Type>()
            .iter()
            .collect()
    }

    #[test]
    fn fit_state_json() {
        let state = fit(&table(), &Config::default()).unwrap();
        assert_eq!(state.columns.len(), 3);
        assert_eq!(
            state.columns[0],
            ColumnStats {
                name: "age".into(),
                mean: 5.0,
                std: 2.0
            }
        );
        assert_eq!(
            state.columns[1],
            ColumnStats {
                name: "w".into(),
                mean: 1.0,
                std: 0.0
            }
        );
        assert_eq!(state.columns[2].name, "k");
        assert_eq!(state.columns[2].mean, 4.0);
        assert!((state.columns[2].std - (60.0f64 / 9.0).sqrt()).abs() < 1e-12);
        let json: serde_json::Value = serde_json::from_slice(&state.to_bytes().unwrap()).unwrap();
        assert_eq!(
            json["columns"][0],
            serde_json::json!({"name": "age", "mean": 5.0, "std": 2.0})
        );
    }

    #[test]
    fn fit_then_apply_standardises() {
        let state = fit(&table(), &cfg(&[("columns", "age,w")])).unwrap();
        assert_eq!(state.columns.len(), 2);
        let out = apply(table(), &state, &Config::default()).unwrap();
        assert_eq!(
            column(&out, "age"),
            vec![
                Some(-1.5),
                Some(-0.5),
                Some(-0.5),
                Some(-0.5),
                Some(0.0),
                Some(0.0),
                Some(1.0),
                Some(2.0),
                None
            ]
        );
        assert_eq!(column(&out, "w"), vec![Some(0.0); 9]);
        let s = out.schema();
        assert_eq!(s.field(0).data_type(), &DataType::Float64);
        assert!(s.field(0).is_nullable());
        assert_eq!(
            s.field(0).metadata().get("unit").map(String::as_str),
            Some("years")
        );
        assert!(!s.field(1).is_nullable());
        // Untouched columns keep their type and values.
        assert_eq!(s.field(2).data_type(), &DataType::Utf8);
        assert_eq!(s.field(3).data_type(), &DataType::Int32);
        assert_eq!(out.batches().len(), 2);
    }

    #[test]
    fn apply_columns_restricts_to_fitted_subset() {
        let state = fit(&table(), &Config::default()).unwrap();
        let out = apply(table(), &state, &cfg(&[("columns", "w")])).unwrap();
        assert_eq!(out.schema().field(0).data_type(), &DataType::Int32);
        assert_eq!(out.schema().field(1).data_type(), &DataType::Float64);
        let err = apply(table(), &state, &cfg(&[("columns", "name")])).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
    }

    #[test]
    fn apply_missing_or_non_numeric_column_is_invalid_input() {
        let state = State {
            columns: vec![ColumnStats {
                name: "height".into(),
                mean: 1.0,
                std: 1.0,
            }],
        };
        let err = apply(table(), &state, &Config::default()).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput(m) if m.contains("`height`")),
            "{err}"
        );
        let state = State {
            columns: vec![ColumnStats {
                name: "name".into(),
                mean: 1.0,
                std: 1.0,
            }],
        };
        assert!(matches!(
            apply(table(), &state, &Config::default()),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn bad_state_is_invalid_input() {
        for bytes in [
            &b"not json"[..],
            br#"{"cols": []}"#,
            br#"{"columns": [{"name": "a", "mean": 1}]}"#,
            br#"{"columns": [{"name": "a", "mean": 1, "std": -2}]}"#,
        ] {
            let err = StandardScaler::apply(table(), bytes, &Config::default()).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        }
    }

    #[test]
    fn fit_bad_config() {
        for pairs in [
            vec![("columns", "name")],
            vec![("columns", "zz")],
            vec![("cols", "age")],
        ] {
            let err = fit(&table(), &cfg(&pairs)).unwrap_err();
            assert!(matches!(err, Error::InvalidConfig(_)), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn fit_empty_table_gives_zero_stats() {
        let state = fit(&Table::empty(schema()), &Config::default()).unwrap();
        assert!(state.columns.iter().all(|c| c.mean == 0.0 && c.std == 0.0));
        let out = apply(Table::empty(schema()), &state, &Config::default()).unwrap();
        assert_eq!(out.schema().field(0).data_type(), &DataType::Float64);
    }

    #[test]
    fn through_ipc_like_the_host() {
        let p = aimass_plugin_sdk::__private::fit::<StandardScaler>;
        let state = p(table().to_ipc().unwrap(), vec![]).unwrap();
        let out = aimass_plugin_sdk::__private::apply::<StandardScaler>(
            table().to_ipc().unwrap(),
            state,
            vec![],
        )
        .unwrap();
        let out = Table::from_ipc(out).unwrap();
        assert_eq!(column(&out, "age")[0], Some(-1.5));
    }
}
