#!/usr/bin/env bash
# Issue 22's scaling measurement with real worker processes: `async-worker` against the
# PostgreSQL that EVENTS_POSTGRES_URL points at (`eval "$(scripts/servers.sh start)"`), or
# with BACKEND=sqlite against an SQLite file (one segment per handler: a second worker stands
# by).
#
#   benches/scale.sh [PROFILE] WORKERS:CONCURRENCY...     e.g. benches/scale.sh debug 1:1 1:32 1:4 2:4 4:4
#
# Each run: a fresh schema with 8 segments, 2,000 orders over 200 customers, then WORKERS
# processes of `process orders.update_stock --concurrency CONCURRENCY` whose handler awaits
# 20 ms per event (ASYNC_DELAY=1, HANDLER_DELAY_MS=20); the time is from starting the workers
# until every order was handled (the handlers' journal), then the workers get SIGTERM.
# Environment: EVENTS (2000), CUSTOMERS (200), SEGMENTS (8), DELAY_MS (20), WORKER_ARGS (more
# `process` options, e.g. `--lease-ttl 5s`: members beat every fifth of the lease), BACKEND
# (postgres or sqlite).
set -euo pipefail

profile=debug
if [[ "${1:-}" == debug || "${1:-}" == release ]]; then
    profile=$1
    shift
fi
backend=${BACKEND:-postgres}
[[ $backend == sqlite ]] || : "${EVENTS_POSTGRES_URL:?start a server: eval \"\$(scripts/servers.sh start)\"}"
events=${EVENTS:-2000}
customers=${CUSTOMERS:-200}
segments=${SEGMENTS:-8}
delay=${DELAY_MS:-20}
read -r -a extra <<<"${WORKER_ARGS:-}"
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/$profile/async-worker
[[ -x $bin ]] || { echo "build it first: cargo build -p async-worker $([[ $profile == release ]] && echo --release)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "| workers | concurrency | events | seconds | events/s |"
echo "|---:|---:|---:|---:|---:|"
for run in "$@"; do
    workers=${run%%:*}
    concurrency=${run##*:}
    schema="scale_${workers}_${concurrency}_$$"
    export EVENTS_DB=$work/$schema
    if [[ $backend == sqlite ]]; then
        url="sqlite://$EVENTS_DB.sqlite"
    else
        psql -q "$EVENTS_POSTGRES_URL" -c "DROP SCHEMA IF EXISTS $schema CASCADE; CREATE SCHEMA $schema" >/dev/null
        sep='?'; [[ $EVENTS_POSTGRES_URL == *'?'* ]] && sep='&'
        url="${EVENTS_POSTGRES_URL}${sep}options=-c%20search_path%3D${schema}&segments=${segments}"
    fi
    "$bin" --database-url "$url" migrate >/dev/null
    "$bin" --database-url "$url" place-orders "$events" --customers "$customers" >/dev/null 2>&1
    journal=$EVENTS_DB.handled
    pids=()
    start=$(date +%s.%N)
    for _ in $(seq "$workers"); do
        ASYNC_DELAY=1 HANDLER_DELAY_MS=$delay "$bin" --database-url "$url" process orders.update_stock \
            --concurrency "$concurrency" --max-runtime 600s "${extra[@]}" >"$work/out.$schema.$BASHPID.$RANDOM" 2>&1 &
        pids+=($!)
    done
    while [[ $(cut -d' ' -f2 "$journal" 2>/dev/null | sort -u | wc -l) -lt $events ]]; do
        sleep 0.05
    done
    end=$(date +%s.%N)
    kill -TERM "${pids[@]}"
    wait "${pids[@]}" || true
    [[ $backend == sqlite ]] || psql -q "$EVENTS_POSTGRES_URL" -c "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1
    awk -v w="$workers" -v c="$concurrency" -v n="$events" -v s="$start" -v e="$end" \
        'BEGIN { t = e - s; printf "| %d | %d | %d | %.2f | %.0f |\n", w, c, n, t, n / t }'
done
