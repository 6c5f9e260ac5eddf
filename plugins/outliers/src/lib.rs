//! `outliers` — an aimass cleaner that drops rows whose numeric values are outliers.
//!
//! Statistics are computed per column over the whole input stream (all batches), then a row is
//! dropped when **any** selected column holds an outlier in it. The schema and row order are
//! kept; batches left empty are dropped.
//!
//! # Config
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `method` | `zscore` | `zscore` or `iqr` |
//! | `threshold` | `3.0` (zscore), `1.5` (iqr) | z-score limit, or the IQR multiplier `k`; finite and ≥ 0 |
//! | `columns` | all numeric columns | comma-separated column names; an unknown or non-numeric column is an invalid-config error |
//!
//! Numeric columns are the Arrow integer, unsigned, floating-point and decimal types; values are
//! compared as `f64` (`aimass_plugin_sdk::numeric::to_f64`: integers and floats by `as f64`,
//! decimals as `unscaled / 10^scale`).
//!
//! # Formulas
//!
//! Statistics use the column's non-null, **finite** values `x_1..x_n` only.
//!
//! * `zscore`: `mean = Σx_i / n`, `std = sqrt(Σ(x_i − mean)² / n)` (the *population* standard
//!   deviation). A value `x` is an outlier when `|x − mean| / std > threshold`. When `n = 0` or
//!   `std = 0` the column has no outliers.
//! * `iqr`: with the values sorted ascending as `v_0..v_{n−1}`, the quantile `q(p)` is linear
//!   interpolation at position `h = (n − 1)·p`: `q(p) = v_⌊h⌋ + (h − ⌊h⌋)·(v_⌊h⌋+1 − v_⌊h⌋)`
//!   (NumPy's default `linear` method). `Q1 = q(0.25)`, `Q3 = q(0.75)`, `IQR = Q3 − Q1`; `x` is an
//!   outlier when `x < Q1 − k·IQR` or `x > Q3 + k·IQR`. When `n = 0` the column has no outliers.
//!
//! Nulls are never outliers (the row is kept unless another column rejects it); NaN is never an
//! outlier either; `±∞` is one whenever the bounds are finite.

use aimass_plugin_sdk::numeric::{mean_std, numeric_columns, to_f64};
use aimass_plugin_sdk::{Cleaner, Config, Error, Result, Table, export_cleaner, log};
use arrow_array::{Array, BooleanArray, Float64Array, RecordBatch};
use arrow_select::filter::filter_record_batch;

/// The plugin type bound to the `cleaner` world.
pub struct Outliers;

impl Cleaner for Outliers {
    fn clean(input: Table, config: &Config) -> Result<Table> {
        remove_outliers(input, config)
    }
}

export_cleaner!(Outliers);

/// Config keys this plugin accepts.
pub const CONFIG_KEYS: &[&str] = &["method", "threshold", "columns"];

/// The outlier test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// `|x − mean| / std > threshold` (population std).
    ZScore { threshold: f64 },
    /// `x < Q1 − k·IQR` or `x > Q3 + k·IQR`.
    Iqr { k: f64 },
}

impl Method {
    /// Read `method` and `threshold` from the config.
    pub fn from_config(config: &Config) -> Result<Self> {
        let method = config.choice("method", &["zscore", "iqr"], "zscore")?;
        let default = if method == "iqr" { 1.5 } else { 3.0 };
        let threshold: f64 = config.parse_or("threshold", default)?;
        if !threshold.is_finite() || threshold < 0.0 {
            return Err(Error::invalid_config(format!(
                "invalid value {threshold} for config key `threshold`: must be finite and >= 0"
            )));
        }
        Ok(if method == "iqr" {
            Method::Iqr { k: threshold }
        } else {
            Method::ZScore { threshold }
        })
    }
}

/// The accepted range of one column: values outside `[low, high]` are outliers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub low: f64,
    pub high: f64,
}

impl Bounds {
    const ALL: Bounds = Bounds {
        low: f64::NEG_INFINITY,
        high: f64::INFINITY,
    };

    /// NaN compares false both ways, so it is never an outlier.
    fn is_outlier(&self, x: f64) -> bool {
        x < self.low || x > self.high
    }
}

