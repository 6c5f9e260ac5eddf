#!/usr/bin/env bash
# Soak: a release host on a fresh data dir, then host/examples/soak.rs against it — invoke,
# /fn, infer and hook traffic at once, first at full speed to measure the maximum rate of the
# mix, then at FRACTION of it for SECONDS, reporting error rate, RSS growth, p99 drift and
# instance-pool occupancy per window (see RELIABILITY.md).
#
#   scripts/soak.sh [SECONDS=600] [FRACTION=0.8] [WINDOW_S=60] [WORK_DIR=/var/tmp/aimass-soak]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
fraction=${2:-0.8}
window=${3:-60}
dir=${4:-/var/tmp/aimass-soak}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}

cargo build -q --release -p aimass --bin aimass --example soak
aimass=$CARGO_TARGET_DIR/release/aimass
soak=$CARGO_TARGET_DIR/release/examples/soak

rm -rf "$dir" && mkdir -p "$dir"
AIMASS_TOKEN=soak-admin-token-of-at-least-32-chars AIMASS_LOG=warn "$aimass" up --listen 127.0.0.1:18090 \
  --store "file://$dir/store" --data-dir "$dir/data" >"$dir/aimass.out" 2>"$dir/aimass.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 600); do curl -sf -o /dev/null http://127.0.0.1:18090/healthz && break; sleep 0.1; done

"$soak" http://127.0.0.1:18090 soak-admin-token-of-at-least-32-chars "$pid" "$secs" "$fraction" "$window" | tee "$dir/soak.txt"
