"""Write tests/data/zoo/: the scikit-learn models a tabular user exports, as ONNX, and what
onnxruntime makes of each on held-out rows. The host's ONNX-ML support is checked against these
(tests/it/zoo.rs): every model is uploaded, served, and its outputs compared with onnxruntime's.

For each model NAME:
- NAME.onnx: exported with skl2onnx (opset 17, ai.onnx.ml 3), or onnxmltools for XGBoost and
  LightGBM; `zipmap` off unless NAME ends in `-zipmap`;
- NAME.json: the input and output names, OIP datatypes and shapes, the held-out rows sent
  (`null` marks a missing value) and onnxruntime's outputs on them (`null` for a value that is
  not finite, which JSON cannot carry). A ZipMap output (a list of
  maps, which the Open Inference Protocol cannot carry) is stored as the probabilities tensor
  it maps, which is how the host serves it.

Models are small (a few trees of modest depth) so the zoo stays a few MB; the tree benchmark
builds its own larger ensembles.

Usage: pip install scikit-learn skl2onnx onnxruntime onnxmltools xgboost lightgbm
       python3 scripts/sklearn-zoo.py
"""

import json
import pathlib
import sys

import numpy as np
import onnx
import onnx.helper
import onnxruntime as ort
from skl2onnx import to_onnx
from sklearn import datasets
from sklearn.base import is_classifier
from sklearn.ensemble import (ExtraTreesClassifier, ExtraTreesRegressor,
                              GradientBoostingClassifier, GradientBoostingRegressor,
                              HistGradientBoostingClassifier, HistGradientBoostingRegressor,
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import (ElasticNet, Lasso, LinearRegression, LogisticRegression,
                                  Ridge, SGDClassifier)
from sklearn.naive_bayes import BernoulliNB, GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (Binarizer, MaxAbsScaler, MinMaxScaler, Normalizer,
                                   OneHotEncoder, PolynomialFeatures, RobustScaler,
                                   StandardScaler)
from sklearn.svm import SVC, SVR, LinearSVC, LinearSVR, NuSVC, NuSVR, OneClassSVM
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

# skl2onnx 1.20 hands onnx a list of bools for HistGradientBoosting's
# `nodes_missing_value_tracks_true` with scikit-learn 1.9 (bools among ints), which onnx refuses; they are ints.
_make_attribute = onnx.helper.make_attribute


def _make_attribute_ints(key, value, *args, **kwargs):
    if isinstance(value, list) and any(isinstance(v, (bool, np.bool_)) for v in value):
        value = [int(v) for v in value]
    return _make_attribute(key, value, *args, **kwargs)


onnx.helper.make_attribute = _make_attribute_ints

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "zoo"
HELD_OUT = 40
OPSET = {"": 17, "ai.onnx.ml": 3}
DTYPES = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "int32": "INT32",
          "bool": "BOOL", "object": "BYTES", "str": "BYTES"}


def data(kind, seed=0):
    """(X_train, y_train, X_test) as float32; the test rows are held out."""
    if kind == "binary":
        X, y = datasets.make_classification(300, 6, n_informative=4, random_state=seed)
    elif kind == "multi":
        X, y = datasets.make_classification(400, 6, n_informative=4, n_classes=3,
                                            random_state=seed)
    elif kind == "regression":
        X, y = datasets.make_regression(300, 6, noise=5.0, random_state=seed)
    elif kind == "two-targets":
        X, y = datasets.make_regression(300, 6, n_targets=2, noise=5.0, random_state=seed)
    elif kind == "counts":  # small non-negative integers: one-hot and Bernoulli inputs
        rng = np.random.default_rng(seed)
        X = rng.integers(0, 4, size=(300, 4)).astype(float)
        y = ((X[:, 0] + X[:, 1] * 2 + rng.integers(0, 2, 300)) % 3).astype(int)
    else:
        raise ValueError(kind)
    X = X.astype(np.float32)
    return X[:-HELD_OUT], y[:-HELD_OUT], X[-HELD_OUT:]


def strings(y):
    """Class labels as strings, to exercise `classlabels_strings`."""
    names = np.array(["setosa", "versicolor", "virginica"])
    return names[y]


