#!/usr/bin/env bash
# Coverage-guided libFuzzer runs of the targets in fuzz/ (the test command replays their seeds,
# kept crash inputs and fixed mutations without instrumentation; see RELIABILITY.md, Fuzzing).
#
#   scripts/fuzz.sh                 # every target, 300 s each
#   scripts/fuzz.sh object_key 3600 # one target, an hour
#
# The corpus grows in fuzz/corpus/TARGET (not committed); crashes land in
# fuzz/artifacts/TARGET/ with the input that caused them, replayable with
#   cargo fuzz run -s none TARGET fuzz/artifacts/TARGET/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/var/tmp/aimass-tools/bin:$PATH"
TARGET_DIR="${AIMASS_FUZZ_TARGET_DIR:-/var/tmp/aimass-fuzz-target}"
export AIMASS_FUZZ_DATA_DIR="${AIMASS_FUZZ_DATA_DIR:-/var/tmp/aimass-fuzz-data}"
plugins="${CARGO_TARGET_DIR:-/var/tmp/aimass-target}/wasm-plugins/wasm32-wasip2/plugin"
# The plugins the test run built: the same build as `cargo test` makes (see tests/it/fuzz.rs).
[ -d "$plugins" ] && export AIMASS_PREBUILT_PLUGINS="$plugins"
command -v cargo-fuzz >/dev/null ||
  cargo install --locked cargo-fuzz --version 0.13.2 --root /var/tmp/aimass-tools

targets=(upload invoke_decode s3_event oip_infer pipeline_spec object_key)
[ $# -ge 1 ] && targets=("$1")
seconds="${2:-300}"

for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  cp -n fuzz/seeds/"$t"/* "fuzz/corpus/$t/" 2>/dev/null || true
  echo "== $t, $seconds s"
  cargo fuzz run --sanitizer none --target-dir "$TARGET_DIR" "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=6144 -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$t/" 2>&1 |
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done|==[0-9]+== ERROR|SUMMARY)' || true
done
