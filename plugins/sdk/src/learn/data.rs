//! Features and labels out of the dataset reader.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::numeric::{is_numeric, to_f64};
use crate::plugin::Dataset;
use arrow_array::Array;

/// A dense training matrix: `x` is `n × f` row-major, `y` has one label value per row.
#[derive(Debug, Clone, PartialEq)]
pub struct Xy {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub n: usize,
    pub f: usize,
    /// Feature names, in column order of `x`.
    pub features: Vec<String>,
    /// The label column's name.
    pub label: String,
}

impl Xy {
    /// A matrix built in code (tests, synthetic data): `x` row-major with `f` columns named
    /// `x0, x1, …`, label `y`.
    pub fn new(x: Vec<f64>, y: Vec<f64>, f: usize) -> Xy {
        assert_eq!(x.len(), y.len() * f, "x holds f values per label");
        Xy {
            n: y.len(),
            f,
            x,
            y,
            features: (0..f).map(|i| format!("x{i}")).collect(),
            label: "y".into(),
        }
    }

    /// Row `i` of `x`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.f..(i + 1) * self.f]
    }
}

/// Read every row of `data`: the `label` config key (required) names the label column; the
/// `features` key (comma-separated) the feature columns, by default every numeric column except
/// the label. Columns must be numeric and hold no null or non-finite value: a cleaner is the
/// place to drop or fill those, so the error says which column and row.
pub fn read_xy(data: &Dataset<'_>, config: &Config) -> Result<Xy> {
    let schema = data.schema()?;
    let label = config.require("label")?.trim().to_string();
    let label_index = schema.index_of(&label).map_err(|_| {
        Error::invalid_config(format!("label column `{label}` is not in the dataset"))
    })?;
    let features: Vec<String> = match config.list("features") {
        Some(list) if !list.is_empty() => list,
        Some(_) => return Err(Error::invalid_config("`features` is empty")),
        None => schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(i, f)| *i != label_index && is_numeric(f.data_type()))
            .map(|(_, f)| f.name().clone())
            .collect(),
    };
    if features.is_empty() {
        return Err(Error::invalid_input(
            "the dataset has no numeric feature column",
        ));
    }
    let mut columns = Vec::with_capacity(features.len());
    for name in &features {
        let i = schema.index_of(name).map_err(|_| {
            Error::invalid_config(format!("feature column `{name}` is not in the dataset"))
        })?;
        if i == label_index {
            return Err(Error::invalid_config(format!(
                "`{name}` is the label and cannot also be a feature"
            )));
        }
        if !is_numeric(schema.field(i).data_type()) {
            return Err(Error::invalid_input(format!(
                "feature column `{name}` is {}, not numeric",
                schema.field(i).data_type()
            )));
        }
        columns.push(i);
    }
    if !is_numeric(schema.field(label_index).data_type()) {
        return Err(Error::invalid_input(format!(
            "label column `{label}` is {}, not numeric",
            schema.field(label_index).data_type()
        )));
    }
    let f = columns.len();
    let capacity = data.row_count() as usize;
    let (mut x, mut y) = (
        Vec::with_capacity(capacity * f),
        Vec::with_capacity(capacity),
    );
    let mut row = 0usize;
    while let Some(batch) = data.next_batch()? {
        let values: Vec<_> = columns
            .iter()
            .map(|&c| to_f64(batch.column(c).as_ref()))
            .collect::<Result<_>>()?;
        let labels = to_f64(batch.column(label_index).as_ref())?;
        for r in 0..batch.num_rows() {
            for (v, name) in values.iter().zip(&features) {
                x.push(finite(v, r, name, row + r)?);
            }
            y.push(finite(&labels, r, &label, row + r)?);
        }
        row += batch.num_rows();
    }
    if row == 0 {
        return Err(Error::invalid_input("the training split is empty"));
    }
    Ok(Xy {
        x,
        y,
        n: row,
        f,
        features,
        label,
    })
}

fn finite(values: &arrow_array::Float64Array, r: usize, column: &str, row: usize) -> Result<f64> {
    let v = values.value(r);
    if values.is_null(r) || !v.is_finite() {
        let what = if values.is_null(r) {
            "null".to_string()
        } else {
            v.to_string()
        };
        return Err(Error::invalid_input(format!(
            "column `{column}` has {what} at row {row}; drop or fill such rows before training"
        )));
    }
    Ok(v)
}

/// Per-feature standardisation: `(x − mean) / scale`, with `scale` the population standard
/// deviation, or 1 for a constant column.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaling {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
}

impl Scaling {
    /// Learn the scaling of `xy`'s features.
    pub fn fit(xy: &Xy) -> Scaling {
        let n = xy.n as f64;
        let mut mean = vec![0.0; xy.f];
        for i in 0..xy.n {
            for (m, v) in mean.iter_mut().zip(xy.row(i)) {
                *m += v;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0; xy.f];
        for i in 0..xy.n {
            for ((s, v), m) in var.iter_mut().zip(xy.row(i)).zip(&mean) {
                *s += (v - m) * (v - m);
            }
        }
        let scale = var
            .into_iter()
            .map(|s| {
                let sd = (s / n).sqrt();
                if sd > 1e-12 { sd } else { 1.0 }
            })
            .collect();
        Scaling { mean, scale }
    }

    /// Standardise `x` (`f` columns, row-major) in place.
    pub fn apply(&self, x: &mut [f64]) {
        let f = self.mean.len();
        for row in x.chunks_mut(f) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.scale) {
                *v = (*v - m) / s;
            }
        }
    }

    /// Turn weights `w` (`f × k`, row-major) and biases `b` (`k`) learned on standardised
    /// features into the same model over raw features: `w'ᵢ = wᵢ / sᵢ`, `b' = b − Σᵢ w'ᵢ mᵢ`.
    pub fn unfold(&self, w: &mut [f64], b: &mut [f64]) {
        let k = b.len();
        for (i, row) in w.chunks_mut(k).enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v /= self.scale[i];
                b[j] -= *v * self.mean[i];
            }
        }
    }
}