def with_missing(X, seed=1):
    """Every fifth value of the first two columns missing."""
    X = X.copy()
    X[::5, 0] = np.nan
    X[2::5, 1] = np.nan
    return X


def zoo():
    """(name, estimator, problem, label transform, X transform)."""
    same = lambda a: a
    yield "logreg-binary", LogisticRegression(max_iter=500), "binary", same, same
    yield "logreg-multi", LogisticRegression(max_iter=500), "multi", same, same
    yield "logreg-strings", LogisticRegression(max_iter=500), "multi", strings, same
    yield "logreg-multi-zipmap", LogisticRegression(max_iter=500), "multi", same, same
    yield "sgd-binary", SGDClassifier(random_state=0), "binary", same, same
    yield "linear-svc-multi", LinearSVC(), "multi", same, same
    yield "linear-regression", LinearRegression(), "regression", same, same
    yield "ridge", Ridge(), "regression", same, same
    yield "lasso", Lasso(alpha=0.5), "regression", same, same
    yield "elastic-net", ElasticNet(alpha=0.5), "regression", same, same
    yield "linear-svr", LinearSVR(max_iter=5000, random_state=0), "regression", same, same
    yield "svc-rbf-binary", SVC(probability=True, random_state=0), "binary", same, same
    yield "svc-rbf-multi", SVC(probability=True, random_state=0), "multi", same, same
    yield "svc-linear-multi", SVC(kernel="linear"), "multi", same, same
    yield "svc-poly-binary", SVC(kernel="poly", degree=3), "binary", same, same
    yield "svc-sigmoid-multi", SVC(kernel="sigmoid", probability=True, random_state=0), "multi", same, same
    yield "svc-rbf-strings", SVC(probability=True, random_state=0), "multi", strings, same
    yield "nu-svc-multi", NuSVC(probability=True, random_state=0), "multi", same, same
    yield "one-class-svm", OneClassSVM(gamma="scale", nu=0.1), "binary", same, same
    yield "svr-rbf", SVR(C=10.0), "regression", same, same
    yield "nu-svr", NuSVR(C=10.0), "regression", same, same
    yield "svr-poly", SVR(kernel="poly", C=10.0), "regression", same, same
    yield "tree-binary", DecisionTreeClassifier(max_depth=6, random_state=0), "binary", same, same
    yield "tree-strings", DecisionTreeClassifier(max_depth=6, random_state=0), "multi", strings, same
    yield "tree-regressor", DecisionTreeRegressor(max_depth=6, random_state=0), "regression", same, same
    rf = lambda: RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0)
    yield "forest-binary", rf(), "binary", same, same
    yield "forest-multi", rf(), "multi", same, same
    yield "forest-strings", rf(), "multi", strings, same
    yield "forest-binary-zipmap", rf(), "binary", same, same
    yield "forest-regressor-two-targets", RandomForestRegressor(n_estimators=10, max_depth=6, random_state=0), "two-targets", same, same
    yield "forest-regressor", RandomForestRegressor(n_estimators=10, max_depth=6, random_state=0), "regression", same, same
    yield "extra-trees-binary", ExtraTreesClassifier(n_estimators=10, max_depth=6, random_state=0), "binary", same, same
    yield "extra-trees-regressor", ExtraTreesRegressor(n_estimators=10, max_depth=6, random_state=0), "regression", same, same
    gb = lambda: GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0)
    yield "gradient-boosting-binary", gb(), "binary", same, same
    yield "gradient-boosting-multi", gb(), "multi", same, same
    yield "gradient-boosting-regressor", GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0), "regression", same, same
    yield "hist-gradient-boosting-binary", HistGradientBoostingClassifier(max_iter=20, random_state=0), "binary", same, same
    yield "hist-gradient-boosting-multi", HistGradientBoostingClassifier(max_iter=20, random_state=0), "multi", same, same
    yield "hist-gradient-boosting-regressor", HistGradientBoostingRegressor(max_iter=20, random_state=0), "regression", same, same
    yield "knn-multi", KNeighborsClassifier(5), "multi", same, same
    yield "knn-regressor", KNeighborsRegressor(5), "regression", same, same
    yield "gaussian-nb-multi", GaussianNB(), "multi", same, same
    yield "bernoulli-nb-multi", BernoulliNB(), "counts", same, same
    yield "mlp-multi", MLPClassifier((16,), max_iter=300, random_state=0), "multi", same, same
    yield "mlp-regressor", MLPRegressor(hidden_layer_sizes=(16,), max_iter=500, random_state=0), "regression", same, same
    lr = lambda: LogisticRegression(max_iter=500)
    yield "standard-scaler-logreg", make_pipeline(StandardScaler(), lr()), "multi", same, same
    yield "min-max-scaler-logreg", make_pipeline(MinMaxScaler(), lr()), "multi", same, same
    yield "robust-scaler-logreg", make_pipeline(RobustScaler(), lr()), "multi", same, same
    yield "max-abs-scaler-logreg", make_pipeline(MaxAbsScaler(), lr()), "multi", same, same
    yield "normalizer-logreg", make_pipeline(Normalizer(), lr()), "multi", same, same
    yield "normalizer-l1-logreg", make_pipeline(Normalizer("l1"), lr()), "multi", same, same
    yield "normalizer-max-logreg", make_pipeline(Normalizer("max"), lr()), "multi", same, same
    yield "binarizer-logreg", make_pipeline(Binarizer(threshold=0.2), lr()), "binary", same, same
    yield "imputer-logreg", make_pipeline(SimpleImputer(), StandardScaler(), lr()), "multi", same, with_missing
    yield "imputer-median-forest", make_pipeline(SimpleImputer(strategy="median"), rf()), "binary", same, with_missing
    yield "one-hot-logreg", make_pipeline(OneHotEncoder(handle_unknown="ignore"), lr()), "counts", same, same
    yield "polynomial-ridge", make_pipeline(PolynomialFeatures(2), Ridge()), "regression", same, same
    yield "standard-scaler-svc", make_pipeline(StandardScaler(), SVC(probability=True, random_state=0)), "binary", same, same
    yield "standard-scaler-mlp-zipmap", make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=300, random_state=0)), "multi", same, same


