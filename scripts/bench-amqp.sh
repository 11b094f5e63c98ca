#!/usr/bin/env bash
# Benchmark of the AMQP source (consume -> commit into PostgreSQL -> acknowledge): N generated
# records (default 200,000) published as one message each, then consumed by the gateway.
# Usage: scripts/bench-amqp.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
work=$(mktemp -d /tmp/gateway-bench-amqp.XXXXXX)
trap 'rm -rf "$work"' EXIT
cargo build --release -q -p gateway --example bench_amqp
python3 scripts/gen_records.py "$N" > "$work/records.jsonl"
"${CARGO_TARGET_DIR:-target}/release/examples/bench_amqp" "$work/records.jsonl" \
    "${GATEWAY_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}" "${GATEWAY_BENCH_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
