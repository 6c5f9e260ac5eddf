//! Support vector machines (SVMClassifier, SVMRegressor): scikit-learn's SVC, NuSVC, SVR and
//! their linear forms, every kernel, with Platt-scaled probabilities, as onnxruntime computes
//! them (one-vs-one votes, libsvm's pairwise coupling, its conventions for two classes).

use crate::attrs::Attrs;
use crate::op::{self, Fact, Kernel};
use crate::trees::finalize::{Labels, Pick, Transform, logistic};
use tract_onnx::pb::NodeProto;
use tract_onnx::tract_hir::internal::*;

/// The kernel, with its `gamma`, `coef0` and `degree`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum KernelFn {
    Linear,
    Poly { gamma: f32, coef0: f32, degree: f32 },
    Rbf { gamma: f32 },
    Sigmoid { gamma: f32, coef0: f32 },
}

impl KernelFn {
    fn parse(a: &Attrs) -> TractResult<Self> {
        let p = a.floats("kernel_params")?.unwrap_or_default();
        let (gamma, coef0, degree) = match p.len() {
            0 => (0.0, 0.0, 0.0),
            3 => (p[0], p[1], p[2]),
            n => return Err(a.error("kernel_params", format!("has {n} values, expected 3"))),
        };
        Ok(match a.string_or("kernel_type", "LINEAR")?.as_str() {
            "LINEAR" => KernelFn::Linear,
            "POLY" => KernelFn::Poly {
                gamma,
                coef0,
                degree,
            },
            "RBF" => KernelFn::Rbf { gamma },
            "SIGMOID" => KernelFn::Sigmoid { gamma, coef0 },
            other => return Err(a.error("kernel_type", format!("unknown kernel {other:?}"))),
        })
    }

    /// `k(x, v)`.
    fn eval(self, x: &[f32], v: &[f32]) -> f32 {
        let dot = || x.iter().zip(v).map(|(a, b)| a * b).sum::<f32>();
        match self {
            KernelFn::Linear => dot(),
            KernelFn::Poly {
                gamma,
                coef0,
                degree,
            } => {
                let d = gamma * dot() + coef0;
                match degree {
                    2.0 => d * d,
                    3.0 => d * d * d,
                    _ => d.powf(degree),
                }
            }
            KernelFn::Rbf { gamma } => {
                let sq: f32 = x.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum();
                (-gamma * sq).exp()
            }
            KernelFn::Sigmoid { gamma, coef0 } => (gamma * dot() + coef0).tanh(),
        }
    }
}

/// Support vectors, `count` rows of `features`, checked against the attributes' lengths.
fn vectors(a: &Attrs, count: usize) -> TractResult<(Vec<f32>, usize)> {
    let sv = a.floats("support_vectors")?.unwrap_or_default();
    if count == 0 || sv.is_empty() || sv.len() % count != 0 {
        return Err(a.error(
            "support_vectors",
            format!("{} values for {count} vectors", sv.len()),
        ));
    }
    let features = sv.len() / count;
    Ok((sv, features))
}

/// How a classifier scores: one linear function per class (liblinear), or support vectors
/// voting one-vs-one (libsvm).
#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Linear,
    Svc {
        vectors: Vec<f32>,
        per_class: Vec<usize>,
        start: Vec<usize>,
        count: usize,
    },
}

/// SVMClassifier: `label` `[N]` and scores `[N, k]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Classifier {
    kernel: KernelFn,
    mode: Mode,
    features: usize,
    coefficients: Vec<f32>,
    rho: Vec<f32>,
    prob_a: Vec<f32>,
    prob_b: Vec<f32>,
    labels: Labels,
    transform: Transform,
    all_positive: bool,
}

