#!/usr/bin/env python3
"""Print the medians criterion measured for `cargo bench -p aimass --bench invoke`, with ratios.

Usage: python3 scripts/bench-summary.py [CRITERION_DIR]
(default: $CARGO_TARGET_DIR/criterion, else target/criterion)
"""
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")


def median(name):
    with open(os.path.join(root, name, "new", "estimates.json")) as f:
        e = json.load(f)["median"]
    return e["point_estimate"] / 1e3, e["confidence_interval"]


rows = ["invoke/noop-pooling", "invoke/noop-bare-wasmtime", "invoke/noop-on-demand",
        "invoke/noop-naive",
        "cold/compile", "cold/load-cached", "cold/load-cached-file",
        "cold/first-invoke-cached", "cold/warm-invoke"]
found = {}
for r in rows:
    try:
        m, ci = median(r)
    except FileNotFoundError:
        continue
    found[r] = m
    print(f"| `{r}` | {m:,.2f} µs | [{ci['lower_bound']/1e3:,.2f}, {ci['upper_bound']/1e3:,.2f}] |")

def ratio(a, b):
    if a in found and b in found:
        print(f"{b} / {a} = {found[b] / found[a]:.2f}x")

ratio("invoke/noop-bare-wasmtime", "invoke/noop-pooling")
ratio("invoke/noop-pooling", "invoke/noop-on-demand")
ratio("invoke/noop-pooling", "invoke/noop-naive")
ratio("cold/load-cached-file", "cold/compile")
ratio("cold/first-invoke-cached", "cold/compile")
