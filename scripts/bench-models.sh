#!/usr/bin/env bash
# Model benchmarks, aimass against its peers in one run on this machine (see BENCHMARKS.md):
#   1. inference: tract (in-process, as the host serves) vs onnxruntime (Python, 1 thread) on the
#      same ONNX files — linear, the logistic-regression trainer's own export, MLP, small CNN;
#   2. training: the bundled logistic-regression trainer (Wasm) vs scikit-learn LogisticRegression
#      on the same 100k x 30 data: fit time and test AUC.
# Usage: scripts/bench-models.sh [WORK_DIR]   (default /var/tmp/aimass-bench)
# Needs: pip install numpy scikit-learn onnx onnxruntime
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/var/tmp/aimass-bench}
mkdir -p "$dir"
python3 -m pip install --user --quiet numpy scikit-learn onnx onnxruntime
python3 scripts/bench-models.py make "$dir/models" >/dev/null
[ -f "$dir/logreg/train.csv" ] || python3 scripts/bench-logreg.py make "$dir/logreg" >/dev/null
cargo bench -q -p aimass --bench models -- logreg "$dir/logreg" "$dir/models" | grep '^{' > "$dir/aimass-train.jsonl"
python3 scripts/bench-logreg.py sklearn "$dir/logreg" > "$dir/sklearn.jsonl"
python3 scripts/bench-models.py ort "$dir/models" > "$dir/ort.jsonl"
cargo bench -q -p aimass --bench models -- tract "$dir/models" | grep '^{' > "$dir/tract.jsonl"
python3 - "$dir" <<'PY'
import json, pathlib, sys
d = pathlib.Path(sys.argv[1])
rows = lambda f: [json.loads(l) for l in (d / f).read_text().splitlines() if l.strip()]
ort = {(r["model"], r["batch"]): r for r in rows("ort.jsonl")}
print(f"{'model':<8} {'batch':>5} {'tract us':>10} {'ORT us':>9} {'tract/ORT':>9}  (medians)")
for r in rows("tract.jsonl"):
    if r["engine"] != "tract" or (r["model"], r["batch"]) not in ort:
        continue
    o = ort[(r["model"], r["batch"])]
    print(f"{r['model']:<8} {r['batch']:>5} {r['median_us']:>10.1f} {o['median_us']:>9.1f} {r['median_us'] / o['median_us']:>9.2f}")
a, s = rows("aimass-train.jsonl")[0], rows("sklearn.jsonl")[0]
print(f"logistic regression 100k x 30: aimass fit {a['fit_s_median']:.3f} s ({a['n_iter']} iterations), "
      f"scikit-learn {s['fit_s_median']:.3f} s ({s['n_iter']}): ratio {a['fit_s_median'] / s['fit_s_median']:.2f}; "
      f"test AUC {a['test_auc']:.6f} vs {s['test_auc']:.6f}: diff {abs(a['test_auc'] - s['test_auc']):.6f}")
PY