impl Classifier {
    pub fn parse(node: &NodeProto) -> TractResult<Self> {
        let a = Attrs::new(node);
        let labels = Labels::parse(&a, "classlabels_ints")?;
        let classes = labels.len();
        if classes > 1 << 16 {
            return Err(a.error(
                "classlabels_ints",
                format!("{classes} classes is over the limit of 65536"),
            ));
        }
        let coefficients = a.required("coefficients", a.floats("coefficients"))?;
        let rho = a.required("rho", a.floats("rho"))?;
        let prob_a = a.floats("prob_a")?.unwrap_or_default();
        let prob_b = a.floats("prob_b")?.unwrap_or_default();
        a.expect_len("prob_b", prob_b.len(), prob_a.len())?;
        let per_class: Vec<usize> = a
            .ints("vectors_per_class")?
            .unwrap_or_default()
            .iter()
            .map(|&v| {
                usize::try_from(v)
                    .map_err(|_| a.error("vectors_per_class", format!("{v} is negative")))
            })
            .collect::<TractResult<_>>()?;
        let count: usize = per_class.iter().sum();
        let pairs = classes * (classes - 1) / 2;
        let (mode, kernel, features) = if count > 0 {
            a.expect_len("vectors_per_class", per_class.len(), classes)?;
            let (vectors, features) = vectors(&a, count)?;
            a.expect_len("coefficients", coefficients.len(), (classes - 1) * count)?;
            if rho.len() < pairs {
                return Err(a.error(
                    "rho",
                    format!("has {} values for {pairs} class pairs", rho.len()),
                ));
            }
            if !prob_a.is_empty() && prob_a.len() < pairs {
                return Err(a.error(
                    "prob_a",
                    format!("has {} values for {pairs} class pairs", prob_a.len()),
                ));
            }
            let start = per_class
                .iter()
                .scan(0, |s, &n| {
                    let here = *s;
                    *s += n;
                    Some(here)
                })
                .collect();
            (
                Mode::Svc {
                    vectors,
                    per_class,
                    start,
                    count,
                },
                KernelFn::parse(&a)?,
                features,
            )
        } else {
            if coefficients.is_empty() || coefficients.len() % classes != 0 || rho.is_empty() {
                return Err(a.error(
                    "coefficients",
                    format!("{} values for {classes} classes", coefficients.len()),
                ));
            }
            (Mode::Linear, KernelFn::Linear, coefficients.len() / classes)
        };
        Ok(Classifier {
            all_positive: coefficients.iter().all(|&c| c >= 0.0),
            kernel,
            mode,
            features,
            coefficients,
            rho,
            prob_a,
            prob_b,
            labels,
            transform: Transform::parse(&a)?,
        })
    }

    /// Scores per row: classes for linear and probability models, else the pairs' decision
    /// values (two columns for two classes).
    fn width(&self) -> usize {
        let classes = self.labels.len();
        match self.mode {
            Mode::Svc { .. } if self.prob_a.is_empty() && classes > 2 => {
                classes * (classes - 1) / 2
            }
            Mode::Svc { .. } if self.prob_a.is_empty() => 2,
            _ => classes,
        }
    }

    /// One row: writes its scores, returns its label.
    fn row(&self, x: &[f32], out: &mut [f32]) -> Pick {
        let classes = self.labels.len();
        let Mode::Svc {
            vectors,
            per_class,
            start,
            count,
        } = &self.mode
        else {
            for (c, o) in out.iter_mut().enumerate() {
                *o = KernelFn::Linear.eval(
                    x,
                    &self.coefficients[c * self.features..(c + 1) * self.features],
                ) + self.rho[0];
            }
            let (best, max) = first_max(out);
            let pick = self.linear_label(best, max);
            self.transform.apply(out);
            return pick;
        };
        let k: Vec<f32> = (0..*count)
            .map(|v| {
                self.kernel
                    .eval(x, &vectors[v * self.features..(v + 1) * self.features])
            })
            .collect();
        let mut votes = vec![0usize; classes];
        let mut pairs = Vec::with_capacity(classes * (classes - 1) / 2);
        for i in 0..classes {
            for j in i + 1..classes {
                let side = |class: usize, row: usize| -> f64 {
                    (0..per_class[class])
                        .map(|m| {
                            let v = start[class] + m;
                            f64::from(self.coefficients[row * count + v]) * f64::from(k[v])
                        })
                        .sum()
                };
                let sum = side(i, j - 1) + side(j, i) + f64::from(self.rho[pairs.len()]);
                votes[if sum > 0.0 { i } else { j }] += 1;
                pairs.push(sum as f32);
            }
        }
        let best = votes
            .iter()
            .enumerate()
            .fold(0, |b, (c, &v)| if v > votes[b] { c } else { b });
        if !self.prob_a.is_empty() {
            self.probabilities(&pairs, out);
            self.transform.apply(out);
        } else if classes == 2 {
            binary_scores(self.transform, pairs[0], out);
        } else {
            out.copy_from_slice(&pairs);
            self.transform.apply(out);
        }
        Pick::Class(best)
    }

