//! ONNX graphs of linear models, shared by the linear trainers (and the MLP's output layer).
//!
//! Every bundled model takes one FP32 input `features` of shape `[N, F]`. Classifiers output
//! `label` (INT64 `[N]`, the class value) and `probabilities` (FP32 `[N, K]`, in the order of the
//! `classes` metadata); regressors output `prediction` (FP32 `[N]`). Metadata keys: `task`,
//! `features`, `label`, and `classes` for classifiers.

use super::data::Classes;
use crate::onnx::{Attr, Dim, ElemType, GraphBuilder, attr};

/// Name of the feature input of every bundled model.
pub const INPUT: &str = "features";

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// A graph with the `features` input and the task metadata.
pub fn graph(name: &str, task: &str, features: &[String], label: &str) -> GraphBuilder {
    let mut g = GraphBuilder::new(name);
    g.input(
        INPUT,
        ElemType::F32,
        &[Dim::named("N"), Dim::Fixed(features.len() as i64)],
    )
    .metadata("task", task)
    .metadata("features", &features.join(","))
    .metadata("label", label);
    g
}

/// Rewrite the weights `w` (`rows × 2`, row-major) and biases `b` of a two-class output layer so
/// that an element-wise Sigmoid of its outputs equals the Softmax of the original ones:
/// `softmax(a, b) = (σ(a − b), σ(b − a))`. tract runs Sigmoid through a vectorised kernel but
/// Softmax and ArgMax through generic code, several times slower on two-column rows (measured in
/// BENCHMARKS.md).
pub fn sigmoid_pair(w: &mut [f64], b: &mut [f64]) {
    assert_eq!((w.len() % 2, b.len()), (0, 2), "two outputs");
    for pair in w.chunks_exact_mut(2).chain(std::iter::once(b)) {
        let d = pair[1] - pair[0];
        pair[0] = -d;
        pair[1] = d;
    }
}

/// Append the classifier head to `g` after `logits` (`[N, K]`, already in the graph), giving
/// `probabilities` (FP32 `[N, K]`) and `label` (INT64 `[N]`, `classes[argmax]`).
///
/// Three or more classes: Softmax, ArgMax, Gather. Two classes (logits prepared with
/// [`sigmoid_pair`]): Sigmoid, and the label index is `p₁ > p₀` — ArgMax's answer for two
/// columns, ties included (both pick class 0).
pub fn classifier_head(g: &mut GraphBuilder, logits: &str, classes: &Classes) {
    let k = classes.len() as i64;
    g.initializer_i64("classes", &[k], &classes.0);
    if k == 2 {
        g.initializer_i64("column_0", &[], &[0])
            .initializer_i64("column_1", &[], &[1])
            .node("Sigmoid", &[logits], &["probabilities"], vec![])
            .node(
                "Gather",
                &["probabilities", "column_0"],
                &["p0"],
                vec![attr("axis", Attr::Int(1))],
            )
            .node(
                "Gather",
                &["probabilities", "column_1"],
                &["p1"],
                vec![attr("axis", Attr::Int(1))],
            )
            .node("Greater", &["p1", "p0"], &["is_1"], vec![])
            .node(
                "Cast",
                &["is_1"],
                &["class_index"],
                vec![attr("to", Attr::Int(7))],
            );
    } else {
        g.node(
            "Softmax",
            &[logits],
            &["probabilities"],
            vec![attr("axis", Attr::Int(1))],
        )
        .node(
            "ArgMax",
            &["probabilities"],
            &["class_index"],
            vec![attr("axis", Attr::Int(1)), attr("keepdims", Attr::Int(0))],
        );
    }
    g.node(
        "Gather",
        &["classes", "class_index"],
        &["label"],
        vec![attr("axis", Attr::Int(0))],
    )
    .output("label", ElemType::I64, &[Dim::named("N")])
    .output(
        "probabilities",
        ElemType::F32,
        &[Dim::named("N"), Dim::Fixed(k)],
    )
    .metadata("classes", &classes.to_csv());
}

