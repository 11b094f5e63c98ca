#!/usr/bin/env bash
# Two builds side by side, in one run: `gateway ingest` of N generated records into a fresh
# PostgreSQL database, a REST pull of N records (bench_pull) and an AMQP consume of N messages
# (bench_amqp), the OLD and the NEW build alternately, ROUNDS times. Instances of this machine
# class differ in speed by up to 3x, so builds are compared by their ratio within one run, never
# against another day's figure.
#
# Usage: scripts/bench-compare.sh OLD_DIR NEW_DIR [N] [ROUNDS]
#   each DIR holds `gateway`, `bench_pull` and `bench_amqp` release binaries, e.g. made by
#   `cargo build --release -p gateway --bins --example bench_pull --example bench_amqp` and
#   copied from target/release (and target/release/examples), and optionally `mappings/` (a copy
#   of that build's mapping folders, used by its `gateway ingest`).
#   BENCH_ONLY=ingest: the ingest alone (DIRs then need only `gateway`).
#   A DIR may hold `extra.toml`: appended to that build's configuration (e.g. `[archive]
#   chain = false`, to compare one binary with a feature off and on).
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$1
NEW=$2
N=${3:-100000}
ROUNDS=${4:-3}
PG_BASE=${GATEWAY_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
AMQP=${GATEWAY_BENCH_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
work=$(mktemp -d /tmp/gateway-bench-compare.XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 scripts/gen_records.py "$N" > "$work/records.jsonl"
echo "input: $N records, $(du -h "$work/records.jsonl" | cut -f1)"

# Each build maps with its own tree's mapping when its DIR holds a copy (DIR/mappings/...): a
# mapping may use canonical fields an older build does not know.
config_for() {
    local dir=$1 mapping="$PWD/mappings/nanchang-amr-penalty/mapping.toml"
    [ -f "$dir/mappings/nanchang-amr-penalty/mapping.toml" ] && mapping="$dir/mappings/nanchang-amr-penalty/mapping.toml"
    printf '[store]\nbackend = "postgres"\nurl = "%s/gw_bench"\npool_size = 4\n\n[normalizer]\nprovince_prefix = "36"\n\n[[sources]]\nid = "nanchang-amr"\nmapping = "%s"\nformat = "jsonl"\nrecord_key = "ajbh"\n' \
        "$PG_BASE" "$mapping" > "$work/pg-$(basename "$dir").toml"
    [ -f "$dir/extra.toml" ] && cat "$dir/extra.toml" >> "$work/pg-$(basename "$dir").toml"
    echo "$work/pg-$(basename "$dir").toml"
}

ingest() {
    local dir=$1 config
    config=$(config_for "$dir")
    psql "$PG_BASE/postgres" -q -c "DROP DATABASE IF EXISTS gw_bench WITH (FORCE)" -c "CREATE DATABASE gw_bench"
    local start end
    start=$(date +%s.%N)
    "$dir/gateway" ingest --config "$config" --source nanchang-amr --quiet "$work/records.jsonl" > /dev/null
    end=$(date +%s.%N)
    echo "$N / ($end - $start)" | bc -l
}

rate_of() { sed -n 's/.* = \([0-9]*\) [a-z]*\/s.*/\1/p' | tail -n 1; }

for round in $(seq 1 "$ROUNDS"); do
    for build in old new; do
        dir=$OLD
        [ "$build" = new ] && dir=$NEW
        i=$(ingest "$dir")
        p=- a=-
        if [ "${BENCH_ONLY:-}" != ingest ]; then
            p=$("$dir/bench_pull" "$work/records.jsonl" "$PG_BASE" 1000 2>/dev/null | rate_of)
            a=$("$dir/bench_amqp" "$work/records.jsonl" "$PG_BASE" "$AMQP" 2>/dev/null | rate_of)
        fi
        printf 'round %d %-3s ingest %8.0f  pull %8s  amqp %8s  records/s\n' "$round" "$build" "$i" "$p" "$a"
    done
done
psql "$PG_BASE/postgres" -q -c "DROP DATABASE IF EXISTS gw_bench WITH (FORCE)"