    /// onnxruntime's label for a liblinear model of two classes; the top class otherwise.
    fn linear_label(&self, best: usize, max: f32) -> Pick {
        if self.labels.len() != 2 || !self.prob_a.is_empty() {
            return Pick::Class(best);
        }
        if (self.all_positive && max >= 0.5) || (!self.all_positive && max > 0.0) {
            Pick::Class(1)
        } else {
            Pick::Class(best)
        }
    }

    /// Platt-scaled pair probabilities coupled into class probabilities (libsvm's method 2).
    fn probabilities(&self, pairs: &[f32], out: &mut [f32]) {
        let n = self.labels.len();
        let mut r = vec![0f32; n * n];
        let mut idx = 0;
        for i in 0..n {
            for j in i + 1..n {
                let p = (1.0 - logistic(pairs[idx] * self.prob_a[idx] + self.prob_b[idx]))
                    .clamp(1e-7, 1.0 - 1e-7);
                r[i * n + j] = p;
                r[j * n + i] = 1.0 - p;
                idx += 1;
            }
        }
        couple(n, &r, out);
    }
}

/// The first largest value and its position.
fn first_max(v: &[f32]) -> (usize, f32) {
    v.iter().enumerate().fold(
        (0, v[0]),
        |(b, m), (i, &x)| if x > m { (i, x) } else { (b, m) },
    )
}

/// A two-class SVC's decision value written as two scores, as onnxruntime does.
fn binary_scores(t: Transform, s: f32, out: &mut [f32]) {
    match t {
        Transform::None => {
            out[0] = -s;
            out[1] = s;
        }
        Transform::Probit => {
            out[0] = crate::trees::finalize::probit(s);
            out[1] = 0.0;
        }
        _ => {
            out[0] = 1.0 - s;
            out[1] = s;
        }
    }
}

/// Class probabilities from pairwise ones (`r[i][j]`: P(i | i or j)), by the iterative method
/// of Wu, Lin and Weng as libsvm and onnxruntime implement it, in f32.
fn couple(n: usize, r: &[f32], p: &mut [f32]) {
    let mut q = vec![0f32; n * n];
    for i in 0..n {
        p[i] = 1.0 / n as f32;
        for j in 0..i {
            q[i * n + i] += r[j * n + i] * r[j * n + i];
            q[i * n + j] = q[j * n + i];
        }
        for j in i + 1..n {
            q[i * n + i] += r[j * n + i] * r[j * n + i];
            q[i * n + j] = -r[j * n + i] * r[i * n + j];
        }
    }
    let eps = 0.005 / n as f32;
    let mut qp = vec![0f32; n];
    for _ in 0..100 {
        let mut pqp = 0.0;
        for i in 0..n {
            qp[i] = (0..n).map(|j| q[i * n + j] * p[j]).sum();
            pqp += p[i] * qp[i];
        }
        if qp.iter().map(|v| (v - pqp).abs()).fold(0.0, f32::max) < eps {
            break;
        }
        for i in 0..n {
            let diff = (-qp[i] + pqp) / q[i * n + i];
            p[i] += diff;
            pqp = (pqp + diff * (diff * q[i * n + i] + 2.0 * qp[i])) / (1.0 + diff) / (1.0 + diff);
            for j in 0..n {
                qp[j] = (qp[j] + diff * q[i * n + j]) / (1.0 + diff);
                p[j] /= 1.0 + diff;
            }
        }
    }
}

impl Kernel for Classifier {
    const NAME: &'static str = "SVMClassifier";

    fn outputs(&self) -> usize {
        2
    }

