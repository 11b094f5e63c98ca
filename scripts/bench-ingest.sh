#!/usr/bin/env bash
# Benchmark of `gateway ingest`: N generated JSON lines (default 1,000,000) into SQLite and into
# PostgreSQL (a fresh database `gw_bench`), release build. Prints records/s and peak memory
# (maximum resident set size from /usr/bin/time). Usage: scripts/bench-ingest.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
PG_BASE=${GATEWAY_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
work=$(mktemp -d /tmp/gateway-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

cargo build --release -q -p gateway
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null; }
python3 scripts/gen_records.py "$N" > "$work/records.jsonl"
echo "input: $N records, $(du -h "$work/records.jsonl" | cut -f1)"

mapping="$PWD/mappings/nanchang-amr-penalty/mapping.toml"
source_block="[[sources]]
id = \"nanchang-amr\"
mapping = \"$mapping\"
format = \"jsonl\"
record_key = \"ajbh\"

[[sinks]]
id = \"platform\"
kind = \"postgres\"
url = \"postgres://gateway@127.0.0.1:5432/platform\"

[[sinks]]
id = \"mq\"
kind = \"amqp\"
url = \"amqp://guest:guest@127.0.0.1:5672/%2f\""

run() {
    local name=$1 config=$2
    local start end
    start=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$work/$name.rss" "${CARGO_TARGET_DIR:-target}/release/gateway" ingest --config "$config" \
        --source nanchang-amr --quiet "$work/records.jsonl" > "$work/$name.summary"
    end=$(date +%s.%N)
    local secs rss
    secs=$(echo "$end - $start" | bc -l)
    rss=$(cat "$work/$name.rss")
    printf '%-10s %8.1f s  %9.0f records/s  peak RSS %6.1f MB  %s\n' "$name" "$secs" \
        "$(echo "$N / $secs" | bc -l)" "$(echo "$rss / 1024" | bc -l)" "$(cat "$work/$name.summary")"
}

printf '[store]\nbackend = "sqlite"\npath = "%s/bench.db"\n\n[normalizer]\nprovince_prefix = "36"\n\n%s\n' \
    "$work" "$source_block" > "$work/sqlite.toml"
run sqlite "$work/sqlite.toml"

psql "$PG_BASE/postgres" -q -c "DROP DATABASE IF EXISTS gw_bench WITH (FORCE)" -c "CREATE DATABASE gw_bench"
printf '[store]\nbackend = "postgres"\nurl = "%s/gw_bench"\npool_size = 4\n\n[normalizer]\nprovince_prefix = "36"\n\n%s\n' \
    "$PG_BASE" "$source_block" > "$work/pg.toml"
run postgres "$work/pg.toml"
psql "$PG_BASE/postgres" -q -c "DROP DATABASE IF EXISTS gw_bench WITH (FORCE)"
