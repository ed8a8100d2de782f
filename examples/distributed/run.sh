#!/usr/bin/env bash
# The distributed scenario, locally: PostgreSQL and a broker (NATS JetStream or Redis Streams,
# chosen by URL), the ordering service (places orders through the transactional outbox in its
# PostgreSQL store, relays its log, sends receipts) and the shipping service (takes the stream
# into its own SQLite store, schedules deliveries, retries, dead-letters). Prints what each side
# did.
#
#   examples/distributed/run.sh     20 orders; PostgreSQL at EVENTS_POSTGRES_URL, the broker at
#                                   BROKER_URL (nats://HOST:PORT or redis://HOST:PORT; default
#                                   EVENTS_NATS_URL), or (when either is unset) the servers
#                                   started here with scripts/servers.sh and stopped at the end
#
# Settings: ORDERS (default 20), DISTRIBUTED_STREAM (default ORDERS), ORDERING_SCHEMA (the
# ordering service's PostgreSQL schema, default `ordering_<pid>`), ORDERING_BIN and SHIPPING_BIN
# (default: built with cargo).
set -euo pipefail
cd "$(dirname "$0")/../.."

orders=${ORDERS:-20}
stream=${DISTRIBUTED_STREAM:-ORDERS}
if [ -z "${ORDERING_BIN:-}" ] || [ -z "${SHIPPING_BIN:-}" ]; then
    cargo build -q -p distributed
    ORDERING_BIN=${CARGO_TARGET_DIR:-target}/debug/ordering
    SHIPPING_BIN=${CARGO_TARGET_DIR:-target}/debug/shipping
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/events-distributed.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -n "${own_servers:-}" ]; then scripts/servers.sh stop "$EVENTS_SERVERS_DIR"; fi
    rm -rf "$work"
}
trap cleanup EXIT
broker=${BROKER_URL:-${EVENTS_NATS_URL:-}}
if [ -z "$broker" ] || [ -z "${EVENTS_POSTGRES_URL:-}" ]; then
    eval "$(scripts/servers.sh start)"
    own_servers=1
    broker=${BROKER_URL:-$EVENTS_NATS_URL}
fi
export ORDERING_URL=$EVENTS_POSTGRES_URL ORDERING_SCHEMA=${ORDERING_SCHEMA:-ordering_$$}
export SHIPPING_DB=$work/shipping.db

# (Long-running processes are started without these functions, so that $! is their pid.)
ordering() { "$ORDERING_BIN" "$@"; }
shipping() { "$SHIPPING_BIN" "$@"; }
# The columns of a handler's line in `status`: HANDLER EVENT CHECKPOINT LAG LAG-AGE RETRYING ...
column() { awk -v h="$2" -v c="$3" '$1 == h { print $c }' <<<"$1"; }

ordering place-orders "$orders"
"$SHIPPING_BIN" process --all --source "$broker" --stream "$stream" --consumer shipping \
    --poll-interval 50ms >"$work/shipping.out" 2>"$work/shipping.err" &
pids+=($!)
# RabbitMQ drops what no queue is bound to take: the shipping service's queue (declared by its
# inbox) exists before the relay publishes. NATS and Redis keep their streams.
case $broker in
amqp*) for _ in $(seq 100); do grep -q "inbox" "$work/shipping.err" 2>/dev/null && break; sleep 0.1; done; sleep 1 ;;
esac
"$ORDERING_BIN" relay --to "$broker" --stream "$stream" --subject-prefix "${stream,,}" \
    >"$work/relay.out" 2>"$work/relay.err" &
pids+=($!)
"$ORDERING_BIN" process --all --poll-interval 50ms >"$work/ordering.out" 2>"$work/ordering.err" &
pids+=($!)

# Until both sides have settled every order: shipping's inbox holds them all, nothing is left
# to deliver or retry; ordering has sent every receipt.
for _ in $(seq 600); do
    s=$(shipping status 2>/dev/null)
    o=$(ordering status 2>/dev/null)
    if grep -q "^log head: position $orders\$" <<<"$s" &&
        [ "$(column "$s" shipping.schedule_delivery 4)" = 0 ] &&
        [ "$(column "$s" shipping.schedule_delivery 6)" = 0 ] &&
        [ "$(column "$o" ordering.send_receipt 4)" = 0 ]; then
        settled=1
        break
    fi
    sleep 0.2
done
for pid in "${pids[@]}"; do kill "$pid"; done
for pid in "${pids[@]}"; do
    rc=0; wait "$pid" || rc=$?
    [ "$rc" = 0 ] || { cat "$work"/*.err >&2; echo "a service (pid $pid) failed: exit $rc (logs above)" >&2; exit 1; }
done
pids=()
[ -n "${settled:-}" ] || { cat "$work"/*.err >&2; echo "the services did not settle within 2 minutes" >&2; exit 1; }

echo "== ordering: receipts (its own durable handler)"
grep -c '^ordering: receipt' "$work/ordering.out" | sed 's/$/ receipts sent/'
echo "== ordering: relay"
cat "$work/relay.out"
echo "== shipping: deliveries scheduled"
grep '^shipping: delivery' "$work/shipping.out" | sort -t' ' -k5n
echo "== shipping: inbox and worker"
grep -v '^shipping: delivery' "$work/shipping.out"
echo "== shipping: status"
shipping status
echo "== shipping: dead letters (in the shipping store)"
shipping dead-letters

receipts=$(grep -c '^ordering: receipt' "$work/ordering.out" || true)
relayed=$(sed -n 's/^relay: \([0-9]*\) published.*/\1/p' "$work/relay.out")
ingested=$(sed -n 's/^inbox: \([0-9]*\) ingested.*/\1/p' "$work/shipping.out")
scheduled=$(grep -c '^shipping: delivery' "$work/shipping.out" || true)
dead=$(shipping dead-letters | grep -c 'shipping.schedule_delivery' || true)
echo "== in short"
echo "The ordering service committed $orders orders, each with its OrderPlaced event in the same"
echo "PostgreSQL transaction (schema $ORDERING_SCHEMA), sent $receipts receipts from its own durable"
echo "handler, and its relay published $relayed events to the stream $stream at ${broker%%://*}://. The shipping service"
echo "took $ingested events from the stream into its SQLite store, scheduled $scheduled deliveries"
echo "(retrying the carrier's transient refusals) and holds $dead orders it cannot ship as dead letters."
