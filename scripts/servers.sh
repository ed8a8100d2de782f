#!/usr/bin/env bash
# Starts the servers the tests need (PostgreSQL, NATS with JetStream through scripts/nats.sh,
# Redis and RabbitMQ) on loopback, each with a throw-away data directory, and stops them again.
#
#   scripts/servers.sh run CMD...   start, export EVENTS_POSTGRES_URL, EVENTS_NATS_URL,
#                                   EVENTS_REDIS_URL and EVENTS_RABBITMQ_URL, run CMD, stop
#                                   (any exit)
#   eval "$(scripts/servers.sh start)"   start and export EVENTS_POSTGRES_URL, EVENTS_NATS_URL,
#                                   EVENTS_REDIS_URL, EVENTS_RABBITMQ_URL and EVENTS_SERVERS_DIR
#   scripts/servers.sh stop         stop what `start` started (reads EVENTS_SERVERS_DIR)
#
# Example: scripts/servers.sh run cargo test --workspace --all-features
#
# PostgreSQL refuses to run as root: as root the server runs as the `postgres` system user
# (created by Debian's package) or `nobody`. Settings: EVENTS_PG_PORT (default: the first free
# port from 54329 up), EVENTS_PG_FSYNC (default `off`: a test server need not survive a power
# loss; set `on` for benchmarks that should pay for durable commits), EVENTS_REDIS_PORT (default:
# the first free port from 16379 up). Redis runs as `nobody` when we are root, with an
# append-only file fsynced every second (Debian: apt-get install -y redis-server).
# RabbitMQ (Debian: apt-get install -y rabbitmq-server) runs as node events-test-PORT@localhost on
# EVENTS_RABBITMQ_PORT (default: the first free port from 25672 up), its
# distribution port just above, no plugins (no management listener), as the `rabbitmq` user
# (or `nobody`) when we are root, with its database and logs in the servers' directory.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

die() { echo "servers.sh: $*" >&2; exit 1; }

pg_bindir() {
    if command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v initdb)")"
        return
    fi
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] && [ -x "$dir/initdb" ] ||
        die "PostgreSQL server binaries not found; install them (Debian: apt-get install -y postgresql)"
    echo "$dir"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
    local port=${EVENTS_PG_PORT:-54329}
    if [ -n "${EVENTS_PG_PORT:-}" ]; then
        port_in_use "$port" && die "EVENTS_PG_PORT=$port is already in use; pick another port"
        echo "$port"
        return
    fi
    while port_in_use "$port"; do port=$((port + 1)); done
    echo "$port"
}

# Runs a command as the unprivileged server user (as ourselves when we are not root), from the
# servers' directory (the server user may not be allowed into the caller's).
as_server_user() {
    (
        cd "$servers_dir"
        if [ "$(id -u)" = 0 ]; then
            exec runuser -u "$server_user" -- "$@"
        else
            exec "$@"
        fi
    )
}

start_postgres() {
    local bin port data
    bin=$(pg_bindir)
    port=$(free_port)
    data="$servers_dir/postgres"
    mkdir -p "$data"
    if [ "$(id -u)" = 0 ]; then
        server_user=postgres
        id "$server_user" >/dev/null 2>&1 || server_user=nobody
        chown -R "$server_user" "$servers_dir"
    fi
    as_server_user "$bin/initdb" --pgdata="$data" --username=events --auth=trust \
        --encoding=UTF8 --no-locale >"$servers_dir/initdb.log" 2>&1 ||
        { cat "$servers_dir/initdb.log" >&2; die "initdb failed (log above)"; }
    echo "$bin" >"$servers_dir/postgres.bin"
    as_server_user "$bin/pg_ctl" --pgdata="$data" --log="$servers_dir/postgres.log" --wait \
        --options="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$servers_dir -c max_connections=300 -c fsync=${EVENTS_PG_FSYNC:-off}" \
        start >/dev/null ||
        { cat "$servers_dir/postgres.log" >&2; die "the PostgreSQL server did not start (log above)"; }
    as_server_user "$bin/createdb" --host=127.0.0.1 --port="$port" --username=events events ||
        die "could not create the database \`events\`"
    EVENTS_POSTGRES_URL="postgres://events@127.0.0.1:$port/events"
}

