//! From aggregated leaf values to outputs, as onnxruntime computes them: base values, the
//! post transform, and the label, with onnxruntime's conventions for two classes (a binary
//! ensemble scores only the positive class; its probabilities are `[1 - p, p]`, or the
//! logistic of `[-s, s]`, and its label is the positive class above 0.5, or above 0 when some
//! weights are negative).

use super::{Aggregate, Classifier, Regressor};
use crate::attrs::Attrs;
use crate::op;
use tract_onnx::tract_hir::internal::*;

/// The class labels: integers or strings.
#[derive(Debug, Clone, PartialEq)]
pub enum Labels {
    Ints(Vec<i64>),
    Strings(Vec<String>),
}

impl Labels {
    /// From `ints` (the attribute's name differs by operator) or `classlabels_strings`.
    pub fn parse(a: &Attrs, ints: &str) -> TractResult<Self> {
        let ints_name = ints;
        let ints = a.ints(ints_name)?.filter(|v| !v.is_empty());
        let strings = a.strings("classlabels_strings")?.filter(|v| !v.is_empty());
        let labels = match (ints, strings) {
            (Some(i), None) => Labels::Ints(i.to_vec()),
            (None, Some(s)) => Labels::Strings(s),
            _ => {
                return Err(a.error(
                    ints_name,
                    format!("exactly one of {ints_name} and classlabels_strings must be set"),
                ));
            }
        };
        if labels.len() < 2 {
            return Err(a.error(ints_name, "a classifier needs at least two classes"));
        }
        Ok(labels)
    }

    pub fn len(&self) -> usize {
        match self {
            Labels::Ints(v) => v.len(),
            Labels::Strings(v) => v.len(),
        }
    }

    pub fn datum_type(&self) -> DatumType {
        match self {
            Labels::Ints(_) => i64::datum_type(),
            Labels::Strings(_) => DatumType::String,
        }
    }

    /// The labels of `picks`, a `[N]` tensor.
    pub fn pick(&self, picks: &[Pick]) -> TractResult<TValue> {
        Ok(match self {
            Labels::Ints(labels) => {
                let v: Vec<i64> = picks
                    .iter()
                    .map(|p| match *p {
                        Pick::Class(i) => labels[i],
                        Pick::Value(v) => v,
                    })
                    .collect();
                op::tensor(&[v.len()], &v)?
            }
            Labels::Strings(labels) => {
                let v: Vec<String> = picks
                    .iter()
                    .map(|p| match *p {
                        Pick::Class(i) => labels[i].clone(),
                        // onnxruntime labels string classes by index: the value is one.
                        Pick::Value(v) => labels[v.clamp(0, 1) as usize].clone(),
                    })
                    .collect();
                tract_ndarray::Array1::from_vec(v)
                    .into_tensor()
                    .into_tvalue()
            }
        })
    }
}

/// A row's label: a class by position, or (two classes, scores for both) onnxruntime's literal
/// 1 or 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pick {
    Class(usize),
    Value(i64),
}

/// The post transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

impl Transform {
    pub fn parse(a: &Attrs) -> TractResult<Self> {
        Ok(match a.string_or("post_transform", "NONE")?.as_str() {
            "NONE" => Transform::None,
            "LOGISTIC" => Transform::Logistic,
            "SOFTMAX" => Transform::Softmax,
            "SOFTMAX_ZERO" => Transform::SoftmaxZero,
            "PROBIT" => Transform::Probit,
            other => return Err(a.error("post_transform", format!("unknown transform {other:?}"))),
        })
    }

    /// Applies the transform to two or more scores.
    pub fn apply(self, s: &mut [f32]) {
        match self {
            Transform::None => {}
            Transform::Logistic => s.iter_mut().for_each(|v| *v = logistic(*v)),
            Transform::Probit => s.iter_mut().for_each(|v| *v = probit(*v)),
            Transform::Softmax => softmax(s),
            Transform::SoftmaxZero => softmax_zero(s),
        }
    }
}

pub fn logistic(v: f32) -> f32 {
    let e = 1.0 / (1.0 + (-v.abs()).exp());
    if v < 0.0 { 1.0 - e } else { e }
}

/// `sqrt(2) * erfinv(2v - 1)`, with the approximation of erfinv onnxruntime uses (Winitzki's,
/// a = 0.147), so results agree with it rather than with an exact erfinv.
pub fn probit(v: f32) -> f32 {
    let x = 2.0 * v - 1.0;
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let ln = ((1.0 - x) * (1.0 + x)).ln();
    let a = 2.0 / (std::f32::consts::PI * 0.147) + 0.5 * ln;
    let b = ln / 0.147;
    std::f32::consts::SQRT_2 * sign * (-a + (a * a - b).sqrt()).sqrt()
}

fn softmax(s: &mut [f32]) {
    let max = s.iter().copied().fold(f32::MIN, f32::max);
    let mut sum = 0.0;
    for v in s.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    s.iter_mut().for_each(|v| *v /= sum);
}

