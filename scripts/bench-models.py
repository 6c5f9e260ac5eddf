#!/usr/bin/env python3
"""Make small ONNX benchmark models and time them in onnxruntime (the baseline for tract).

  python3 scripts/bench-models.py make OUT_DIR    write linear.onnx, mlp.onnx, cnn.onnx
  python3 scripts/bench-models.py ort MODELS_DIR  time them in onnxruntime, one JSON line per case

Models (opset 13, IR 8, one FP32 input `features` with symbolic first dimension N, one output
`probabilities`; weights are seeded numpy normals, so output is byte-for-byte deterministic):
  linear.onnx  [N,30] -> MatMul(30x2)+Add -> Softmax(axis=1) -> [N,2]  (our logistic-regression
               export without the ArgMax, so both engines do the same work)
  mlp.onnx     [N,30] -> (MatMul+Add, Relu) 30->64->64 -> MatMul(64x2)+Add -> Softmax -> [N,2]
  logreg.onnx  (not made here) the bundled logistic-regression trainer's own export, written by
               `cargo bench -p aimass --bench models -- logreg DIR`: MatMul+Add -> Sigmoid pair,
               ArgMax -> Gather; timed when present
  mlp2.onnx    the same MLP with the bundled trainers' two-class head: last layer rewritten to
               (a - b, b - a), then Sigmoid (same probabilities as mlp.onnx)
  cnn.onnx     [N,1,28,28] -> Conv(8,3x3,pad 1)+Relu -> MaxPool 2x2 -> Conv(16,3x3,pad 1)+Relu
               -> MaxPool 2x2 -> Flatten -> Gemm(784->10) -> Softmax -> [N,10]

`ort` runs each (model, batch) case single-threaded (intra_op = inter_op = 1) on a fixed
seeded input: ~1 s warm-up, then ~3 s of sess.run calls, each timed with time.perf_counter_ns.
Output, one line per case:
 {"engine":"onnxruntime","model":"mlp","batch":1,"median_us":..,"mean_us":..,"p99_us":..,"iters":..}

Needs: pip install numpy onnx onnxruntime
"""
import json
import pathlib
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CASES = [("linear", 1), ("linear", 1024), ("logreg", 1), ("logreg", 1024), ("mlp", 1), ("mlp", 1024),
         ("mlp2", 1), ("mlp2", 1024),
         ("cnn", 1), ("cnn", 64)]
SHAPES = {"linear": [30], "logreg": [30], "mlp": [30], "mlp2": [30], "cnn": [1, 28, 28]}


def build(name, in_shape, n_out, nodes, weights, seed_used):
    inp = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", *in_shape])
    out = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", n_out])
    inits = [numpy_helper.from_array(w.astype(np.float32), k) for k, w in weights.items()]
    graph = helper.make_graph(nodes, name, [inp], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="aimass-bench", doc_string=f"seed {seed_used}")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def dense_chain(name, sizes, seed, sigmoid_pair=False):
    """MatMul+Add layers with Relu between them, then Softmax(axis=1) — or, with sigmoid_pair,
    the bundled trainers' two-class head: the last layer rewritten to (a - b, b - a) and a
    Sigmoid, which gives the same probabilities as the Softmax."""
    rng = np.random.default_rng(seed)
    nodes, weights, x = [], {}, "features"
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        weights[f"W{i}"] = rng.normal(0, np.sqrt(2 / a), (a, b))
        weights[f"B{i}"] = rng.normal(0, 0.1, (b,))
        nodes += [helper.make_node("MatMul", [x, f"W{i}"], [f"mm{i}"]),
                  helper.make_node("Add", [f"mm{i}", f"B{i}"], [f"z{i}"])]
        x = f"z{i}"
        if i < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [x], [f"h{i}"]))
            x = f"h{i}"
    if sigmoid_pair:
        last = len(sizes) - 2
        w, bias = weights[f"W{last}"], weights[f"B{last}"]
        d, db = w[:, 1] - w[:, 0], bias[1] - bias[0]
        weights[f"W{last}"] = np.stack([-d, d], axis=1)
        weights[f"B{last}"] = np.array([-db, db])
        nodes.append(helper.make_node("Sigmoid", [x], ["probabilities"]))
    else:
        nodes.append(helper.make_node("Softmax", [x], ["probabilities"], axis=1))
    return build(name, [sizes[0]], sizes[-1], nodes, weights, seed)


