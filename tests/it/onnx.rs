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
    let _turn = crate::common::serial::together_blocking();
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
    let _turn = crate::common::serial::together_blocking();
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
    let _turn = crate::common::serial::together_blocking();
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

/// A one-channel 3×3 image through a 2×2 convolution (no padding) and a Relu: [N,1,3,3] → [N,1,2,2].
fn conv_model() -> Vec<u8> {
    let mut g = GraphBuilder::new("conv");
    g.input(
        "image",
        ElemType::F32,
        &[Dim::named("N"), Dim::Fixed(1), Dim::Fixed(3), Dim::Fixed(3)],
    )
    .initializer_f32("k", &[1, 1, 2, 2], &[1.0, -1.0, 0.5, 2.0])
    .initializer_f32("kb", &[1], &[-1.0])
    .node(
        "Conv",
        &["image", "k", "kb"],
        &["c"],
        vec![attr("kernel_shape", Attr::Ints(vec![2, 2]))],
    )
    .node("Relu", &["c"], &["out"], vec![])
    .output(
        "out",
        ElemType::F32,
        &[Dim::named("N"), Dim::Fixed(1), Dim::Fixed(2), Dim::Fixed(2)],
    );
    g.build()
}

/// What `conv_model` computes for one 3×3 image, by hand.
fn conv_by_hand(img: &[f32]) -> Vec<f32> {
    let k = [1.0f32, -1.0, 0.5, 2.0];
    let mut out = Vec::new();
    for y in 0..2 {
        for x in 0..2 {
            let at = |dy: usize, dx: usize| img[(y + dy) * 3 + x + dx];
            let v = at(0, 0) * k[0] + at(0, 1) * k[1] + at(1, 0) * k[2] + at(1, 1) * k[3] - 1.0;
            out.push(v.max(0.0));
        }
    }
    out
}

#[test]
fn convolutional_models_serve_one_row_requests_from_a_plan_of_their_own() {
    let _turn = crate::common::serial::together_blocking();
    use aimass::models::onnx::load;
    let model = load(&conv_model()).expect("the host loads the conv model");
    assert!(
        model.has_single_row_plan(),
        "a Conv model gets a batch-1 plan"
    );
    assert_eq!(model.signature.inputs[0].shape, vec![-1, 1, 3, 3]);

    let images: Vec<f32> = (0..27).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
    let tensor = |rows: usize, x: &[f32]| -> TValue {
        Tensor::from_shape(&[rows, 1, 3, 3], x).unwrap().into()
    };
    // Three rows go through the symbolic plan, each row alone through the batch-1 plan: both
    // give what the graph defines.
    let all = model.run(tvec!(tensor(3, &images))).unwrap();
    let all = all[0].to_plain_array_view::<f32>().unwrap();
    assert_eq!(all.shape(), &[3, 1, 2, 2]);
    for r in 0..3 {
        let img = &images[r * 9..(r + 1) * 9];
        let want = conv_by_hand(img);
        let one = model.run(tvec!(tensor(1, img))).unwrap();
        let one = one[0].to_plain_array_view::<f32>().unwrap();
        assert_eq!(one.shape(), &[1, 1, 2, 2]);
        let got_one: Vec<f32> = one.iter().copied().collect();
        let got_all: Vec<f32> = all.as_slice().unwrap()[r * 4..(r + 1) * 4].to_vec();
        for i in 0..4 {
            assert!(
                (got_one[i] - want[i]).abs() < 1e-5,
                "row {r}: {got_one:?} vs {want:?}"
            );
            assert!(
                (got_all[i] - want[i]).abs() < 1e-5,
                "row {r}: {got_all:?} vs {want:?}"
            );
        }
    }
    // A request with the wrong shape is still refused, whichever plan it would meet.
    let wrong: TValue = Tensor::from_shape(&[1, 1, 4, 4], &[0f32; 16])
        .unwrap()
        .into();
    assert!(model.run(tvec!(wrong)).is_err());
}

#[test]
fn dense_models_keep_a_single_plan() {
    let _turn = crate::common::serial::together_blocking();
    use aimass::models::onnx::load;
    let mut g = GraphBuilder::new("dense");
    g.input("features", ElemType::F32, &[Dim::named("N"), Dim::Fixed(2)])
        .initializer_f32("w", &[2, 1], &[1.0, 2.0])
        .node("MatMul", &["features", "w"], &["y"], vec![])
        .output("y", ElemType::F32, &[Dim::named("N"), Dim::Fixed(1)]);
    let model = load(&g.build()).unwrap();
    assert!(!model.has_single_row_plan());
}
