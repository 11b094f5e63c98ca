#!/usr/bin/env bash
# Benchmark of a REST pull from a local peer into PostgreSQL: N generated records (default
# 200,000) served in pages, pulled through the REST adapter, committed to a fresh database.
# Usage: scripts/bench-pull.sh [N] [PAGE_SIZE]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
PAGE=${2:-1000}
work=$(mktemp -d /tmp/gateway-bench-pull.XXXXXX)
trap 'rm -rf "$work"' EXIT
cargo build --release -q -p gateway --example bench_pull
python3 scripts/gen_records.py "$N" > "$work/records.jsonl"
"${CARGO_TARGET_DIR:-target}/release/examples/bench_pull" "$work/records.jsonl" \
    "${GATEWAY_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}" "$PAGE"
