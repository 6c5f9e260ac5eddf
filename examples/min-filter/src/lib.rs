//! `min-filter`: the README's example cleaner. Keeps the rows whose numeric `column` is at least
//! `min` (rows with a null there are dropped). Config: `column` (required), `min` (required).
use aimass_plugin_sdk::{Cleaner, Config, Error, Result, Table, export_cleaner, numeric::to_f64};
use arrow_array::BooleanArray;

pub struct MinFilter;

impl Cleaner for MinFilter {
    fn clean(input: Table, config: &Config) -> Result<Table> {
        let column = config.require("column")?;
        let min: f64 = config.require_parse("min")?;
        let idx = input
            .schema()
            .index_of(column)
            .map_err(|_| Error::invalid_config(format!("no column named {column:?}")))?;
        let (schema, batches) = input.into_parts();
        let mut kept = Vec::with_capacity(batches.len());
        for batch in batches {
            let values = to_f64(batch.column(idx).as_ref())?;
            let keep: BooleanArray = values
                .iter()
                .map(|v| Some(v.is_some_and(|v| v >= min)))
                .collect();
            kept.push(arrow_select::filter::filter_record_batch(&batch, &keep)?);
        }
        Ok(Table::new(schema, kept))
    }
}

export_cleaner!(MinFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Int64Array, RecordBatch};
    use std::sync::Arc;

    #[test]
    fn keeps_rows_at_or_above_min() {
        let batch = RecordBatch::try_from_iter([(
            "x",
            Arc::new(Int64Array::from(vec![Some(1), None, Some(5), Some(3)])) as _,
        )])
        .unwrap();
        let config = Config::from_pairs([("column", "x"), ("min", "3")]);
        let out = MinFilter::clean(Table::from_batch(batch), &config).unwrap();
        let b = out.concat().unwrap();
        let x = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(x.values(), &[5, 3]);
        let missing = Config::from_pairs([("column", "y"), ("min", "3")]);
        let empty = Table::from_batch(RecordBatch::new_empty(b.schema()));
        assert!(MinFilter::clean(empty, &missing).is_err());
    }
}