def cnn(seed):
    rng = np.random.default_rng(seed)
    w = {"C1": rng.normal(0, np.sqrt(2 / 9), (8, 1, 3, 3)), "C1b": rng.normal(0, 0.1, (8,)),
         "C2": rng.normal(0, np.sqrt(2 / 72), (16, 8, 3, 3)), "C2b": rng.normal(0, 0.1, (16,)),
         "G": rng.normal(0, np.sqrt(1 / 784), (16 * 7 * 7, 10)), "Gb": rng.normal(0, 0.1, (10,))}
    conv = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
    pool = dict(kernel_shape=[2, 2], strides=[2, 2])
    n = helper.make_node
    nodes = [n("Conv", ["features", "C1", "C1b"], ["c1"], **conv), n("Relu", ["c1"], ["r1"]),
             n("MaxPool", ["r1"], ["p1"], **pool),
             n("Conv", ["p1", "C2", "C2b"], ["c2"], **conv), n("Relu", ["c2"], ["r2"]),
             n("MaxPool", ["r2"], ["p2"], **pool),
             n("Flatten", ["p2"], ["flat"], axis=1),
             n("Gemm", ["flat", "G", "Gb"], ["logits"]),
             n("Softmax", ["logits"], ["probabilities"], axis=1)]
    return build("cnn", [1, 28, 28], 10, nodes, w, seed)


def session(path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def make(out_dir):
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    models = {"linear": dense_chain("linear", [30, 2], 1),
              "mlp": dense_chain("mlp", [30, 64, 64, 2], 2),
              "mlp2": dense_chain("mlp2", [30, 64, 64, 2], 2, sigmoid_pair=True), "cnn": cnn(3)}
    for name, model in models.items():
        path = out / f"{name}.onnx"
        onnx.save(model, path)
        x = np.random.default_rng(0).standard_normal((3, *SHAPES[name]), dtype=np.float32)
        (p,) = session(path).run(None, {"features": x})
        assert p.shape == (3, model.graph.output[0].type.tensor_type.shape.dim[1].dim_value)
        assert np.allclose(p.sum(axis=1), 1, atol=1e-5)
        print(f"wrote {path}: {path.stat().st_size} bytes, ort output {p.shape} ok")


def bench(models_dir):
    for name, batch in CASES:
        if not (pathlib.Path(models_dir) / f"{name}.onnx").exists():
            continue  # logreg.onnx is written by the Rust `logreg` bench (the trainer's own model)
        sess = session(pathlib.Path(models_dir) / f"{name}.onnx")
        feed = {"features": np.random.default_rng(42).standard_normal(
            (batch, *SHAPES[name]), dtype=np.float32)}
        end = time.perf_counter() + 1.0  # warm-up
        while time.perf_counter() < end:
            sess.run(None, feed)
        times, end = [], time.perf_counter_ns() + 3_000_000_000
        while True:
            t0 = time.perf_counter_ns()
            sess.run(None, feed)
            t1 = time.perf_counter_ns()
            times.append(t1 - t0)
            if t1 >= end:
                break
        us = np.array(times) / 1e3
        print(json.dumps({"engine": "onnxruntime", "model": name, "batch": batch,
                          "median_us": round(float(np.median(us)), 3),
                          "mean_us": round(float(us.mean()), 3),
                          "p99_us": round(float(np.percentile(us, 99)), 3),
                          "iters": len(us)}, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("make", "ort"):
        sys.exit(__doc__)
    (make if sys.argv[1] == "make" else bench)(sys.argv[2])