stop_postgres() {
    local dir=$1
    [ -f "$dir/postgres.bin" ] || return 0
    servers_dir=$dir
    if [ "$(id -u)" = 0 ]; then server_user=$(stat -c %U "$dir/postgres"); fi
    as_server_user "$(cat "$dir/postgres.bin")/pg_ctl" --pgdata="$dir/postgres" --mode=fast \
        --wait stop >/dev/null || echo "servers.sh: could not stop PostgreSQL in $dir" >&2
}

start_redis() {
    command -v redis-server >/dev/null 2>&1 ||
        die "redis-server not found; install it (Debian: apt-get install -y redis-server)"
    local port=${EVENTS_REDIS_PORT:-16379} dir="$servers_dir/redis" run_as=()
    if [ -n "${EVENTS_REDIS_PORT:-}" ]; then
        port_in_use "$port" && die "EVENTS_REDIS_PORT=$port is already in use; pick another port"
    else
        while port_in_use "$port"; do port=$((port + 1)); done
    fi
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then
        chown nobody "$dir"
        run_as=(runuser -u nobody --)
    fi
    (cd "$dir" && exec "${run_as[@]}" redis-server --bind 127.0.0.1 --port "$port" \
        --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
        --appendonly yes --appendfsync everysec --save '' --protected-mode no) ||
        die "redis-server did not start (log: $dir/redis.log)"
    local waited=0
    until redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; do
        sleep 0.05
        waited=$((waited + 1))
        [ "$waited" -lt 200 ] ||
            { cat "$dir/redis.log" >&2 2>/dev/null; die "redis-server did not answer on port $port within 10 s (log above)"; }
    done
    EVENTS_REDIS_URL="redis://127.0.0.1:$port"
    echo "Redis running at $EVENTS_REDIS_URL (data in $dir)" >&2
}

