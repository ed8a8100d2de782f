#!/usr/bin/env bash
# Runs the benchmarks and the allocation test, then renders benches/results.md and
# benches/chart.svg.
#
#   benches/run.sh            full run (about 7 minutes of measuring on 2 cores, plus the build)
#   benches/run.sh --quick    short run for CI (EVENTS_BENCH_QUICK=1: about 1 minute of measuring)
#
# Other arguments go to criterion, e.g. `benches/run.sh sync_dispatch/events` to filter.
# Honours CARGO_TARGET_DIR (criterion writes to $CARGO_TARGET_DIR/criterion).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--quick" ]]; then
    shift
    export EVENTS_BENCH_QUICK=1
fi

criterion_dir="${CRITERION_HOME:-${CARGO_TARGET_DIR:-target}/criterion}"
mkdir -p "$criterion_dir"

# A count, not a timing: asserts zero allocations per sync dispatch, and keeps the counts.
cargo test --release -p events-benches --test alloc -- --nocapture | tee "$criterion_dir/alloc.txt"

cargo bench -p events-benches -- "$@"

cargo run --release -p events-benches --bin render