/// The distinct integer labels of a classification task, sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classes(pub Vec<i64>);

impl Classes {
    /// The classes of `y` and each row's class index. Labels must be integers (encode string
    /// labels as integers in a cleaner); at least two classes must be present.
    pub fn encode(y: &[f64], label: &str) -> Result<(Classes, Vec<usize>)> {
        let mut values = Vec::new();
        for &v in y {
            if v.fract() != 0.0 || v.abs() > 9.0e15 {
                return Err(Error::invalid_input(format!(
                    "label `{label}` has the value {v}; classifiers need integer class labels"
                )));
            }
            values.push(v as i64);
        }
        let mut classes = values.clone();
        classes.sort_unstable();
        classes.dedup();
        if classes.len() < 2 {
            return Err(Error::invalid_input(format!(
                "label `{label}` has {} distinct value(s); a classifier needs at least two",
                classes.len()
            )));
        }
        let index = values
            .iter()
            .map(|v| classes.binary_search(v).expect("present"))
            .collect();
        Ok((Classes(classes), index))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Comma-separated, for model metadata.
    pub fn to_csv(&self) -> String {
        self.0
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::MemoryDataset;
    use crate::table::Table;
    use arrow_array::{Float64Array, Int64Array, RecordBatch, StringArray};
    use std::sync::Arc;

    fn table(a: Vec<Option<f64>>, label: Vec<i64>) -> Table {
        let n = a.len();
        let batch = RecordBatch::try_from_iter([
            ("a", Arc::new(Float64Array::from(a)) as _),
            (
                "b",
                Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())) as _,
            ),
            ("name", Arc::new(StringArray::from(vec!["s"; n])) as _),
            ("y", Arc::new(Int64Array::from(label)) as _),
        ])
        .unwrap();
        let (b1, b2) = (batch.slice(0, n / 2), batch.slice(n / 2, n - n / 2));
        Table::new(batch.schema(), vec![b1, b2])
    }

    fn read(t: Table, pairs: &[(&str, &str)]) -> Result<Xy> {
        let source = MemoryDataset::new(t);
        read_xy(
            &Dataset::new(&source),
            &Config::from_pairs(pairs.iter().copied()),
        )
    }

    #[test]
    fn reads_numeric_features_across_batches() {
        let t = table(vec![Some(1.5), Some(2.5), Some(-1.0)], vec![0, 1, 1]);
        let xy = read(t, &[("label", "y")]).unwrap();
        assert_eq!(xy.features, ["a", "b"]);
        assert_eq!((xy.n, xy.f), (3, 2));
        assert_eq!(xy.x, [1.5, 0.0, 2.5, 1.0, -1.0, 2.0]);
        assert_eq!(xy.y, [0.0, 1.0, 1.0]);
        let t = table(vec![Some(1.5), Some(2.5)], vec![0, 1]);
        let xy = read(t, &[("label", "y"), ("features", "b")]).unwrap();
        assert_eq!((xy.x, xy.features), (vec![0.0, 1.0], vec!["b".to_string()]));
    }

    #[test]
    fn names_the_bad_column() {
        let t = || table(vec![Some(1.0), None, Some(2.0)], vec![0, 1, 0]);
        let msg = |r: Result<Xy>| r.unwrap_err().message().to_string();
        assert!(msg(read(t(), &[("label", "y")])).contains("column `a` has null at row 1"));
        assert!(msg(read(t(), &[])).contains("`label`"));
        assert!(msg(read(t(), &[("label", "z")])).contains("`z` is not in"));
        assert!(msg(read(t(), &[("label", "y"), ("features", "name")])).contains("not numeric"));
        assert!(msg(read(t(), &[("label", "y"), ("features", "y")])).contains("cannot also be"));
    }

    #[test]
    fn scaling_round_trips_into_weights() {
        let xy = Xy::new(vec![1.0, 10.0, 3.0, 10.0, 5.0, 10.0], vec![0.0; 3], 2);
        let s = Scaling::fit(&xy);
        assert_eq!(s.mean, [3.0, 10.0]);
        assert!((s.scale[0] - (8.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(s.scale[1], 1.0, "a constant column keeps scale 1");
        let mut z = xy.x.clone();
        s.apply(&mut z);
        // A model on standardised features equals the unfolded model on raw ones.
        let (w, b) = (vec![0.7, -0.2], vec![0.3]);
        let (mut w2, mut b2) = (w.clone(), b.clone());
        s.unfold(&mut w2, &mut b2);
        for i in 0..3 {
            let on_z = z[2 * i] * w[0] + z[2 * i + 1] * w[1] + b[0];
            let on_x = xy.x[2 * i] * w2[0] + xy.x[2 * i + 1] * w2[1] + b2[0];
            assert!((on_z - on_x).abs() < 1e-12);
        }
    }

    #[test]
    fn encodes_integer_classes() {
        let (c, idx) = Classes::encode(&[5.0, -1.0, 5.0, 2.0], "y").unwrap();
        assert_eq!(c.0, [-1, 2, 5]);
        assert_eq!(idx, [2, 0, 2, 1]);
        assert_eq!(c.to_csv(), "-1,2,5");
        assert!(
            Classes::encode(&[1.0, 1.5], "y")
                .unwrap_err()
                .message()
                .contains("integer")
        );
        assert!(
            Classes::encode(&[1.0, 1.0], "y")
                .unwrap_err()
                .message()
                .contains("at least two")
        );
    }
}