/// Drop the rows of `input` with outliers (see the module docs).
pub fn remove_outliers(input: Table, config: &Config) -> Result<Table> {
    config.check_keys(CONFIG_KEYS)?;
    let method = Method::from_config(config)?;
    let columns = numeric_columns(input.schema(), config, "columns")?;
    let total_rows = input.num_rows();
    let (schema, batches) = input.into_parts();

    // Every selected column of every batch as Float64 (nulls kept).
    let values: Vec<Vec<Float64Array>> = batches
        .iter()
        .map(|batch| {
            columns
                .iter()
                .map(|&c| to_f64(batch.column(c).as_ref()))
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<_>>()?;
    let bounds: Vec<Bounds> = (0..columns.len())
        .map(|j| {
            let finite = values
                .iter()
                .flat_map(|batch| batch[j].iter().flatten())
                .filter(|x| x.is_finite());
            bounds(method, finite)
        })
        .collect();

    let mut output = Vec::with_capacity(batches.len());
    for (batch, cols) in batches.into_iter().zip(&values) {
        let keep: BooleanArray = (0..batch.num_rows())
            .map(|row| {
                Some(
                    cols.iter()
                        .zip(&bounds)
                        .all(|(col, b)| col.is_null(row) || !b.is_outlier(col.value(row))),
                )
            })
            .collect();
        let kept = if keep.true_count() == batch.num_rows() {
            batch
        } else {
            filter_record_batch(&batch, &keep)?
        };
        if kept.num_rows() > 0 {
            output.push(kept);
        }
    }
    let kept_rows: usize = output.iter().map(RecordBatch::num_rows).sum();
    log::debug(format!(
        "outliers: kept {kept_rows} of {total_rows} rows ({method:?})"
    ));
    Ok(Table::new(schema, output))
}

/// The accepted range of a column from its finite values.
pub fn bounds(method: Method, finite: impl Iterator<Item = f64>) -> Bounds {
    match method {
        Method::ZScore { threshold } => {
            let values: Vec<f64> = finite.collect();
            let Some((mean, std)) = mean_std(&values) else {
                return Bounds::ALL;
            };
            if std == 0.0 {
                return Bounds::ALL;
            }
            Bounds {
                low: mean - threshold * std,
                high: mean + threshold * std,
            }
        }
        Method::Iqr { k } => {
            let mut sorted: Vec<f64> = finite.collect();
            if sorted.is_empty() {
                return Bounds::ALL;
            }
            sorted.sort_by(f64::total_cmp);
            let q1 = quantile(&sorted, 0.25);
            let q3 = quantile(&sorted, 0.75);
            let iqr = q3 - q1;
            Bounds {
                low: q1 - k * iqr,
                high: q3 + k * iqr,
            }
        }
    }
}

/// Quantile `p` of ascending `sorted` (non-empty) by linear interpolation at `(n − 1)·p`.
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int32Type;
    use arrow_array::{Int32Array, Int64Array, StringArray};
    use arrow_schema::Schema;
    use arrow_schema::{DataType, Field, SchemaRef};
    use std::sync::Arc;

    fn cfg(pairs: &[(&str, &str)]) -> Config {
        Config::from_pairs(pairs.iter().copied())
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("x", DataType::Float64, true),
            Field::new("tag", DataType::Utf8, true),
        ]))
    }

    fn batch(ids: Vec<i32>, xs: Vec<Option<f64>>) -> RecordBatch {
        let tags: Vec<Option<&str>> = ids.iter().map(|_| Some("t")).collect();
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int32Array::from(ids)),
                Arc::new(Float64Array::from(xs)),
                Arc::new(StringArray::from(tags)),
            ],
        )
        .unwrap()
    }

    fn ids(t: &Table) -> Vec<i32> {
        t.concat()
            .unwrap()
            .column(0)
            .as_primitive::<Int32Type>()
            .values()
            .to_vec()
    }

    /// Ten 10s and one 50, split over two batches: mean 13.636..., population std 11.499...,
    /// z(50) = 3.162 > 3 and z(10) = 0.316.
    fn ten_tens_and_fifty() -> Table {
        let b1 = batch((0..6).collect(), vec![Some(10.0); 6]);
        let mut xs = vec![Some(10.0); 4];
        xs.push(Some(50.0));
        xs.push(None);
        let b2 = batch((6..12).collect(), xs);
        Table::new(schema(), vec![b1, b2])
    }

    #[test]
    fn quantile_is_linear_interpolation() {
        let v: Vec<f64> = (1..=9).map(f64::from).chain([100.0]).collect();
        assert_eq!(quantile(&v, 0.25), 3.25);
        assert_eq!(quantile(&v, 0.75), 7.75);
        assert_eq!(quantile(&v, 0.5), 5.5);
        assert_eq!(quantile(&[4.0], 0.75), 4.0);
    }

    #[test]
    fn mean_std_is_population() {
        let (m, s) = mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!((m, s), (5.0, 2.0));
        assert_eq!(mean_std(&[]), None);
    }

    #[test]
    fn zscore_default_threshold_drops_the_outlier_keeps_nulls() {
        let out = remove_outliers(ten_tens_and_fifty(), &Config::default()).unwrap();
        // id 10 held 50.0; id 11 holds a null and is kept.
        assert_eq!(ids(&out), vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11]);
        assert_eq!(out.schema(), &schema());
    }

    #[test]
    fn zscore_threshold_is_strict_and_configurable() {
        // z(50) = 3.162...: kept at threshold 3.2, dropped at 3.1.
        let out = remove_outliers(ten_tens_and_fifty(), &cfg(&[("threshold", "3.2")])).unwrap();
        assert_eq!(out.num_rows(), 12);
        let out = remove_outliers(ten_tens_and_fifty(), &cfg(&[("threshold", "3.1")])).unwrap();
        assert_eq!(out.num_rows(), 11);
    }

    #[test]
    fn iqr_drops_beyond_fences() {
        // 1..9 and 100: Q1 3.25, Q3 7.75, IQR 4.5, fences [-3.5, 14.5].
        let xs: Vec<Option<f64>> = (1..=9)
            .map(|i| Some(f64::from(i)))
            .chain([Some(100.0)])
            .collect();
        let t = Table::from_batch(batch((0..10).collect(), xs));
        let out = remove_outliers(t.clone(), &cfg(&[("method", "iqr")])).unwrap();
        assert_eq!(ids(&out), (0..9).collect::<Vec<_>>());
        // k = 20 puts the upper fence at 97.75: 100 still out; k = 21 → 102.25: kept.
        let out =
            remove_outliers(t.clone(), &cfg(&[("method", "iqr"), ("threshold", "20")])).unwrap();
        assert_eq!(out.num_rows(), 9);
        let out = remove_outliers(t, &cfg(&[("method", "iqr"), ("threshold", "21")])).unwrap();
        assert_eq!(out.num_rows(), 10);
    }

    #[test]
    fn any_selected_column_rejects_the_row() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int32, true),
        ]));
        let a: Vec<i64> = vec![1, 2, 3, 4, 5, 6, 7, 8, 1000];
        let b: Vec<i32> = vec![-500, 2, 3, 4, 5, 6, 7, 8, 9];
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(a)), Arc::new(Int32Array::from(b))],
        )
        .unwrap();
        let t = Table::from_batch(batch);
        let out = remove_outliers(t.clone(), &cfg(&[("method", "iqr")])).unwrap();
        let b_out = out.concat().unwrap();
        assert_eq!(
            b_out.column(1).as_primitive::<Int32Type>().values(),
            &[2, 3, 4, 5, 6, 7, 8]
        );
        // Only column `a`: the -500 row stays.
        let out = remove_outliers(t, &cfg(&[("method", "iqr"), ("columns", "a")])).unwrap();
        assert_eq!(out.num_rows(), 8);
    }

    #[test]
    fn constant_column_and_nan_have_no_outliers_infinity_does() {
        let t = Table::from_batch(batch(
            vec![0, 1, 2, 3],
            vec![Some(1.0), Some(1.0), Some(f64::NAN), Some(1.0)],
        ));
        assert_eq!(
            remove_outliers(t.clone(), &Config::default())
                .unwrap()
                .num_rows(),
            4
        );
        assert_eq!(
            remove_outliers(t, &cfg(&[("method", "iqr")]))
                .unwrap()
                .num_rows(),
            4
        );
        let t = Table::from_batch(batch(
            vec![0, 1, 2, 3],
            vec![Some(1.0), Some(2.0), Some(f64::INFINITY), Some(3.0)],
        ));
        assert_eq!(
            ids(&remove_outliers(t, &cfg(&[("method", "iqr")])).unwrap()),
            vec![0, 1, 3]
        );
    }

    #[test]
    fn bad_config() {
        for pairs in [
            vec![("method", "mad")],
            vec![("threshold", "-1")],
            vec![("threshold", "inf")],
            vec![("threshold", "high")],
            vec![("columns", "tag")],
            vec![("columns", "x,nope")],
            vec![("columns", "")],
            vec![("k", "2")],
        ] {
            let err = remove_outliers(ten_tens_and_fifty(), &cfg(&pairs)).unwrap_err();
            assert!(matches!(err, Error::InvalidConfig(_)), "{pairs:?}: {err}");
        }
        let err = remove_outliers(ten_tens_and_fifty(), &cfg(&[("columns", "tag")])).unwrap_err();
        assert!(err.message().contains("not numeric"), "{err}");
    }

    #[test]
    fn empty_and_no_numeric_columns() {
        let out = remove_outliers(Table::empty(schema()), &Config::default()).unwrap();
        assert_eq!((out.num_rows(), out.schema()), (0, &schema()));
        let s = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
        let b = RecordBatch::try_new(s, vec![Arc::new(StringArray::from(vec!["a", "b"]))]).unwrap();
        assert_eq!(
            remove_outliers(Table::from_batch(b), &Config::default())
                .unwrap()
                .num_rows(),
            2
        );
    }

    #[test]
    fn through_ipc_like_the_host() {
        let bytes = ten_tens_and_fifty().to_ipc().unwrap();
        let out = aimass_plugin_sdk::__private::clean::<Outliers>(bytes, vec![]).unwrap();
        assert_eq!(Table::from_ipc(out).unwrap().num_rows(), 11);
    }
}
