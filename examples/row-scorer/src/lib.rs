//! `row-scorer`: a cleaner that scores every row with a model the host serves, through the
//! `inference` import — e.g. a churn probability added while cleaning. Upload it with the model
//! granted: `PUT /v1/plugins/row-scorer?models=churn`.
//!
//! Config: `model` (required: `name`, `name@3` or `name@alias`); `features` (comma-separated;
//! by default every numeric column in schema order — name them when the table also holds the
//! label, ids or other numbers the model was not trained on), sent in that order as the FP32 `[N, F]` input named `input`
//! (default `features`, the bundled trainers' input name). Appended columns, from the model's
//! outputs: `score` (Float64, the probability of the last class, from `probabilities`),
//! `predicted` (Int64, from `label`) and `prediction` (Float64, from a regressor's `prediction`).
//! A null feature is an invalid-input error. The host refuses models trained with fitted
//! transforms through this import (apply the transform in the plugin, or call over HTTP).
use std::sync::Arc;

use aimass_plugin_sdk::inference::{Tensor, infer};
use aimass_plugin_sdk::numeric::{numeric_columns, to_f64};
use aimass_plugin_sdk::{Cleaner, Config, Error, Result, Table, export_cleaner};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};

pub struct RowScorer;

impl Cleaner for RowScorer {
    fn clean(input: Table, config: &Config) -> Result<Table> {
        config.check_keys(&["model", "features", "input"])?;
        let model = config.require("model")?;
        let input_name = config.get_or("input", "features");
        let features = numeric_columns(input.schema(), config, "features")?;
        let (schema, batches) = input.into_parts();
        let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            let n = batch.num_rows();
            let columns: Vec<Float64Array> = features
                .iter()
                .map(|&c| to_f64(batch.column(c).as_ref()))
                .collect::<Result<_>>()?;
            let mut x = Vec::with_capacity(n * features.len());
            for r in 0..n {
                for (c, &i) in columns.iter().zip(&features) {
                    if c.is_null(r) {
                        let name = schema.field(i).name();
                        return Err(Error::invalid_input(format!(
                            "column `{name}` is null in a row to score; drop or fill nulls first"
                        )));
                    }
                    x.push(c.value(r) as f32);
                }
            }
            let tensor = Tensor::f32(input_name, &[n as u64, features.len() as u64], &x);
            let outputs = infer(model, vec![tensor])?;
            let mut added: Vec<(Field, ArrayRef)> = Vec::new();
            for t in &outputs {
                match t.name.as_str() {
                    "probabilities" => {
                        let k = (*t.shape.last().unwrap_or(&1) as usize).max(1);
                        let p = t.to_f32()?;
                        let last: Float64Array =
                            p.chunks_exact(k).map(|row| f64::from(row[k - 1])).collect();
                        added.push((
                            Field::new("score", DataType::Float64, false),
                            Arc::new(last),
                        ));
                    }
                    "label" => added.push((
                        Field::new("predicted", DataType::Int64, false),
                        Arc::new(Int64Array::from(t.to_i64()?)),
                    )),
                    "prediction" => {
                        let v: Float64Array = t.to_f32()?.into_iter().map(f64::from).collect();
                        added.push((
                            Field::new("prediction", DataType::Float64, false),
                            Arc::new(v),
                        ));
                    }
                    _ => {}
                }
            }
            if added.is_empty() {
                return Err(Error::invalid_config(format!(
                    "model `{model}` has no probabilities, label or prediction output"
                )));
            }
            if out.is_empty() {
                fields.extend(added.iter().map(|(f, _)| Arc::new(f.clone())));
            }
            let mut cols = batch.columns().to_vec();
            cols.extend(added.into_iter().map(|(_, a)| a));
            out.push(RecordBatch::try_new(
                Arc::new(Schema::new(fields.clone())),
                cols,
            )?);
        }
        let schema = Arc::new(Schema::new(fields));
        Ok(Table::new(schema, out))
    }
}

export_cleaner!(RowScorer);
