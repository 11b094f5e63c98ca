#!/usr/bin/env bash
# The joint-inspection index (issue 24) measured with one release build:
#   1. `gateway ingest` of N generated inspections (scripts/gen_inspections.py) into a fresh
#      PostgreSQL database with `[joint] enabled = true` (index kept at commit), `index =
#      "background"` (commits only queue the facts) and `enabled = false`, in turn, ROUNDS
#      times: each mode's cost is the ratio of its rate to the rate without the index, within one
#      run; then the queue of the last background ingest is applied by `gateway joint drain`
#      (timed: what the indexer does off the commit path);
#   2. a full `gateway joint rebuild` over REBUILD_N inspections (ingested with the index off),
#      timed from an empty index and again over the groups it found.
#
# Usage: scripts/bench-joint.sh DIR [N] [ROUNDS] [REBUILD_N]
#   DIR holds a release `gateway` binary (cargo build --release -p gateway).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=$1
N=${2:-100000}
ROUNDS=${3:-3}
REBUILD_N=${4:-1000000}
PG_BASE=${GATEWAY_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}
work=$(mktemp -d /tmp/gateway-bench-joint.XXXXXX)
trap 'rm -rf "$work"' EXIT
mapping="$PWD/mappings/internet-plus-behaviour/mapping.toml"

config() {
    printf '[store]\nbackend = "postgres"\nurl = "%s/gw_bench_joint"\npool_size = 4\n\n[normalizer]\nprovince_prefix = "36"\n\n[joint]\nenabled = %s\nindex = "%s"\n\n[[sources]]\nid = "behaviour"\nmapping = "%s"\nformat = "jsonl"\nrecord_key = "record_unique_identity"\n' \
        "$PG_BASE" "$1" "${2:-commit}" "$mapping" > "$work/joint-$1-${2:-commit}.toml"
    echo "$work/joint-$1-${2:-commit}.toml"
}

fresh_db() {
    psql "$PG_BASE/postgres" -q -c "DROP DATABASE IF EXISTS gw_bench_joint WITH (FORCE)" -c "CREATE DATABASE gw_bench_joint"
}

ingest() {
    local cfg=$1 file=$2 start end
    fresh_db
    start=$(date +%s.%N)
    "$DIR/gateway" ingest --config "$cfg" --source behaviour --quiet "$file" > /dev/null
    end=$(date +%s.%N)
    echo "$(wc -l < "$file") / ($end - $start)" | bc -l
}

python3 scripts/gen_inspections.py "$N" > "$work/inspections.jsonl"
echo "input: $N inspections, $(du -h "$work/inspections.jsonl" | cut -f1)"
on=$(config true)
off=$(config false)
background=$(config true background)
for round in $(seq 1 "$ROUNDS"); do
    a=$(ingest "$on" "$work/inspections.jsonl")
    b=$(ingest "$off" "$work/inspections.jsonl")
    c=$(ingest "$background" "$work/inspections.jsonl")
    printf 'round %d  at commit %8.0f  off %8.0f  background %8.0f  records/s  commit/off %.3f  background/off %.3f\n' \
        "$round" "$a" "$b" "$c" "$(echo "$a / $b" | bc -l)" "$(echo "$c / $b" | bc -l)"
done
start=$(date +%s.%N)
"$DIR/gateway" joint drain --config "$background"
end=$(date +%s.%N)
printf 'drain of the last background ingest (%d inspections): %.1f s\n' "$N" "$(echo "$end - $start" | bc -l)"

if [ "$REBUILD_N" -gt 0 ]; then
    python3 scripts/gen_inspections.py "$REBUILD_N" --seed 2 > "$work/rebuild.jsonl"
    fresh_db
    start=$(date +%s.%N)
    "$DIR/gateway" ingest --config "$off" --source behaviour --quiet "$work/rebuild.jsonl" > /dev/null
    end=$(date +%s.%N)
    printf 'ingest of %d inspections, index off: %.1f s\n' "$REBUILD_N" "$(echo "$end - $start" | bc -l)"
    for pass in "from an empty index" "over the groups found"; do
        echo "rebuild $pass:"
        "$DIR/gateway" joint rebuild --config "$on"
    done
fi
psql "$PG_BASE/postgres" -q -c "DROP DATABASE IF EXISTS gw_bench_joint WITH (FORCE)"