/// Softmax over the non-zero scores; zeros stay (nearly) zero.
fn softmax_zero(s: &mut [f32]) {
    let max = s.iter().copied().fold(f32::MIN, f32::max);
    let exp_neg_max = (-max).exp();
    let mut sum = 0.0;
    for v in s.iter_mut() {
        if v.abs() > 1e-7 {
            *v = (*v - max).exp();
            sum += *v;
        } else {
            *v *= exp_neg_max;
        }
    }
    s.iter_mut().for_each(|v| *v /= sum);
}

/// One row of a classifier: `value`/`has` the summed leaf weights per class, `out` the scores
/// written; returns the label.
pub fn classify(c: &Classifier, value: &[f32], has: &[bool], out: &mut [f32]) -> Pick {
    if value.len() > 2 {
        return classify_many(c, value, has, out);
    }
    let (mut s, h) = ([value[0], value[1]], [has[0], has[1]]);
    let mut second = None;
    let mut len = 2;
    match c.base.len() {
        2 if h[1] => {
            // onnxruntime's reading: base[1] plus class 0's sum; base[0] unused.
            s[1] = c.base[1] + s[0];
            s[0] = -s[1];
        }
        // Only class 0 scored: its base is added and class 1 stays 0.
        2 => s[0] += c.base[0],
        1 => {
            s[0] += c.base[0];
            if !h[1] {
                len = 1;
            }
        }
        _ => {
            second = Some(3);
            if !h[1] {
                len = 1;
            }
        }
    }
    let pick = binary_label(c, &s[..len], &h[..len], &mut second);
    write(c.transform, &s[..len], second, out);
    pick
}

/// The label of a two-class row; sets how the second score is written.
fn binary_label(c: &Classifier, s: &[f32], h: &[bool], second: &mut Option<u8>) -> Pick {
    let positive = if s.len() == 2 && h[1] {
        s[1]
    } else if h[0] {
        s[0]
    } else {
        0.0
    };
    if !c.binary {
        return Pick::Value(i64::from(positive > 0.0));
    }
    let (code, class) = match (c.all_positive, positive) {
        (true, p) if p > 0.5 => (0, 1),
        (true, _) => (1, 0),
        (false, p) if p > 0.0 => (2, 1),
        (false, _) => (3, 0),
    };
    *second = Some(code);
    Pick::Class(class)
}

/// Writes the scores of a two-class row: two scores are transformed; a single one gains its
/// complement as onnxruntime writes it.
fn write(t: Transform, s: &[f32], second: Option<u8>, out: &mut [f32]) {
    if s.len() == 2 {
        out.copy_from_slice(s);
        t.apply(out);
        return;
    }
    let v = s[0];
    if t == Transform::Probit {
        out[0] = probit(v);
        return;
    }
    match (second, t) {
        (Some(0 | 1), Transform::Logistic) => {
            out[1] = logistic(v);
            out[0] = 1.0 - out[1];
        }
        (Some(0 | 1), _) => {
            out[0] = 1.0 - v;
            out[1] = v;
        }
        (Some(2 | 3), Transform::Logistic) => {
            out[0] = logistic(-v);
            out[1] = logistic(v);
        }
        (Some(2 | 3), _) => {
            out[0] = -v;
            out[1] = v;
        }
        _ => out[0] = v,
    }
}

fn classify_many(c: &Classifier, value: &[f32], has: &[bool], out: &mut [f32]) -> Pick {
    let mut h = has.to_vec();
    out.copy_from_slice(value);
    for (k, b) in c.base.iter().enumerate() {
        out[k] = if h[k] { out[k] + b } else { *b };
        h[k] = true;
    }
    let mut best: Option<usize> = None;
    for k in 0..out.len() {
        if h[k] && best.is_none_or(|b| out[k] > out[b]) {
            best = Some(k);
        }
    }
    for k in 0..out.len() {
        if !h[k] {
            out[k] = 0.0;
        }
    }
    c.transform.apply(out);
    Pick::Class(best.unwrap_or(0))
}

/// One row of a regressor.
pub fn regress(r: &Regressor, value: &[f32], has: &[bool], out: &mut [f32]) {
    let trees = r.forest.roots.len() as f32;
    if r.targets == 1 {
        let origin = if r.base.len() == 1 { r.base[0] } else { 0.0 };
        let v = match r.aggregate {
            Aggregate::Sum => value[0] + origin,
            Aggregate::Average => value[0] / trees + origin,
            Aggregate::Min | Aggregate::Max if has[0] => value[0] + origin,
            Aggregate::Min | Aggregate::Max => origin,
        };
        out[0] = if r.transform == Transform::Probit {
            probit(v)
        } else {
            v
        };
        return;
    }
    let use_base = r.base.len() == r.targets;
    for k in 0..r.targets {
        let base = if use_base { r.base[k] } else { 0.0 };
        out[k] = match r.aggregate {
            Aggregate::Sum => value[k] + base,
            Aggregate::Average => value[k] / trees + base,
            Aggregate::Min | Aggregate::Max => base + if has[k] { value[k] } else { 0.0 },
        };
    }
    r.transform.apply(out);
}
