#!/usr/bin/env bash
# Build examples/python-hello (a Python HTTP function) into a wasi:http/proxy component.
# Usage: scripts/python-fn.sh OUT.wasm
# Installs componentize-py (pinned) with pip when missing; the WASI 0.2 WIT comes from the
# `wasip2` crate in the workspace's lock file (cargo fetches it), so nothing else is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/python-fn.sh OUT.wasm}
version=0.25.1
cpy=$(python3 -m site --user-base)/bin/componentize-py
if ! "$cpy" --version 2>/dev/null | grep -q "$version"; then
  python3 -m pip install --user --quiet "componentize-py==$version"
fi
wit=$(cargo metadata --format-version 1 --locked | python3 -c '
import json, os, sys
pkgs = json.load(sys.stdin)["packages"]
print(next(os.path.join(os.path.dirname(p["manifest_path"]), "wit") for p in pkgs if p["name"] == "wasip2"))')
world=$(sed -n 's/^package wasi:http@\(.*\);/\1/p' "$wit"/deps/http.wit | head -1)
"$cpy" -q -d "$wit" -w "wasi:http/proxy@$world" componentize -p examples/python-hello app -o "$out"
