//! `dedup` — an aimass cleaner that drops duplicate rows, keeping the first occurrence.
//!
//! Rows are compared across *all* batches of the input stream (a row in batch 3 equal to one in
//! batch 1 is dropped), in stream order, so the first occurrence is the one kept and the output
//! keeps the input's row order and schema.
//!
//! # Config
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `keys` | all columns | comma-separated column names; rows are duplicates when these columns are equal. An unknown column is an invalid-config error. |
//!
//! # Equality
//!
//! Rows are encoded with arrow-row's `RowConverter` and compared as bytes, so equality is
//! Arrow's total order: two nulls in the same column are equal, NaN equals NaN (with the same bit
//! pattern) and `-0.0` differs from `0.0`. Every Arrow type the row format supports can be a key
//! (nested types included); an unsupported type is an invalid-input error.
//!
//! Memory: the encoded key of every distinct row is kept in a hash set while the stream is read.

use std::collections::HashSet;

use aimass_plugin_sdk::{Cleaner, Config, Error, Result, Table, export_cleaner, log, progress};
use arrow_array::{ArrayRef, BooleanArray, RecordBatch};
use arrow_row::{RowConverter, SortField};
use arrow_schema::Schema;
use arrow_select::filter::filter_record_batch;

/// The plugin type bound to the `cleaner` world.
pub struct Dedup;

impl Cleaner for Dedup {
    fn clean(input: Table, config: &Config) -> Result<Table> {
        dedup(input, config)
    }
}

export_cleaner!(Dedup);

/// Config keys this plugin accepts.
pub const CONFIG_KEYS: &[&str] = &["keys"];