def boosted():
    """XGBoost and LightGBM through onnxmltools, when installed."""
    try:
        import lightgbm
        import xgboost
        from onnxmltools import convert_lightgbm, convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError as e:
        print(f"skipping XGBoost and LightGBM: {e}", file=sys.stderr)
        return
    types = [("input", FloatTensorType([None, 6]))]
    xgb = lambda m: convert_xgboost(m, initial_types=types, target_opset=15)
    lgb = lambda m: convert_lightgbm(m, initial_types=types, target_opset=15, zipmap=False)
    yield "xgboost-binary", xgboost.XGBClassifier(n_estimators=20, max_depth=3), "binary", xgb
    yield "xgboost-multi", xgboost.XGBClassifier(n_estimators=20, max_depth=3), "multi", xgb
    yield "xgboost-regressor", xgboost.XGBRegressor(n_estimators=20, max_depth=3), "regression", xgb
    yield "lightgbm-binary", lightgbm.LGBMClassifier(n_estimators=20, verbose=-1), "binary", lgb
    yield "lightgbm-multi", lightgbm.LGBMClassifier(n_estimators=20, verbose=-1), "multi", lgb
    yield "lightgbm-regressor", lightgbm.LGBMRegressor(n_estimators=20, verbose=-1), "regression", lgb


