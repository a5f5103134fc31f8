#!/usr/bin/env bash
# Builds the fuzz targets on stable with sancov instrumentation (no cargo-fuzz
# needed) and runs each for $1 seconds (default 60). Findings go to
# artifacts/<target>/, the corpus to corpus/<target>/. ONLY=<target> runs one.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
triple="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-../../target/net-fuzz}"
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing" \
  cargo build --release --bins --examples --target "$triple"
# Seeds: valid encodings from the real encoders (kept across runs).
"$CARGO_TARGET_DIR/$triple/release/examples/make_seeds"
targets=(decode_request decode_response resp_parse internode_frame)
for t in "${targets[@]}"; do
  [ -n "${ONLY:-}" ] && [ "$ONLY" != "$t" ] && continue
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t (${secs}s)"
  "$CARGO_TARGET_DIR/$triple/release/$t" "corpus/$t" -max_total_time="$secs" -rss_limit_mb=2048 \
    -artifact_prefix="artifacts/$t/" -print_final_stats=1 2>&1 | tail -n 12
done
