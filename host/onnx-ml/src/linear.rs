//! LinearClassifier (LogisticRegression, LinearSVC, SGDClassifier...), as onnxruntime computes
//! it, with integer or string class labels (tract's own accepts integers only).

use crate::attrs::Attrs;
use crate::op::{self, Fact, Kernel};
use crate::trees::finalize::{Labels, Pick, Transform};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

/// `scores = X · coefficientsᵀ + intercepts`; the label is the top class, or for one score the
/// second class when it is positive.
#[derive(Debug, Clone, PartialEq)]
pub struct Classifier {
    coefficients: Vec<f32>,
    intercepts: Vec<f32>,
    features: usize,
    labels: Labels,
    transform: Transform,
}

impl Classifier {
    pub fn parse(node: &NodeProto) -> TractResult<Self> {
        let a = Attrs::new(node);
        let labels = Labels::parse(&a, "classlabels_ints")?;
        let coefficients = a.required("coefficients", a.floats("coefficients"))?;
        let intercepts = a.floats("intercepts")?.unwrap_or_default();
        let targets = intercepts.len();
        if targets == 0 || coefficients.is_empty() || coefficients.len() % targets != 0 {
            return Err(a.error(
                "coefficients",
                format!("{} values for {targets} intercepts", coefficients.len()),
            ));
        }
        if targets != 1 && targets != labels.len() {
            return Err(a.error(
                "intercepts",
                format!("{targets} intercepts for {} classes", labels.len()),
            ));
        }
        Ok(Classifier {
            features: coefficients.len() / targets,
            coefficients,
            intercepts,
            labels,
            transform: Transform::parse(&a)?,
        })
    }

    fn targets(&self) -> usize {
        self.intercepts.len()
    }

    /// One row: the scores written (two for one target and two classes), the label returned.
    fn row(&self, x: &[f32], out: &mut [f32]) -> Pick {
        let f = self.features;
        let targets = self.targets();
        for (t, o) in out.iter_mut().take(targets).enumerate() {
            let w = &self.coefficients[t * f..(t + 1) * f];
            *o = x.iter().zip(w).map(|(a, b)| a * b).sum::<f32>() + self.intercepts[t];
        }
        if targets > 1 {
            let best = (1..targets).fold(0, |b, j| if out[j] > out[b] { j } else { b });
            self.transform.apply(out);
            return Pick::Class(best);
        }
        let s = out[0];
        match self.transform {
            Transform::Probit => out[0] = crate::trees::finalize::probit(s),
            _ => {
                out[0] = 1.0 - s;
                out[1] = s;
            }
        }
        Pick::Class(usize::from(s > 0.0))
    }
}

impl Kernel for Classifier {
    const NAME: &'static str = "LinearClassifier";

    fn outputs(&self) -> usize {
        2
    }

    fn output_facts(&self, inputs: &[(DatumType, &[TDim])]) -> TractResult<Vec<Fact>> {
        let shape = inputs[0].1;
        op::check_features(Self::NAME, self.features, shape)?;
        let n = op::rows(shape);
        let width = self.targets().max(2);
        Ok(vec![
            (self.labels.datum_type(), tvec![n.clone()]),
            (f32::datum_type(), tvec![n, width.into()]),
        ])
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, rows, columns) = op::matrix(&inputs[0])?;
        if columns != self.features {
            bail!(
                "LinearClassifier: the model has {} features, the input {columns} columns",
                self.features
            );
        }
        let x = op::slice::<f32>(&x)?;
        let width = self.targets().max(2);
        let mut out = vec![0f32; rows * width];
        let picks: Vec<Pick> = (0..rows)
            .map(|r| {
                self.row(
                    &x[r * columns..(r + 1) * columns],
                    &mut out[r * width..(r + 1) * width],
                )
            })
            .collect();
        Ok(tvec!(
            self.labels.pick(&picks)?,
            op::tensor(&[rows, width], &out)?
        ))
    }
}

pub fn register(reg: &mut tract_onnx::model::OnnxOpRegister) {
    reg.insert("LinearClassifier", |_, node| {
        Ok((op::op(Classifier::parse(node)?), vec![]))
    });
}
