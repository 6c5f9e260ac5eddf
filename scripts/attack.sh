#!/usr/bin/env bash
# Exhaustion attacks against a release host while legitimate traffic goes on: slow-drip bodies
# with wrong tokens and a flood of 16 MiB uploads, beside authenticated health checks and
# invokes (host/examples/attack.rs). Prints a JSON summary (RELIABILITY.md, Security).
#
#   scripts/attack.sh [SECONDS=30] [DRIPS=500] [FLOODERS=16] [WORK_DIR=/var/tmp/aimass-attack]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
drips=${2:-500}
flooders=${3:-16}
dir=${4:-/var/tmp/aimass-attack}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
token=attack-admin-token-of-at-least-32-chars

cargo build -q --release -p aimass --bin aimass --example attack
rm -rf "$dir" && mkdir -p "$dir"
AIMASS_TOKEN=$token AIMASS_LOG=warn "$CARGO_TARGET_DIR/release/aimass" up --listen 127.0.0.1:18091 \
  --data-dir "$dir/data" >"$dir/aimass.out" 2>"$dir/aimass.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir/data/store/flood"' EXIT
for _ in $(seq 600); do curl -sf -o /dev/null http://127.0.0.1:18091/healthz && break; sleep 0.1; done

"$CARGO_TARGET_DIR/release/examples/attack" http://127.0.0.1:18091 "$token" "$secs" "$drips" "$flooders"
