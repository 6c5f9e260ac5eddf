#!/usr/bin/env python3
"""Logistic-regression training baseline: scikit-learn on a synthetic 100k x 30 data set.

  python3 scripts/bench-logreg.py make OUT_DIR                 write train.csv and test.csv
  python3 scripts/bench-logreg.py sklearn OUT_DIR [--repeat 5] time LogisticRegression.fit

`make`: sklearn.datasets.make_classification(n_samples=125000, n_features=30, n_informative=20,
n_redundant=5, class_sep=0.8, flip_y=0.03, random_state=0); the first 100000 rows go to
train.csv, the remaining 25000 to test.csv. Columns f0..f29 (floats as repr(), the shortest
exact round trip) then `label` (int 0/1); header row, no index. Output is deterministic.

`sklearn`: fits LogisticRegression(C=1.0, max_iter=100, tol=1e-4) (default lbfgs solver) on
train.csv `repeat` times. It is single-threaded: OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and
MKL_NUM_THREADS are forced to 1 below, before numpy is imported, overriding the caller's
environment. Only fit() is timed (time.perf_counter), not CSV loading. Prints one line:
  {"engine":"scikit-learn","fit_s_median":..,"fits":[..],"n_iter":..,"test_auc":..}
where test_auc is roc_auc_score on test.csv of predict_proba[:, 1] from the last fit.

Needs: pip install numpy scikit-learn
"""
import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

N_TRAIN, N_FEATURES = 100_000, 30


def make(out):
    from sklearn.datasets import make_classification
    x, y = make_classification(n_samples=125_000, n_features=N_FEATURES, n_informative=20,
                               n_redundant=5, random_state=0, class_sep=0.8, flip_y=0.03)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.csv", slice(0, N_TRAIN)), ("test.csv", slice(N_TRAIN, None))):
        with open(out / name, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow([*(f"f{i}" for i in range(N_FEATURES)), "label"])
            for xs, label in zip(x[rows], y[rows]):
                w.writerow([*(repr(float(v)) for v in xs), int(label)])
        print(f"wrote {out / name}: {len(y[rows])} rows, {(out / name).stat().st_size} bytes")


def load(path):
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    return data[:, :-1], data[:, -1].astype(int)


def bench(out, repeat):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    x, y = load(out / "train.csv")
    x_test, y_test = load(out / "test.csv")
    fits = []
    for _ in range(repeat):
        model = LogisticRegression(C=1.0, max_iter=100, tol=1e-4)
        t0 = time.perf_counter()
        model.fit(x, y)
        fits.append(time.perf_counter() - t0)
    auc = roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])
    print(json.dumps({"engine": "scikit-learn", "fit_s_median": round(statistics.median(fits), 4),
                      "fits": [round(s, 4) for s in fits], "n_iter": int(model.n_iter_[0]),
                      "test_auc": round(float(auc), 6)}, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="Logistic-regression training baseline.")
    p.add_argument("command", choices=["make", "sklearn"])
    p.add_argument("out_dir", type=pathlib.Path)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    make(a.out_dir) if a.command == "make" else bench(a.out_dir, a.repeat)