/// Drop duplicate rows of `input` (see the module docs).
pub fn dedup(input: Table, config: &Config) -> Result<Table> {
    config.check_keys(CONFIG_KEYS)?;
    let keys = key_columns(input.schema(), config)?;
    let total_rows = input.num_rows();
    let (schema, batches) = input.into_parts();

    if keys.is_empty() {
        // A table without columns: all its rows are equal, so only the first one is kept.
        let first = batches.into_iter().find(|b| b.num_rows() > 0);
        return Ok(Table::new(
            schema,
            first.map(|b| b.slice(0, 1)).into_iter().collect(),
        ));
    }

    let fields = keys
        .iter()
        .map(|&i| SortField::new(schema.field(i).data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields)?;
    let mut seen: HashSet<Box<[u8]>> = HashSet::new();
    let mut output = Vec::with_capacity(batches.len());
    let n_batches = batches.len() as u64;
    for (i, batch) in batches.into_iter().enumerate() {
        let columns: Vec<ArrayRef> = keys.iter().map(|&k| batch.column(k).clone()).collect();
        let rows = converter.convert_columns(&columns)?;
        let keep: BooleanArray = rows
            .iter()
            .map(|row| {
                let bytes = row.as_ref();
                Some(!seen.contains(bytes) && seen.insert(bytes.into()))
            })
            .collect();
        let kept = filter(&batch, &keep)?;
        if kept.num_rows() > 0 {
            output.push(kept);
        }
        progress(i as u64 + 1, n_batches, "dedup");
    }

    let kept_rows: usize = output.iter().map(RecordBatch::num_rows).sum();
    log::debug(format!(
        "dedup: kept {kept_rows} of {total_rows} rows ({} duplicates dropped)",
        total_rows - kept_rows
    ));
    Ok(Table::new(schema, output))
}

/// Indices of the key columns: `keys` if set, otherwise every column.
fn key_columns(schema: &Schema, config: &Config) -> Result<Vec<usize>> {
    let Some(names) = config.list("keys") else {
        return Ok((0..schema.fields().len()).collect());
    };
    if names.is_empty() {
        return Err(Error::invalid_config("`keys` is set but names no column"));
    }
    names
        .iter()
        .map(|name| {
            schema.index_of(name).map_err(|_| {
                Error::invalid_config(format!(
                    "unknown column `{name}` in `keys` (columns: {})",
                    column_names(schema)
                ))
            })
        })
        .collect()
}

fn column_names(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn filter(batch: &RecordBatch, keep: &BooleanArray) -> Result<RecordBatch> {
    if keep.true_count() == batch.num_rows() {
        return Ok(batch.clone());
    }
    Ok(filter_record_batch(batch, keep)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Float64Array, Int64Array, StringArray};
    use arrow_schema::{DataType, Field, SchemaRef};
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
        ]))
    }

    fn batch(
        ids: Vec<Option<i64>>,
        names: Vec<Option<&str>>,
        scores: Vec<Option<f64>>,
    ) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
                Arc::new(Float64Array::from(scores)),
            ],
        )
        .unwrap()
    }

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        Config::from_pairs(pairs.iter().copied())
    }

    fn ids(table: &Table) -> Vec<Option<i64>> {
        let b = table.concat().unwrap();
        b.column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .iter()
            .collect()
    }

    fn names(table: &Table) -> Vec<Option<String>> {
        let b = table.concat().unwrap();
        b.column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .iter()
            .map(|s| s.map(str::to_owned))
            .collect()
    }

    #[test]
    fn drops_full_row_duplicates_across_batches() {
        let b1 = batch(
            vec![Some(1), Some(2), Some(1), Some(3)],
            vec![Some("a"), Some("b"), Some("a"), Some("c")],
            vec![Some(1.0), Some(2.0), Some(1.0), Some(3.0)],
        );
        let b2 = batch(
            vec![Some(2), Some(4), Some(3)],
            vec![Some("b"), Some("d"), Some("x")],
            vec![Some(2.0), Some(4.0), Some(3.0)],
        );
        let out = dedup(Table::new(schema(), vec![b1, b2]), &Config::default()).unwrap();
        assert_eq!(out.schema(), &schema());
        assert_eq!(ids(&out), vec![Some(1), Some(2), Some(3), Some(4), Some(3)]);
        assert_eq!(
            names(&out),
            ["a", "b", "c", "d", "x"]
                .map(|s| Some(s.to_string()))
                .to_vec()
        );
    }

    #[test]
    fn keys_restrict_comparison_and_keep_first() {
        let b = batch(
            vec![Some(1), Some(2), Some(3), Some(4)],
            vec![Some("a"), Some("b"), Some("a"), Some("b")],
            vec![Some(1.0), Some(2.0), Some(3.0), Some(4.0)],
        );
        let out = dedup(Table::from_batch(b), &cfg(&[("keys", "name")])).unwrap();
        assert_eq!(ids(&out), vec![Some(1), Some(2)]);
    }

    #[test]
    fn nulls_are_equal_to_each_other() {
        let b = batch(
            vec![None, None, Some(1)],
            vec![Some("a"), Some("a"), None],
            vec![None, None, None],
        );
        let out = dedup(Table::from_batch(b), &Config::default()).unwrap();
        assert_eq!(ids(&out), vec![None, Some(1)]);
    }

    #[test]
    fn multi_column_keys() {
        let b = batch(
            vec![Some(1), Some(1), Some(2), Some(1)],
            vec![Some("a"), Some("b"), Some("a"), Some("a")],
            vec![Some(0.0), Some(1.0), Some(2.0), Some(3.0)],
        );
        let out = dedup(Table::from_batch(b), &cfg(&[("keys", "id, name")])).unwrap();
        let scores = out.concat().unwrap();
        let scores = scores
            .column(2)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(scores.values(), &[0.0, 1.0, 2.0]);
    }

    #[test]
    fn unknown_key_column_is_invalid_config() {
        let b = batch(vec![Some(1)], vec![Some("a")], vec![Some(1.0)]);
        let err = dedup(Table::from_batch(b.clone()), &cfg(&[("keys", "id,nope")])).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidConfig(m) if m.contains("`nope`")),
            "{err}"
        );
        let err = dedup(Table::from_batch(b.clone()), &cfg(&[("keys", " , ")])).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)));
        let err = dedup(Table::from_batch(b), &cfg(&[("key", "id")])).unwrap_err();
        assert!(matches!(&err, Error::InvalidConfig(m) if m.contains("`key`")));
    }

    #[test]
    fn empty_input_keeps_schema() {
        let out = dedup(Table::empty(schema()), &Config::default()).unwrap();
        assert_eq!(out.schema(), &schema());
        assert_eq!(out.num_rows(), 0);
    }

    #[test]
    fn batches_emptied_by_dedup_are_dropped() {
        let b1 = batch(vec![Some(1)], vec![Some("a")], vec![Some(1.0)]);
        let out = dedup(
            Table::new(schema(), vec![b1.clone(), b1]),
            &Config::default(),
        )
        .unwrap();
        assert_eq!(out.batches().len(), 1);
        assert_eq!(out.batches()[0].column(0).len(), 1);
    }

    #[test]
    fn through_ipc_like_the_host() {
        // The exported entry point decodes IPC, cleans and encodes again.
        let b = batch(
            vec![Some(5), Some(5)],
            vec![Some("q"), Some("q")],
            vec![Some(1.0), Some(1.0)],
        );
        let bytes = Table::from_batch(b).to_ipc().unwrap();
        let out = aimass_plugin_sdk::__private::clean::<Dedup>(bytes, vec![]).unwrap();
        assert_eq!(ids(&Table::from_ipc(out).unwrap()), vec![Some(5)]);
    }
}
