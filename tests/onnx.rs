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

#[test]
fn bundled_linear_export_gives_softmax_probabilities_with_sigmoid_for_two_classes() {
    use aimass_plugin_sdk::learn::Classes;
    use aimass_plugin_sdk::learn::export::linear_classifier;
    let features: Vec<String> = vec!["a".into(), "b".into()];
    let x = vec![1.0f32, 2.0, -3.0, 0.5, 0.0, 0.0];
    let softmax = |z: &[f64]| {
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = z.iter().map(|v| (v - m).exp()).sum();
        z.iter().map(|v| (v - m).exp() / s).collect::<Vec<_>>()
    };
    // Two classes given as two columns, one column (the logit of class 1), and three classes.
    let cases: [(Vec<f64>, Vec<f64>, Vec<i64>); 3] = [
        (vec![0.3, -0.2, 1.0, 0.5], vec![0.1, -0.4], vec![0, 1]),
        (vec![0.7, -0.5], vec![0.25], vec![3, 9]),
        (
            vec![0.3, -0.2, 1.0, 0.5, 0.0, 2.0],
            vec![0.1, -0.4, 0.0],
            vec![0, 1, 2],
        ),
    ];
    for (w, b, classes) in cases {
        let k = classes.len();
        let g = linear_classifier("t", &features, "y", &Classes(classes.clone()), &w, &b);
        let ops: Vec<String> = g
            .model()
            .graph
            .unwrap()
            .node
            .into_iter()
            .map(|n| n.op_type)
            .collect();
        // Two classes avoid tract's slow Softmax and ArgMax (see learn::export::sigmoid_pair).
        let two = k == 2;
        assert_eq!(ops.contains(&"Sigmoid".to_string()), two, "{ops:?}");
        assert_eq!(ops.contains(&"Softmax".to_string()), !two, "{ops:?}");
        assert_eq!(ops.contains(&"ArgMax".to_string()), !two, "{ops:?}");
        let out = run(&g.build(), 3, 2, x.clone());
        let labels = out[0].to_plain_array_view::<i64>().unwrap();
        let p = out[1].to_plain_array_view::<f32>().unwrap();
        for r in 0..3 {
            let (x0, x1) = (f64::from(x[2 * r]), f64::from(x[2 * r + 1]));
            let z: Vec<f64> = if b.len() == 1 {
                vec![0.0, x0 * w[0] + x1 * w[1] + b[0]]
            } else {
                (0..k).map(|j| x0 * w[j] + x1 * w[k + j] + b[j]).collect()
            };
            let want = softmax(&z);
            for j in 0..k {
                assert!(
                    (f64::from(p[[r, j]]) - want[j]).abs() < 1e-6,
                    "row {r} class {j}: {} vs {}",
                    p[[r, j]],
                    want[j]
                );
            }
            let best = (0..k).max_by(|a, b| want[*a].total_cmp(&want[*b])).unwrap();
            assert_eq!(labels[r], classes[best]);
        }
    }
}
