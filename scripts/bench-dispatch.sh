#!/usr/bin/env bash
# Benchmark of onward delivery (release build). Usage: scripts/bench-dispatch.sh [N]  (default 100000)
#   1. N generated records are ingested into a fresh PostgreSQL store with three sinks configured:
#      PostgreSQL platform tables (database gw_bench_sink), AMQP (RabbitMQ vhost gw_bench_dispatch,
#      a durable queue bound) and REST (adapters/examples/bench_receiver.rs on 127.0.0.1:18089).
#   2. Each sink's outbox is then drained alone by `gateway run --once` and timed: deliveries/s,
#      and the CPU time per delivery of the gateway, the store database and the sink (the machine
#      is shared: CPU time says what the work costs when the wall time is stretched by others).
#   3. Ingestion and dispatch together: `gateway run` dispatches to the PostgreSQL and AMQP sinks
#      while `gateway ingest` commits N more records; prints the ingest rate and how far the
#      dispatch lags behind (time from the end of the ingest until both outboxes are empty).
# Needs PostgreSQL (GATEWAY_BENCH_PG_URL, default postgres://postgres@127.0.0.1:5432) and RabbitMQ
# on 127.0.0.1:5672 with rabbitmqctl (root). Databases and the vhost are removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
PG_BASE=${GATEWAY_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
VHOST=gw_bench_dispatch
TARGET=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d /tmp/gateway-bench-dispatch.XXXXXX)
receiver=""
runner=""

cleanup() {
    [ -n "$runner" ] && kill "$runner" 2>/dev/null || true
    [ -n "$receiver" ] && kill "$receiver" 2>/dev/null || true
    psql "$PG_BASE/postgres" -q -c "DROP DATABASE IF EXISTS gw_bench_store WITH (FORCE)" \
        -c "DROP DATABASE IF EXISTS gw_bench_sink WITH (FORCE)" >/dev/null 2>&1 || true
    rabbitmqctl -q delete_vhost "$VHOST" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

cargo build --release -q -p gateway
cargo build --release -q -p adapters --example bench_receiver
bin="$TARGET/release/gateway"

python3 scripts/gen_records.py "$N" > "$work/a.jsonl"
python3 scripts/gen_records.py "$N" --start $((N + 1)) > "$work/b.jsonl"
echo "input: 2 x $N records, $(du -h "$work/a.jsonl" | cut -f1) each"

psql "$PG_BASE/postgres" -q -c "DROP DATABASE IF EXISTS gw_bench_store WITH (FORCE)" -c "CREATE DATABASE gw_bench_store" \
    -c "DROP DATABASE IF EXISTS gw_bench_sink WITH (FORCE)" -c "CREATE DATABASE gw_bench_sink"
rabbitmqctl -q delete_vhost "$VHOST" >/dev/null 2>&1 || true
rabbitmqctl -q add_vhost "$VHOST" >/dev/null
rabbitmqctl -q set_permissions -p "$VHOST" guest ".*" ".*" ".*" >/dev/null
"$TARGET/release/examples/bench_receiver" 127.0.0.1:18089 > "$work/receiver.addr" 2> "$work/receiver.log" &
receiver=$!

mapping="$PWD/mappings/nanchang-amr-penalty/mapping.toml"
sink_platform="[[sinks]]
id = \"platform\"
kind = \"postgres\"
url = \"$PG_BASE/gw_bench_sink\"
"
sink_mq="[[sinks]]
id = \"mq\"
kind = \"amqp\"
url = \"amqp://guest:guest@127.0.0.1:5672/$VHOST\"
bind_queue = \"platform\"
"
sink_upload="[[sinks]]
id = \"upload\"
kind = \"rest\"
url = \"http://127.0.0.1:18089/upload\"
concurrency = 32
"
config() { # file, sink blocks...
    local file=$1
    shift
    printf '[store]\nbackend = "postgres"\nurl = "%s/gw_bench_store"\npool_size = 8\n\n[normalizer]\nprovince_prefix = "36"\n\n[[sources]]\nid = "nanchang-amr"\nmapping = "%s"\nformat = "jsonl"\nrecord_key = "ajbh"\n\n' \
        "$PG_BASE" "$mapping" > "$file"
    for block in "$@"; do printf '%s\n' "$block" >> "$file"; done
}
now() { date +%s.%N; }
outbox_count() { # sink, status
    psql "$PG_BASE/gw_bench_store" -tAq -c "SELECT count(*) FROM outbox WHERE sink_id = '$1' AND status = '$2'"
}

config "$work/all.toml" "$sink_platform" "$sink_mq" "$sink_upload"
start=$(now)
"$bin" ingest --config "$work/all.toml" --source nanchang-amr --quiet "$work/a.jsonl" > /dev/null
printf 'ingest (3 sinks)   %9.0f records/s\n' "$(echo "$N / ($(now) - $start)" | bc -l)"

drain() { # sink id, sink block
    config "$work/$1.toml" "$2"
    local t0 t1
    t0=$(now)
    # CPU seconds of the gateway, of the store database's and the sink's processes (see cpu_of.py).
    GATEWAY_LOG=warn python3 scripts/cpu_of.py "release/gateway,gw_bench_store,$3" -- \
        "$bin" run --once --config "$work/$1.toml" 2> "$work/$1.log"
    t1=$(now)
    local delivered cpu
    delivered=$(outbox_count "$1" delivered)
    cpu=$(grep '^cpu ' "$work/$1.log" | awk -v n="$delivered" '{printf "%s %.0f µs  ", $2, $3 * 1e6 / n}')
    printf 'drain %-10s %7.0f deliveries/s  (%s delivered, %s pending, %s dead in %.1f s)  CPU per delivery: %s\n' \
        "$1" "$(echo "$delivered / ($t1 - $t0)" | bc -l)" "$delivered" "$(outbox_count "$1" pending)" \
        "$(outbox_count "$1" dead)" "$(echo "$t1 - $t0" | bc -l)" "$cpu"
}
drain platform "$sink_platform" gw_bench_sink
drain mq "$sink_mq" beam.smp
drain upload "$sink_upload" bench_receiver

# Ingestion and dispatch at once.
config "$work/both.toml" "$sink_platform" "$sink_mq"
GATEWAY_LOG=warn "$bin" run --config "$work/both.toml" 2> "$work/run.log" &
runner=$!
sleep 1
t0=$(now)
"$bin" ingest --config "$work/both.toml" --source nanchang-amr --quiet "$work/b.jsonl" > /dev/null
t1=$(now)
while [ "$(outbox_count platform pending)" != 0 ] || [ "$(outbox_count mq pending)" != 0 ]; do sleep 0.2; done
t2=$(now)
kill -TERM "$runner"
wait "$runner" || true
runner=""
printf 'ingest while dispatching %9.0f records/s; dispatch done %.1f s after the ingest (overall %.0f records/s through both sinks)\n' \
    "$(echo "$N / ($t1 - $t0)" | bc -l)" "$(echo "$t2 - $t1" | bc -l)" "$(echo "$N / ($t2 - $t0)" | bc -l)"