    fn output_facts(&self, inputs: &[(DatumType, &[TDim])]) -> TractResult<Vec<Fact>> {
        let shape = inputs[0].1;
        op::check_features(Self::NAME, self.features, shape)?;
        let n = op::rows(shape);
        Ok(vec![
            (self.labels.datum_type(), tvec![n.clone()]),
            (f32::datum_type(), tvec![n, self.width().into()]),
        ])
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, rows, columns) = op::matrix(&inputs[0])?;
        if columns != self.features {
            bail!(
                "SVMClassifier: the model has {} features, the input {columns} columns",
                self.features
            );
        }
        let x = op::slice::<f32>(&x)?;
        let w = self.width();
        let mut out = vec![0f32; rows * w];
        let picks: Vec<Pick> = (0..rows)
            .map(|r| {
                self.row(
                    &x[r * columns..(r + 1) * columns],
                    &mut out[r * w..(r + 1) * w],
                )
            })
            .collect();
        Ok(tvec!(
            self.labels.pick(&picks)?,
            op::tensor(&[rows, w], &out)?
        ))
    }
}

/// SVMRegressor: `[N, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Regressor {
    kernel: KernelFn,
    vectors: Option<Vec<f32>>,
    features: usize,
    coefficients: Vec<f32>,
    rho: f32,
    one_class: bool,
}

impl Regressor {
    pub fn parse(node: &NodeProto) -> TractResult<Self> {
        let a = Attrs::new(node);
        let coefficients = a.required("coefficients", a.floats("coefficients"))?;
        if coefficients.is_empty() {
            return Err(a.error("coefficients", "is empty"));
        }
        let rho = *a
            .required("rho", a.floats("rho"))?
            .first()
            .ok_or_else(|| a.error("rho", "is empty"))?;
        let count = a.int("n_supports").unwrap_or(0);
        let count = usize::try_from(count)
            .map_err(|_| a.error("n_supports", format!("{count} is negative")))?;
        let (kernel, vectors, features) = if count > 0 {
            let (sv, features) = vectors(&a, count)?;
            a.expect_len("coefficients", coefficients.len(), count)?;
            (KernelFn::parse(&a)?, Some(sv), features)
        } else {
            (KernelFn::Linear, None, coefficients.len())
        };
        Ok(Regressor {
            kernel,
            vectors,
            features,
            coefficients,
            rho,
            one_class: a.int("one_class").unwrap_or(0) != 0,
        })
    }

    fn row(&self, x: &[f32]) -> f32 {
        let v = match &self.vectors {
            None => KernelFn::Linear.eval(x, &self.coefficients) + self.rho,
            Some(sv) => {
                let f = self.features;
                self.coefficients
                    .iter()
                    .enumerate()
                    .map(|(j, c)| c * self.kernel.eval(x, &sv[j * f..(j + 1) * f]))
                    .sum::<f32>()
                    + self.rho
            }
        };
        match self.one_class {
            true if v > 0.0 => 1.0,
            true => -1.0,
            false => v,
        }
    }
}

impl Kernel for Regressor {
    const NAME: &'static str = "SVMRegressor";

    fn output_facts(&self, inputs: &[(DatumType, &[TDim])]) -> TractResult<Vec<Fact>> {
        let shape = inputs[0].1;
        op::check_features(Self::NAME, self.features, shape)?;
        Ok(vec![(f32::datum_type(), tvec![op::rows(shape), 1.into()])])
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (x, rows, columns) = op::matrix(&inputs[0])?;
        if columns != self.features {
            bail!(
                "SVMRegressor: the model has {} features, the input {columns} columns",
                self.features
            );
        }
        let x = op::slice::<f32>(&x)?;
        let out: Vec<f32> = (0..rows)
            .map(|r| self.row(&x[r * columns..(r + 1) * columns]))
            .collect();
        Ok(tvec!(op::tensor(&[rows, 1], &out)?))
    }
}

pub fn register(reg: &mut tract_onnx::model::OnnxOpRegister) {
    reg.insert("SVMClassifier", |_, node| {
        Ok((op::op(Classifier::parse(node)?), vec![]))
    });
    reg.insert("SVMRegressor", |_, node| {
        Ok((op::op(Regressor::parse(node)?), vec![]))
    });
}