/// `probabilities = softmax(features · w + b)` with `w` of `F × K` (row-major) and `b` of `K`.
/// A binary model may pass `K = 1` (the logit of the second class): it is widened to
/// `[0, z]`, whose softmax is `[1 − σ(z), σ(z)]`. Two-class layers go through [`sigmoid_pair`].
pub fn linear_classifier(
    name: &str,
    features: &[String],
    label: &str,
    classes: &Classes,
    w: &[f64],
    b: &[f64],
) -> GraphBuilder {
    let f = features.len();
    let (mut w, mut b) = if b.len() == 1 && classes.len() == 2 {
        let mut wide = Vec::with_capacity(2 * f);
        w.iter().for_each(|v| wide.extend([0.0, *v]));
        (wide, vec![0.0, b[0]])
    } else {
        (w.to_vec(), b.to_vec())
    };
    if b.len() == 2 {
        sigmoid_pair(&mut w, &mut b);
    }
    let k = b.len();
    assert_eq!(
        (w.len(), k),
        (f * classes.len(), classes.len()),
        "weights fit the classes"
    );
    let mut g = graph(name, "classification", features, label);
    g.initializer_f32("weights", &[f as i64, k as i64], &to_f32(&w))
        .initializer_f32("bias", &[k as i64], &to_f32(&b))
        .node("MatMul", &[INPUT, "weights"], &["product"], vec![])
        .node("Add", &["product", "bias"], &["logits"], vec![]);
    classifier_head(&mut g, "logits", classes);
    g
}

/// `prediction = features · w + b` with `w` of `F`.
pub fn linear_regressor(
    name: &str,
    features: &[String],
    label: &str,
    w: &[f64],
    b: f64,
) -> GraphBuilder {
    assert_eq!(w.len(), features.len(), "one weight per feature");
    let mut g = graph(name, "regression", features, label);
    g.initializer_f32("weights", &[w.len() as i64], &to_f32(w))
        .initializer_f32("bias", &[1], &[b as f32])
        .node("MatMul", &[INPUT, "weights"], &["product"], vec![])
        .node("Add", &["product", "bias"], &["prediction"], vec![])
        .output("prediction", ElemType::F32, &[Dim::named("N")]);
    g
}

/// One fully connected layer: `y = x · w + b`, `w` of `inputs × outputs` (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    pub w: Vec<f64>,
    pub b: Vec<f64>,
    pub inputs: usize,
    pub outputs: usize,
}

/// Hidden layers (each followed by Relu) from `features`; returns the last hidden tensor.
fn hidden(g: &mut GraphBuilder, layers: &[Dense]) -> String {
    let mut x = INPUT.to_string();
    for (i, l) in layers.iter().enumerate() {
        assert_eq!(l.w.len(), l.inputs * l.outputs, "layer {i} weights");
        let (w, b, z0, z, h) = (
            format!("w{i}"),
            format!("b{i}"),
            format!("z{i}_0"),
            format!("z{i}"),
            format!("h{i}"),
        );
        g.initializer_f32(&w, &[l.inputs as i64, l.outputs as i64], &to_f32(&l.w))
            .initializer_f32(&b, &[l.outputs as i64], &to_f32(&l.b))
            .node("MatMul", &[&x, &w], &[&z0], vec![])
            .node("Add", &[&z0, &b], &[&z], vec![])
            .node("Relu", &[&z], &[&h], vec![]);
        x = h;
    }
    x
}

/// An MLP classifier: Relu hidden layers, then `out` (`H × K`) → the classifier head.
pub fn mlp_classifier(
    name: &str,
    features: &[String],
    label: &str,
    classes: &Classes,
    layers: &[Dense],
    out: &Dense,
) -> GraphBuilder {
    let mut g = graph(name, "classification", features, label);
    let h = hidden(&mut g, layers);
    let mut out = out.clone();
    if out.outputs == 2 {
        sigmoid_pair(&mut out.w, &mut out.b);
    }
    g.initializer_f32(
        "w_out",
        &[out.inputs as i64, out.outputs as i64],
        &to_f32(&out.w),
    )
    .initializer_f32("b_out", &[out.outputs as i64], &to_f32(&out.b))
    .node("MatMul", &[&h, "w_out"], &["product"], vec![])
    .node("Add", &["product", "b_out"], &["logits"], vec![]);
    classifier_head(&mut g, "logits", classes);
    g
}

/// An MLP regressor: Relu hidden layers, then `out` (`H × 1`) → `prediction` `[N]`.
pub fn mlp_regressor(
    name: &str,
    features: &[String],
    label: &str,
    layers: &[Dense],
    out: &Dense,
) -> GraphBuilder {
    assert_eq!(out.outputs, 1, "one output");
    let mut g = graph(name, "regression", features, label);
    let h = hidden(&mut g, layers);
    g.initializer_f32("w_out", &[out.inputs as i64], &to_f32(&out.w))
        .initializer_f32("b_out", &[1], &to_f32(&out.b))
        .node("MatMul", &[&h, "w_out"], &["product"], vec![])
        .node("Add", &["product", "b_out"], &["prediction"], vec![])
        .output("prediction", ElemType::F32, &[Dim::named("N")]);
    g
}
