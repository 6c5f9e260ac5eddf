//! Models built with the guest SDK's ONNX builder load, optimise and run in tract — the engine
//! the host serves models with — with a symbolic batch dimension, giving the numbers the graph
//! defines.

use aimass_plugin_sdk::onnx::{Attr, Dim, ElemType, GraphBuilder, attr};
use tract_onnx::prelude::*;

fn run(bytes: &[u8], rows: usize, cols: usize, x: Vec<f32>) -> TVec<TValue> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(bytes))
        .expect("tract reads the model")
        .into_optimized()
        .expect("tract optimises it")
        .into_runnable()
        .expect("and makes it runnable");
    let input = tract_ndarray::Array2::from_shape_vec((rows, cols), x).unwrap();
    model.run(tvec!(Tensor::from(input).into())).unwrap()
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

#[test]
fn binary_logistic_model_runs_in_tract() {
    let (w, b) = ([0.5f32, -1.0, 2.0], 0.25f32);
    let mut g = GraphBuilder::new("logreg");
    g.input("features", ElemType::F32, &[Dim::named("N"), Dim::Fixed(3)])
        .initializer_f32("w", &[3, 1], &w)
        .initializer_f32("b", &[1], &[b])
        .node("MatMul", &["features", "w"], &["z0"], vec![])
        .node("Add", &["z0", "b"], &["z"], vec![])
        .node("Sigmoid", &["z"], &["probability"], vec![])
        .output(
            "probability",
            ElemType::F32,
            &[Dim::named("N"), Dim::Fixed(1)],
        );
    let x = vec![1.0, 2.0, 3.0, -1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 4.0, 4.0, 4.0];
    for rows in [1, 4] {
        let out = run(&g.build(), rows, 3, x[..rows * 3].to_vec());
        let p = out[0].to_plain_array_view::<f32>().unwrap();
        assert_eq!(p.shape(), &[rows, 1]);
        for r in 0..rows {
            let z: f32 = (0..3).map(|c| x[r * 3 + c] * w[c]).sum::<f32>() + b;
            assert!((p[[r, 0]] - sigmoid(z)).abs() < 1e-6, "row {r}");
        }
    }
}

#[test]
fn multiclass_model_with_attributes_runs_in_tract() {
    // Gemm (transB) + Softmax(axis 1) + ArgMax(axis 1, keepdims 0): probabilities and labels.
    let w_t = [1.0f32, 0.0, 0.0, 1.0, -1.0, -1.0]; // [3 classes, 2 features]
    let bias = [0.0f32, 0.5, 0.0];
    let mut g = GraphBuilder::new("softmax");
    g.input("features", ElemType::F32, &[Dim::named("N"), Dim::Fixed(2)])
        .initializer_f32("w", &[3, 2], &w_t)
        .initializer_f32("b", &[3], &bias)
        .node(
            "Gemm",
            &["features", "w", "b"],
            &["logits"],
            vec![attr("transB", Attr::Int(1))],
        )
        .node(
            "Softmax",
            &["logits"],
            &["probabilities"],
            vec![attr("axis", Attr::Int(1))],
        )
        .node(
            "ArgMax",
            &["probabilities"],
            &["label"],
            vec![attr("axis", Attr::Int(1)), attr("keepdims", Attr::Int(0))],
        )
        .output(
            "probabilities",
            ElemType::F32,
            &[Dim::named("N"), Dim::Fixed(3)],
        )
        .output("label", ElemType::I64, &[Dim::named("N")]);
    let x = vec![3.0, 0.0, 0.0, 3.0, -3.0, -3.0];
    let out = run(&g.build(), 3, 2, x.clone());
    let p = out[0].to_plain_array_view::<f32>().unwrap();
    let labels = out[1].to_plain_array_view::<i64>().unwrap();
    assert_eq!(labels.as_slice().unwrap(), &[0, 1, 2]);
    for r in 0..3 {
        let logits: Vec<f32> = (0..3)
            .map(|c| x[r * 2] * w_t[c * 2] + x[r * 2 + 1] * w_t[c * 2 + 1] + bias[c])
            .collect();
        let sum: f32 = logits.iter().map(|l| l.exp()).sum();
        for c in 0..3 {
            assert!(
                (p[[r, c]] - logits[c].exp() / sum).abs() < 1e-6,
                "row {r} class {c}"
            );
        }
    }
}
