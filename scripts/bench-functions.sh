#!/usr/bin/env bash
# HTTP functions: aimass `/fn/hello` vs `wasmtime serve` (same wasmtime version, pooling on) vs a
# native axum handler returning the same bytes, with the same load generator (wrk) in one run.
# Reports requests/s and p50/p99 latency at concurrency 1, 16 and 64 (see BENCHMARKS.md).
# Usage: scripts/bench-functions.sh [SECONDS_PER_RUN] [WORK_DIR]   (defaults 10, /var/tmp/aimass-fn-bench)
# Installs what is missing: wrk (apt) and wasmtime-cli 48.0.8 (cargo install, ~20 min once).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
dir=${2:-/var/tmp/aimass-fn-bench}
WASMTIME_VERSION=48.0.8
mkdir -p "$dir"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
if ! wasmtime --version 2>/dev/null | grep -q "$WASMTIME_VERSION"; then
  cargo install --locked wasmtime-cli --version "$WASMTIME_VERSION"
fi

cargo build -q --release -p aimass --bin aimass --example native-hello
aimass=$CARGO_TARGET_DIR/release/aimass
native=$CARGO_TARGET_DIR/release/examples/native-hello
hello=$CARGO_TARGET_DIR/wasm-plugins/wasm32-wasip2/plugin/hello_fn.wasm
[ -f "$hello" ] || { echo "missing $hello (built by the host's build script)"; exit 1; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_for() { for _ in $(seq 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1"; exit 1; }

rm -rf "$dir/aimass-data"
AIMASS_TOKEN=bench-admin-token-of-at-least-32-chars "$aimass" up --listen 127.0.0.1:18080 --no-bundled \
  --store "file://$dir/aimass-data/store" --data-dir "$dir/aimass-data" 2>"$dir/aimass.log" &
pids+=($!)
# serve's defaults otherwise: no `-W timeout` (so no epoch checks, which aimass always has).
wasmtime serve -O pooling-allocator=y -S cli --addr 127.0.0.1:18081 "$hello" 2>"$dir/wasmtime.log" &
pids+=($!)
"$native" 127.0.0.1:18082 2>"$dir/native.log" &
pids+=($!)
wait_for http://127.0.0.1:18080/healthz
AIMASS_TOKEN=bench-admin-token-of-at-least-32-chars "$aimass" plugin push hello "$hello" --public --url http://127.0.0.1:18080 >/dev/null
# The same function behind the token check (role lookup per request), to show what auth costs.
AIMASS_TOKEN=bench-admin-token-of-at-least-32-chars "$aimass" plugin push hello-auth "$hello" --url http://127.0.0.1:18080 >/dev/null
wait_for http://127.0.0.1:18080/fn/hello/
wait_for http://127.0.0.1:18081/
wait_for http://127.0.0.1:18082/

for url in http://127.0.0.1:18080/fn/hello/ http://127.0.0.1:18081/ http://127.0.0.1:18082/; do
  [ "$(curl -s "$url")" = "Hello, world!" ] || { echo "$url does not answer Hello, world!"; exit 1; }
done

: > "$dir/results.txt"
for c in 1 16 64; do
  t=$(( c < 2 ? 1 : 2 ))
  for peer in aimass:http://127.0.0.1:18080/fn/hello/ aimass-token:http://127.0.0.1:18080/fn/hello-auth/ \
              wasmtime-serve:http://127.0.0.1:18081/ native-axum:http://127.0.0.1:18082/; do
    name=${peer%%:*}; url=${peer#*:}
    auth=(); [ "$name" = aimass-token ] && auth=(-H "Authorization: Bearer bench-admin-token-of-at-least-32-chars")
    wrk -t1 -c"$c" -d2s "${auth[@]}" "$url" >/dev/null  # warm-up
    echo "== $name c=$c" >> "$dir/results.txt"
    wrk -t"$t" -c"$c" -d"${secs}s" --latency "${auth[@]}" "$url" >> "$dir/results.txt"
  done
done

python3 - "$dir/results.txt" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(v):
    n, unit = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
rows = {}
for block in text.split("== ")[1:]:
    head, body = block.split("\n", 1)
    name, c = head.split(" c=")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", body).group(1))
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", body, re.M).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", body, re.M).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", body)
    rows[(name, int(c))] = (rps, p50, p99, errors.group(0) if errors else "")
print(f"{'server':<15} {'c':>3} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}  vs wasmtime serve  vs native  errors")
for c in (1, 16, 64):
    base, native = rows[("wasmtime-serve", c)][0], rows[("native-axum", c)][0]
    for name in ("aimass", "aimass-token", "wasmtime-serve", "native-axum"):
        rps, p50, p99, err = rows[(name, c)]
        print(f"{name:<15} {c:>3} {rps:>9.0f} {p50:>8.3f} {p99:>8.3f}  {rps / base:>16.2f}x {rps / native:>9.2f}x  {err}")
PY
