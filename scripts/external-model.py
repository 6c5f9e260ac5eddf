"""Write tests/data/sklearn-iris-logreg.onnx, a model trained and exported outside this project,
and tests/data/sklearn-iris-logreg.json, what onnxruntime makes of it: input and output names and
types, and for 15 iris rows of every class (PICK) the features (float32), the predicted label and the class
probabilities. The host's ONNX support is checked against these.

The model: scikit-learn LogisticRegression(max_iter=1000) fitted on all 150 rows of
examples/data/iris.csv (written by scripts/datasets.py), exported with skl2onnx (opset 13,
no ZipMap, so the outputs are plain tensors: `label` int64 [N], `probabilities` float32 [N, 3]).

Usage: pip install scikit-learn skl2onnx onnxruntime && python3 scripts/external-model.py
"""

import csv
import json
import pathlib

import numpy as np
import onnxruntime as ort
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data"

with open(ROOT / "examples" / "data" / "iris.csv", newline="") as f:
    rows = list(csv.reader(f))[1:]
X = np.array([[float(v) for v in r[:4]] for r in rows])
y = np.array([int(r[4]) for r in rows])

model = LogisticRegression(max_iter=1000).fit(X, y)
onx = to_onnx(model, X[:1].astype(np.float32), options={id(model): {"zipmap": False}}, target_opset=13)
(OUT / "sklearn-iris-logreg.onnx").write_bytes(onx.SerializeToString())

sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
# Rows of every class, and the ones nearest the versicolor/virginica boundary.
PICK = [0, 1, 2, 50, 51, 52, 70, 77, 83, 100, 106, 119, 129, 133, 134]
x10 = X[PICK].astype(np.float32)
label, proba = sess.run(None, {sess.get_inputs()[0].name: x10})
io = lambda args: [{"name": a.name, "type": a.type, "shape": a.shape} for a in args]
out = {
    "versions": {m.__name__: m.__version__ for m in map(__import__, ["sklearn", "skl2onnx", "onnx", "onnxruntime", "numpy"])},
    "inputs": io(sess.get_inputs()),
    "outputs": io(sess.get_outputs()),
    "rows": [
        {"features": [float(v) for v in x], "label": int(l), "probabilities": [float(p) for p in ps]}
        for x, l, ps in zip(x10, label, proba)
    ],
}
(OUT / "sklearn-iris-logreg.json").write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {OUT}/sklearn-iris-logreg.onnx and .json")
