"""Regenerate tests/data/metrics-sklearn.json: inputs and scikit-learn's metric values, which the
host's metric code (host/src/capabilities/models/metrics.rs) is checked against.

Usage: pip install scikit-learn && python3 scripts/metrics-fixture.py
"""

import json
import pathlib

import numpy as np
from sklearn import metrics

rng = np.random.default_rng(7)
out = {"sklearn": __import__("sklearn").__version__}

# Binary: noisy scores with ties (rounded), labels correlated with them.
n = 200
score = np.round(rng.random(n), 2)
y = (score + rng.normal(0, 0.3, n) > 0.5).astype(int)
proba = np.stack([1 - score, score], axis=1)
pred = proba.argmax(axis=1)  # ties go to class 0, as the host's argmax does
fpr, tpr, thr = metrics.roc_curve(y, score, drop_intermediate=False)
out["binary"] = {
    "y_true": y.tolist(),
    "proba": proba.tolist(),
    "accuracy": metrics.accuracy_score(y, pred),
    "precision": metrics.precision_score(y, pred),
    "recall": metrics.recall_score(y, pred),
    "f1": metrics.f1_score(y, pred),
    "precision_macro": metrics.precision_score(y, pred, average="macro"),
    "recall_macro": metrics.recall_score(y, pred, average="macro"),
    "f1_macro": metrics.f1_score(y, pred, average="macro"),
    "roc_auc": metrics.roc_auc_score(y, score),
    "log_loss": metrics.log_loss(y, proba),
    "confusion": metrics.confusion_matrix(y, pred).tolist(),
    "roc_fpr": fpr.tolist(),
    "roc_tpr": tpr.tolist(),
}

# Multiclass (3 classes): softmax of noisy logits.
n, k = 150, 3
y = rng.integers(0, k, n)
logits = rng.normal(0, 1, (n, k))
logits[np.arange(n), y] += 1.2
proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
pred = proba.argmax(axis=1)
out["multiclass"] = {
    "y_true": y.tolist(),
    "proba": proba.tolist(),
    "accuracy": metrics.accuracy_score(y, pred),
    "precision_macro": metrics.precision_score(y, pred, average="macro"),
    "recall_macro": metrics.recall_score(y, pred, average="macro"),
    "f1_macro": metrics.f1_score(y, pred, average="macro"),
    "roc_auc_ovr": metrics.roc_auc_score(y, proba, multi_class="ovr", average="macro"),
    "log_loss": metrics.log_loss(y, proba),
    "confusion": metrics.confusion_matrix(y, pred).tolist(),
}

# Regression.
n = 100
y = rng.normal(10, 3, n)
yhat = y + rng.normal(0, 1, n)
out["regression"] = {
    "y_true": y.tolist(),
    "y_pred": yhat.tolist(),
    "rmse": float(np.sqrt(metrics.mean_squared_error(y, yhat))),
    "mae": metrics.mean_absolute_error(y, yhat),
    "r2": metrics.r2_score(y, yhat),
}

path = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "metrics-sklearn.json"
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {path}")
