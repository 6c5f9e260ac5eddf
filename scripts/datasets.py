"""Write the shipped example data sets, as CSV, from scikit-learn's bundled copies:

  examples/data/breast-cancer.csv  load_breast_cancer(): 569 rows, 30 features (snake_case
                                   names, e.g. mean_radius), then `label` (0 = malignant, 1 = benign)
  examples/data/iris.csv           load_iris(): 150 rows, sepal_length, sepal_width,
                                   petal_length, petal_width (cm), then `label` (0/1/2)
  examples/data/diabetes.csv       load_diabetes(scaled=False): 442 rows, age, sex, bmi, bp,
                                   s1..s6, then `label` (disease progression after one year, a
                                   regression target)

They give the examples and tests real, well-known data without a download at run time. Output is
deterministic: header row first, no index column, floats as repr() (shortest exact round trip),
labels as integers.

Usage: pip install scikit-learn && python3 scripts/datasets.py
"""

import csv
import pathlib

from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

OUT = pathlib.Path(__file__).resolve().parent.parent / "examples" / "data"


def write(name, columns, bunch, label=int):
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / name, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([*columns, "label"])
        for x, y in zip(bunch.data, bunch.target):
            w.writerow([*(repr(float(v)) for v in x), label(y)])
    print(f"wrote {OUT / name}: {len(bunch.data)} rows")


cancer = load_breast_cancer()
write("breast-cancer.csv", [n.lower().replace(" ", "_") for n in cancer.feature_names], cancer)
write("iris.csv", ["sepal_length", "sepal_width", "petal_length", "petal_width"], load_iris())
diabetes = load_diabetes(scaled=False)
write("diabetes.csv", diabetes.feature_names, diabetes, label=lambda y: repr(float(y)))
