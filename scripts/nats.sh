#!/usr/bin/env bash
# Starts a NATS server with JetStream for the tests, on loopback with a throw-away store
# directory, and stops it again.
#
#   scripts/nats.sh run CMD...        start, export EVENTS_NATS_URL, run CMD, stop (any exit)
#   eval "$(scripts/nats.sh start)"   start and export EVENTS_NATS_URL and EVENTS_NATS_DIR
#   scripts/nats.sh stop              stop what `start` started (reads EVENTS_NATS_DIR)
#
# Example: scripts/nats.sh run cargo test --workspace --all-features
#
# As root the server runs as `nobody`. Settings: EVENTS_NATS_PORT (default: the first free port
# from 14222 up). Tests that stop and restart a server start their own (nats-server on PATH).
set -euo pipefail

die() { echo "nats.sh: $*" >&2; exit 1; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
    local port=${EVENTS_NATS_PORT:-14222}
    if [ -n "${EVENTS_NATS_PORT:-}" ]; then
        port_in_use "$port" && die "EVENTS_NATS_PORT=$port is already in use; pick another port"
        echo "$port"
        return
    fi
    while port_in_use "$port"; do port=$((port + 1)); done
    echo "$port"
}

start() {
    command -v nats-server >/dev/null 2>&1 ||
        die "nats-server not found; install it (Debian: apt-get install -y nats-server)"
    nats_dir=${nats_dir:-$(mktemp -d "${TMPDIR:-/tmp}/events-nats.XXXXXX")}
    chmod 755 "$nats_dir"
    local port run_as=()
    port=$(free_port)
    if [ "$(id -u)" = 0 ]; then
        chown nobody "$nats_dir"
        run_as=(runuser -u nobody --)
    fi
    # setsid: the server outlives this script (for `start`) in its own process group.
    (cd "$nats_dir" && exec setsid "${run_as[@]}" nats-server -js -a 127.0.0.1 -p "$port" \
        -sd "$nats_dir/store" -l "$nats_dir/nats.log" -P "$nats_dir/nats.pid" \
        </dev/null >/dev/null 2>&1) &
    local waited=0
    until port_in_use "$port"; do
        sleep 0.1
        waited=$((waited + 1))
        [ "$waited" -lt 100 ] ||
            { cat "$nats_dir/nats.log" >&2 2>/dev/null; die "nats-server did not start on port $port within 10 s (log above)"; }
    done
    EVENTS_NATS_URL="nats://127.0.0.1:$port"
    echo "NATS (JetStream) running at $EVENTS_NATS_URL (store in $nats_dir)" >&2
}

stop() {
    local dir=${1:-${EVENTS_NATS_DIR:-}}
    [ -n "$dir" ] || die "nothing to stop: EVENTS_NATS_DIR is not set (it is exported by \`start\`)"
    [ -d "$dir" ] || return 0
    if [ -f "$dir/nats.pid" ]; then
        local pid
        pid=$(cat "$dir/nats.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$dir"
}

case "${1:-}" in
start)
    start
    printf 'export EVENTS_NATS_URL=%q EVENTS_NATS_DIR=%q\n' "$EVENTS_NATS_URL" "$nats_dir"
    ;;
stop)
    stop "${2:-}"
    ;;
run)
    shift
    [ $# -gt 0 ] || die "usage: scripts/nats.sh run CMD..."
    nats_dir=$(mktemp -d "${TMPDIR:-/tmp}/events-nats.XXXXXX")
    trap 'stop "$nats_dir"' EXIT
    start
    export EVENTS_NATS_URL EVENTS_NATS_DIR="$nats_dir"
    trap 'exit 130' INT TERM
    "$@"
    ;;
*)
    die "usage: scripts/nats.sh start | stop [DIR] | run CMD..."
    ;;
esac