def variants():
    """Zoo models with attributes changed, for the operator options no exporter emits here:
    (source, name, operator, {attribute: value})."""
    yield "forest-regressor", "forest-regressor-average", "TreeEnsembleRegressor", {"aggregate_function": "AVERAGE"}
    yield "forest-regressor", "forest-regressor-min", "TreeEnsembleRegressor", {"aggregate_function": "MIN", "base_values": [3.0]}
    yield "forest-regressor", "forest-regressor-max", "TreeEnsembleRegressor", {"aggregate_function": "MAX"}
    yield "forest-regressor-two-targets", "forest-regressor-two-targets-average", "TreeEnsembleRegressor", {"aggregate_function": "AVERAGE", "base_values": [1.0, -1.0]}
    yield "forest-multi", "forest-multi-logistic", "TreeEnsembleClassifier", {"post_transform": "LOGISTIC"}
    yield "forest-multi", "forest-multi-probit", "TreeEnsembleClassifier", {"post_transform": "PROBIT"}
    yield "gradient-boosting-multi", "gradient-boosting-multi-softmax-zero", "TreeEnsembleClassifier", {"post_transform": "SOFTMAX_ZERO"}
    yield "gradient-boosting-binary", "gradient-boosting-binary-raw", "TreeEnsembleClassifier", {"post_transform": "NONE"}
    yield "gradient-boosting-binary", "gradient-boosting-binary-two-bases", "TreeEnsembleClassifier", {"base_values": [0.3, 0.3]}
    yield "forest-binary", "forest-binary-logistic", "TreeEnsembleClassifier", {"post_transform": "LOGISTIC"}
    yield "svc-rbf-binary", "svc-rbf-binary-softmax", "SVMClassifier", {"post_transform": "SOFTMAX"}


def mixed_modes(name="xgboost-binary"):
    """xgboost-binary with its first branch compared BRANCH_LEQ, the rest BRANCH_LT."""
    m = onnx.load(OUT / f"{name}.onnx")
    node = next(n for n in m.graph.node if n.op_type == "TreeEnsembleClassifier")
    modes = next(a for a in node.attribute if a.name == "nodes_modes")
    first = next(i for i, v in enumerate(modes.strings) if v != b"LEAF")
    modes.strings[first] = b"BRANCH_LEQ"
    return m


def write_variant(source, name, op_type, attrs):
    m = onnx.load(OUT / f"{source}.onnx")
    node = next(n for n in m.graph.node if n.op_type == op_type)
    for key, value in attrs.items():
        for a in [a for a in node.attribute if a.name == key]:
            node.attribute.remove(a)
        node.attribute.append(onnx.helper.make_attribute(key, value))
    write(name, m, stored_input(source), f"{source} with {attrs}")


def stored_input(name):
    doc = json.loads((OUT / f"{name}.json").read_text())
    t = doc["inputs"][0]
    return np.array([np.nan if v is None else v for v in t["data"]], dtype=np.float32).reshape(t["shape"])


def single_node():
    """One-operator models for the encoders and input types the exporters above do not use:
    (name, operator, attributes, input array, [(output name, ONNX type)])."""
    from onnx import TensorProto as T
    words = np.array(["a", "c", "z", "b", "a", ""], dtype=object)
    ints = np.array([1, 5, 3, 2, 0, 3], dtype=np.int64)
    yield ("label-encoder-strings", "LabelEncoder",
           {"keys_strings": ["a", "b", "c"], "values_int64s": [10, 20, 30], "default_int64": -7},
           words, [("Y", T.INT64)])
    yield ("label-encoder-ints", "LabelEncoder",
           {"keys_int64s": [1, 2, 3], "values_strings": ["one", "two", "three"], "default_string": "none"},
           ints, [("Y", T.STRING)])
    yield ("label-encoder-floats", "LabelEncoder",
           {"keys_floats": [0.5, 1.5], "values_floats": [5.0, 15.0], "default_float": -1.0},
           np.array([0.5, 1.5, 2.5, 0.0], dtype=np.float32), [("Y", T.FLOAT)])
    yield ("category-mapper-strings", "CategoryMapper",
           {"cats_strings": ["cat", "dog", "eel"], "cats_int64s": [7, 8, 9], "default_int64": -1},
           np.array(["dog", "cat", "fox", "eel"], dtype=object), [("Y", T.INT64)])
    yield ("category-mapper-ints", "CategoryMapper",
           {"cats_strings": ["cat", "dog", "eel"], "cats_int64s": [7, 8, 9], "default_string": "?"},
           np.array([8, 7, 1, 9], dtype=np.int64), [("Y", T.STRING)])
    yield ("one-hot-strings", "OneHotEncoder", {"cats_strings": ["red", "green", "blue"], "zeros": 1},
           np.array([["red"], ["blue"], ["pink"], ["green"]], dtype=object), [("Y", T.FLOAT)])
    yield ("scaler-int-input", "Scaler", {"offset": [1.0, 0.0], "scale": [0.5, 2.0]},
           np.array([[1, 2], [3, 4], [-5, 6]], dtype=np.int64), [("Y", T.FLOAT)])
    yield ("imputer-ints", "Imputer", {"imputed_value_int64s": [9], "replaced_value_int64": -1},
           np.array([[1, -1], [-1, 4]], dtype=np.int64), [("Y", T.INT64)])


