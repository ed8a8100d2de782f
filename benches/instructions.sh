#!/usr/bin/env bash
# Instructions per call of each dispatch variant, counted by callgrind (see
# src/bin/instructions.rs). Deterministic, unlike times on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p events-benches --bin instructions
bin="${CARGO_TARGET_DIR:-target}/release/instructions"
iterations=100000
printf '| variant | instructions per call |\n|---|---:|\n'
for variant in fn_pointer_1 publish_1 publish_res_1 identity_map_1 fn_pointer_64 publish_64 direct_await_1 dispatch_async_1 direct_await_16 dispatch_async_16; do
    collected=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        --toggle-collect="*run_${variant}*" "$bin" "$variant" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
    printf '| `%s` | %s |\n' "$variant" "$(awk -v c="$collected" -v n="$iterations" 'BEGIN { printf "%.1f", c / n }')"
done
