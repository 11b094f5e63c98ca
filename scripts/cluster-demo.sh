#!/usr/bin/env bash
# Three gateway instances sharing the work on one PostgreSQL store, on one machine.
#
#   scripts/cluster-demo.sh            # builds the gateway (debug), starts a demo REST system with
#                                      # two lists, and three `gateway run` instances on ports
#                                      # 8081-8083; prints who holds which job; Ctrl-C stops all
#   KILL_EVERY=20 scripts/cluster-demo.sh   # also SIGKILL the holder of the first list every 20 s
#                                      # and start a fresh instance in its place
#
# Open http://127.0.0.1:8081/ (or 8082, 8083) and log in with the admin token printed below:
# the overview's Instances panel shows each instance, its heartbeat and the jobs it holds; each
# source says which instance runs it. Needs PostgreSQL on 127.0.0.1:5432 (trust auth; PG_URL
# overrides), python3 and cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
DB=gw_cluster_demo
PEER_PORT=${PEER_PORT:-18990}
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    echo "logs kept in $work"
}
trap cleanup EXIT INT TERM

cargo build -q -p gateway
GW=${CARGO_TARGET_DIR:-target}/debug/gateway
psql "$PG_URL/postgres" -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null

python3 scripts/demo_peer.py "$PEER_PORT" --records 3000 --grow 20 --lists a,b 2>"$work/peer.log" &
pids+=($!)

token_out=$("$GW" token new --name demo-admin --role admin)
token=$(printf '%s\n' "$token_out" | grep -Eo 'gwt_[0-9a-f]+' | head -1)
sha=$(printf '%s\n' "$token_out" | grep -Eo 'sha256 = "[0-9a-f]{64}"' | head -1)

write_config() { # $1: port
    cat >"$work/gateway-$1.toml" <<CONF
[store]
backend = "postgres"
url = "$PG_URL/$DB"
pool_size = 4

[normalizer]
province_prefix = "36"

[cluster]
lease_seconds = 8
renew_seconds = 2
acquire_seconds = 1
heartbeat_seconds = 2

[server]
listen = "127.0.0.1:$1"

[[server.tokens]]
name = "demo-admin"
role = "admin"
$sha
CONF
    for list in a b; do
        cat >>"$work/gateway-$1.toml" <<CONF

[[sources]]
id = "dept-$list"
kind = "rest"
mapping = "$PWD/mappings/nanchang-amr-penalty/mapping.toml"
record_key = "ajbh"
poll_seconds = 2
[sources.rest]
url = "http://127.0.0.1:$PEER_PORT/$list/list"
pagination = "page"
page_param = "pageNo"
page_size_param = "pageSize"
page_size = 200
records_path = "data.rows"
total_path = "data.total"
status_path = "code"
success_values = ["200"]
message_path = "msg"
watermark_path = "cd_time"
since_param = "since"
overlap_seconds = 5
rate_limit_per_second = 5
CONF
    done
}

start() { # $1: port
    write_config "$1"
    "$GW" run --config "$work/gateway-$1.toml" --log info 2>"$work/instance-$1.log" &
    pids+=($!)
    echo "instance on 127.0.0.1:$1 (pid $!)"
}
declare -A pid_of
for port in 8081 8082 8083; do start "$port"; pid_of[$port]=${pids[-1]}; done

echo
echo "dashboard: http://127.0.0.1:8081/  (also 8082, 8083); admin token: $token"
echo
show() {
    psql "$PG_URL/$DB" -Atc "SELECT rpad(job, 16) || ' held by ' || holder || ' (epoch ' || epoch || CASE WHEN expires_at <= now() THEN ', expired' ELSE '' END || ')' FROM job_leases ORDER BY job" 2>/dev/null || true
    psql "$PG_URL/$DB" -Atc "SELECT 'cases: ' || count(*) FROM cases" 2>/dev/null || true
}
last_kill=$(date +%s)
while sleep 5; do
    echo "--- $(date +%H:%M:%S)"
    show
    if [[ -n "${KILL_EVERY:-}" ]] && (( $(date +%s) - last_kill >= KILL_EVERY )); then
        holder_pid=$(psql "$PG_URL/$DB" -Atc "SELECT i.pid FROM job_leases l JOIN instances i ON i.id = l.holder WHERE l.job = 'source:dept-a' AND l.expires_at > now()" || true)
        for port in "${!pid_of[@]}"; do
            if [[ "${pid_of[$port]}" == "$holder_pid" ]]; then
                echo "SIGKILL the holder of dept-a (port $port, pid $holder_pid); a fresh instance takes its place"
                kill -9 "$holder_pid"
                start "$port"; pid_of[$port]=${pids[-1]}
            fi
        done
        last_kill=$(date +%s)
    fi
done
