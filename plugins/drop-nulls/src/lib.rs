//! `drop-nulls` — an aimass cleaner that drops rows containing nulls.
//!
//! # Config
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `columns` | all columns | comma-separated column names to look at; an unknown column is an invalid-config error |
//! | `how` | `any` | `any`: drop a row when *any* of those columns is null; `all`: drop it only when *all* of them are |
//!
//! Nulls are Arrow's *logical* nulls of the top-level column (`Array::logical_nulls`), so every
//! value of a `Null`-typed column is null, and a dictionary or run-end-encoded value is null when
//! the value it points to is. A null *inside* a list or struct does not make the row null; a NaN
//! is a value, not a null. The schema and row order are kept; batches left empty are dropped.

use aimass_plugin_sdk::{Cleaner, Config, Error, Result, Table, export_cleaner, log};
use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_buffer::BooleanBuffer;
use arrow_schema::Schema;
use arrow_select::filter::filter_record_batch;

/// The plugin type bound to the `cleaner` world.
pub struct DropNulls;

impl Cleaner for DropNulls {
    fn clean(input: Table, config: &Config) -> Result<Table> {
        drop_nulls(input, config)
    }
}

export_cleaner!(DropNulls);

/// Config keys this plugin accepts.
pub const CONFIG_KEYS: &[&str] = &["columns", "how"];

/// When a row is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// Any of the selected columns is null.
    Any,
    /// All of the selected columns are null.
    All,
}

/// Drop the rows of `input` with nulls (see the module docs).
pub fn drop_nulls(input: Table, config: &Config) -> Result<Table> {
    config.check_keys(CONFIG_KEYS)?;
    let how = match config.choice("how", &["any", "all"], "any")? {
        "all" => How::All,
        _ => How::Any,
    };
    let columns = selected_columns(input.schema(), config)?;
    let total_rows = input.num_rows();
    let (schema, batches) = input.into_parts();
    let mut output = Vec::with_capacity(batches.len());
    for batch in batches {
        let kept = filter_batch(&batch, &columns, how)?;
        if kept.num_rows() > 0 {
            output.push(kept);
        }
    }
    let kept_rows: usize = output.iter().map(RecordBatch::num_rows).sum();
    log::debug(format!("drop-nulls: kept {kept_rows} of {total_rows} rows"));
    Ok(Table::new(schema, output))
}

fn selected_columns(schema: &Schema, config: &Config) -> Result<Vec<usize>> {
    let Some(names) = config.list("columns") else {
        return Ok((0..schema.fields().len()).collect());
    };
    if names.is_empty() {
        return Err(Error::invalid_config(
            "`columns` is set but names no column",
        ));
    }
    names
        .iter()
        .map(|name| {
            schema.index_of(name).map_err(|_| {
                let known: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                Error::invalid_config(format!(
                    "unknown column `{name}` in `columns` (columns: {})",
                    known.join(", ")
                ))
            })
        })
        .collect()
}

/// Keep the rows of `batch` that pass the null test on `columns`.
pub fn filter_batch(batch: &RecordBatch, columns: &[usize], how: How) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    // Rows to keep so far; `None` until a selected column has nulls.
    let mut keep: Option<BooleanBuffer> = None;
    for &c in columns {
        let Some(nulls) = batch.column(c).logical_nulls() else {
            match how {
                // A column without nulls never removes a row under `any`...
                How::Any => continue,
                // ...and under `all` it keeps every row.
                How::All => return Ok(batch.clone()),
            }
        };
        let valid = nulls.into_inner();
        keep = Some(match (keep, how) {
            (None, _) => valid,
            (Some(k), How::Any) => &k & &valid,
            (Some(k), How::All) => &k | &valid,
        });
    }
    // No selected column had a null (or none was selected): keep everything.
    let Some(keep) = keep else {
        return Ok(batch.clone());
    };
    if keep.count_set_bits() == rows {
        return Ok(batch.clone());
    }
    Ok(filter_record_batch(batch, &BooleanArray::new(keep, None))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int32Type;
    use arrow_array::{Float64Array, Int32Array, NullArray, StringArray};
    use arrow_schema::{DataType, Field, SchemaRef};
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("a", DataType::Float64, true),
            Field::new("b", DataType::Utf8, true),
        ]))
    }

    /// id 1..=5; a: null at 2, 4; b: null at 3, 4.
    fn table() -> Table {
        let b1 = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int32Array::from(vec![1, 2, 3])),
                Arc::new(Float64Array::from(vec![Some(1.0), None, Some(f64::NAN)])),
                Arc::new(StringArray::from(vec![Some("x"), Some("y"), None])),
            ],
        )
        .unwrap();
        let b2 = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int32Array::from(vec![4, 5])),
                Arc::new(Float64Array::from(vec![None, Some(5.0)])),
                Arc::new(StringArray::from(vec![None, Some("z")])),
            ],
        )
        .unwrap();
        Table::new(schema(), vec![b1, b2])
    }

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        Config::from_pairs(pairs.iter().copied())
    }

    fn ids(t: &Table) -> Vec<i32> {
        t.concat()
            .unwrap()
            .column(0)
            .as_primitive::<Int32Type>()
            .values()
            .to_vec()
    }

    #[test]
    fn any_over_all_columns() {
        let out = drop_nulls(table(), &Config::default()).unwrap();
        assert_eq!(ids(&out), vec![1, 5]);
        assert_eq!(out.schema(), &schema());
    }

    #[test]
    fn all_over_selected_columns() {
        let out = drop_nulls(table(), &cfg(&[("how", "all"), ("columns", "a,b")])).unwrap();
        assert_eq!(ids(&out), vec![1, 2, 3, 5]);
    }

    #[test]
    fn any_over_one_column_keeps_nan() {
        let out = drop_nulls(table(), &cfg(&[("columns", "a")])).unwrap();
        assert_eq!(ids(&out), vec![1, 3, 5]);
    }

    #[test]
    fn all_with_a_non_null_column_keeps_everything() {
        let out = drop_nulls(table(), &cfg(&[("how", "all")])).unwrap();
        assert_eq!(ids(&out), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn null_typed_column_drops_every_row_under_any() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("n", DataType::Null, true),
        ]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int32Array::from(vec![1, 2])),
                Arc::new(NullArray::new(2)),
            ],
        )
        .unwrap();
        let out = drop_nulls(Table::from_batch(b.clone()), &Config::default()).unwrap();
        assert_eq!(out.num_rows(), 0);
        assert_eq!(out.schema(), &schema);
        let out = drop_nulls(Table::from_batch(b), &cfg(&[("columns", "id")])).unwrap();
        assert_eq!(out.num_rows(), 2);
    }

    #[test]
    fn bad_config() {
        for pairs in [
            vec![("how", "some")],
            vec![("columns", "a,zz")],
            vec![("columns", "")],
            vec![("colums", "a")],
        ] {
            let err = drop_nulls(table(), &cfg(&pairs)).unwrap_err();
            assert!(matches!(err, Error::InvalidConfig(_)), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn through_ipc_like_the_host() {
        let bytes = table().to_ipc().unwrap();
        let out = aimass_plugin_sdk::__private::clean::<DropNulls>(
            bytes,
            vec![("how".into(), "any".into())],
        )
        .unwrap();
        assert_eq!(ids(&Table::from_ipc(out).unwrap()), vec![1, 5]);
    }
}