def write_single(name, op_type, attrs, x, outputs):
    from onnx import helper, TensorProto as T
    types = {"object": T.STRING, "int64": T.INT64, "float32": T.FLOAT}
    node = helper.make_node(op_type, ["X"], [o for o, _ in outputs], domain="ai.onnx.ml", **attrs)
    graph = helper.make_graph(
        [node], name,
        [helper.make_tensor_value_info("X", types[str(x.dtype)], [None] + list(x.shape[1:]))],
        [helper.make_tensor_value_info(o, t, None) for o, t in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 8
    write(name, model, x, f"{op_type} {attrs}")


def datatype(array):
    kind = "object" if array.dtype.kind in "OUS" else str(array.dtype)
    return DTYPES[kind]


def tensor(name, array):
    array = np.asarray(array)
    if array.dtype.kind in "OUS":
        values = [str(v) for v in array.ravel()]
    elif array.dtype.kind == "f":
        values = [float(v) if np.isfinite(v) else None for v in array.ravel()]
    else:
        values = [int(v) if array.dtype.kind in "iu" else bool(v) for v in array.ravel()]
    return {"name": name, "datatype": datatype(array), "shape": list(array.shape), "data": values}


def unzip(output, classes):
    """A ZipMap's list of {class: probability} as the [N, C] tensor it was made from."""
    return np.array([[row[c] for c in classes] for row in output], dtype=np.float32)


def write(name, onx, X_test, estimator):
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    results = sess.run(None, {inp.name: X_test})
    outputs = []
    for meta, value in zip(sess.get_outputs(), results):
        if isinstance(value, list):  # ZipMap
            value = unzip(value, list(value[0].keys()))
        outputs.append(tensor(meta.name, value))
    doc = {
        "estimator": estimator if isinstance(estimator, str) else repr(estimator).replace("\n", " "),
        "inputs": [tensor(inp.name, X_test)],
        "outputs": outputs,
    }
    (OUT / f"{name}.onnx").write_bytes(onx.SerializeToString())
    (OUT / f"{name}.json").write_text(json.dumps(doc) + "\n")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*"):
        old.unlink()
    count = 0
    for name, estimator, problem, labels, features in zoo():
        print(name, file=sys.stderr)
        X, y, X_test = data(problem)
        X, X_test = features(X), features(X_test)
        estimator.fit(X, labels(y))
        zipmap = name.endswith("-zipmap")
        last = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
        options = {id(last): {"zipmap": zipmap}} if is_classifier(last) else None
        try:
            onx = to_onnx(estimator, X[:1], options=options, target_opset=OPSET)
        except NameError:  # a classifier with no `zipmap` option (its outputs are tensors)
            onx = to_onnx(estimator, X[:1], target_opset=OPSET)
        write(name, onx, X_test, estimator)
        count += 1
    for name, estimator, problem, convert in boosted():
        X, y, X_test = data(problem)
        estimator.fit(X, y)
        write(name, convert(estimator), X_test, estimator)
        count += 1
    for source, name, op_type, attrs in variants():
        write_variant(source, name, op_type, attrs)
        count += 1
    write("xgboost-binary-mixed-modes", mixed_modes(), stored_input("xgboost-binary"), "xgboost-binary, mixed modes")
    count += 1
    for args in single_node():
        write_single(*args)
        count += 1
    print(f"wrote {count} models to {OUT}")


if __name__ == "__main__":
    main()