stop_redis() {
    local dir=$1/redis pid
    [ -f "$dir/redis.pid" ] || return 0
    pid=$(cat "$dir/redis.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
}

rabbitmq_bin() {
    local dir
    for dir in /usr/lib/rabbitmq/bin "$(dirname "$(command -v rabbitmq-server 2>/dev/null || echo /x/x)")"; do
        [ -x "$dir/rabbitmq-server" ] && [ -x "$dir/rabbitmq-diagnostics" ] && { echo "$dir"; return; }
    done
    die "rabbitmq-server not found; install it (Debian: apt-get install -y rabbitmq-server)"
}

start_rabbitmq() {
    local bin port=${EVENTS_RABBITMQ_PORT:-25672} dir="$servers_dir/rabbitmq" user=
    bin=$(rabbitmq_bin)
    if [ -n "${EVENTS_RABBITMQ_PORT:-}" ]; then
        port_in_use "$port" && die "EVENTS_RABBITMQ_PORT=$port is already in use; pick another port"
    else
        while port_in_use "$port" || port_in_use $((port + 1)); do port=$((port + 2)); done
    fi
    mkdir -p "$dir/mnesia" "$dir/log" "$dir/home"
    echo "[]." >"$dir/enabled_plugins"
    head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/home/.erlang.cookie"
    chmod 600 "$dir/home/.erlang.cookie"
    if [ "$(id -u)" = 0 ]; then
        user=rabbitmq
        id "$user" >/dev/null 2>&1 || user=nobody
        chown -R "$user" "$dir"
    fi
    cat >"$dir/env" <<ENV
export HOME=$dir/home RABBITMQ_NODENAME=events-test-$port@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=$port RABBITMQ_DIST_PORT=$((port + 1)) RABBITMQ_MNESIA_BASE=$dir/mnesia
export RABBITMQ_LOG_BASE=$dir/log RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
export RABBITMQ_CONFIG_FILE=$dir/none RABBITMQ_ADVANCED_CONFIG_FILE=$dir/none.config
export RABBITMQ_PID_FILE=$dir/rabbitmq.pid ERL_EPMD_ADDRESS=127.0.0.1
ENV
    echo "$bin" >"$dir/bin"
    echo "$user" >"$dir/user"
    (
        cd "$dir"
        # shellcheck disable=SC1091
        . "$dir/env"
        if [ -n "$user" ]; then
            exec runuser -u "$user" -- env HOME="$HOME" setsid "$bin/rabbitmq-server"
        else
            exec setsid "$bin/rabbitmq-server"
        fi
    ) >"$dir/server.out" 2>&1 </dev/null &
    local waited=0
    until port_in_use "$port"; do
        sleep 0.2
        waited=$((waited + 1))
        [ "$waited" -lt 300 ] ||
            { tail -n 40 "$dir/server.out" >&2 2>/dev/null; die "rabbitmq-server did not listen on port $port within 60 s (output above)"; }
    done
    EVENTS_RABBITMQ_URL="amqp://guest:guest@127.0.0.1:$port/%2f"
    echo "RabbitMQ running at $EVENTS_RABBITMQ_URL (data in $dir)" >&2
}

stop_rabbitmq() {
    local dir=$1/rabbitmq bin user pid
    [ -f "$dir/bin" ] || return 0
    bin=$(cat "$dir/bin")
    user=$(cat "$dir/user")
    pid=$(cat "$dir/mnesia/"*.pid "$dir/rabbitmq.pid" 2>/dev/null | head -n 1 || true)
    (
        cd "$dir"
        # shellcheck disable=SC1091
        . "$dir/env"
        if [ -n "$user" ]; then
            runuser -u "$user" -- env HOME="$HOME" "$bin/rabbitmqctl" -n "$RABBITMQ_NODENAME" stop
        else
            "$bin/rabbitmqctl" -n "$RABBITMQ_NODENAME" stop
        fi
    ) >/dev/null 2>&1 || { [ -n "$pid" ] && kill "$pid" 2>/dev/null; } || true
    if [ -n "$pid" ]; then
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
}

start() {
    servers_dir=${servers_dir:-$(mktemp -d "${TMPDIR:-/tmp}/events-servers.XXXXXX")}
    chmod 755 "$servers_dir"
    start_postgres
    echo "PostgreSQL running at $EVENTS_POSTGRES_URL (data in $servers_dir)" >&2
    mkdir -p "$servers_dir/nats"
    eval "$(nats_dir="$servers_dir/nats" "$here/nats.sh" start)"
    start_redis
    start_rabbitmq
}

stop() {
    local dir=${1:-${EVENTS_SERVERS_DIR:-}}
    [ -n "$dir" ] || die "nothing to stop: EVENTS_SERVERS_DIR is not set (it is exported by \`start\`)"
    [ -d "$dir" ] || return 0
    [ -d "$dir/nats" ] && "$here/nats.sh" stop "$dir/nats"
    stop_redis "$dir"
    stop_rabbitmq "$dir"
    stop_postgres "$dir"
    rm -rf "$dir"
}

case "${1:-}" in
start)
    start
    printf 'export EVENTS_POSTGRES_URL=%q EVENTS_NATS_URL=%q EVENTS_REDIS_URL=%q EVENTS_RABBITMQ_URL=%q EVENTS_SERVERS_DIR=%q\n' \
        "$EVENTS_POSTGRES_URL" "$EVENTS_NATS_URL" "$EVENTS_REDIS_URL" "$EVENTS_RABBITMQ_URL" "$servers_dir"
    ;;
stop)
    stop "${2:-}"
    ;;
run)
    shift
    [ $# -gt 0 ] || die "usage: scripts/servers.sh run CMD..."
    servers_dir=$(mktemp -d "${TMPDIR:-/tmp}/events-servers.XXXXXX")
    trap 'stop "$servers_dir"' EXIT
    start
    export EVENTS_POSTGRES_URL EVENTS_NATS_URL EVENTS_REDIS_URL EVENTS_RABBITMQ_URL EVENTS_SERVERS_DIR="$servers_dir"
    trap 'exit 130' INT TERM
    "$@"
    ;;
*)
    die "usage: scripts/servers.sh start | stop [DIR] | run CMD..."
    ;;
esac
