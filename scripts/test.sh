#!/usr/bin/env bash
# The whole test suite, on a fresh machine or this one:
#   1. starts PostgreSQL and RabbitMQ if they are not running (installing them with apt-get
#      where absent; a fresh PostgreSQL gets trust auth on 127.0.0.1 for the tests), and
#      installs Chromium + chromedriver for the dashboard's browser tests when absent, and
#      axe-core (npm, into .cache/axe) for their accessibility checks, and starts an
#      S3-compatible server for the attachment tests (moto_server from PyPI, on 127.0.0.1:5055,
#      installed with pip when absent),
#   2. checks formatting and lints,
#   3. runs every test (unit, property, store conformance on SQLite and PostgreSQL, end-to-end),
#   4. builds and starts the packaging: cargo install, the systemd unit, the container image
#      (scripts/package-test.sh; starts dockerd, installing docker.io where absent).
# Environment: GATEWAY_TEST_PG_URL overrides the PostgreSQL server the tests use.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*" >&2; }

apt_install() {
    if ! command -v apt-get >/dev/null; then
        echo "apt-get not available: install $* yourself" >&2
        return 1
    fi
    if [ -z "${APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_ready() {
    if command -v pg_isready >/dev/null; then
        pg_isready -q -h 127.0.0.1 -p 5432
    else
        (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null
    fi
}

ensure_postgres() {
    if pg_ready; then return 0; fi
    local installed_now=""
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        log "installing PostgreSQL"
        apt_install postgresql
        installed_now=1
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    if [ -n "$installed_now" ]; then
        # Tests connect as postgres over TCP without a password.
        sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "/etc/postgresql/$version/main/pg_hba.conf"
    fi
    log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do pg_ready && return 0; sleep 1; done
    echo "PostgreSQL did not start" >&2
    return 1
}

rabbit_ready() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

ensure_rabbitmq() {
    if rabbit_ready; then return 0; fi
    if ! command -v rabbitmq-server >/dev/null; then
        log "installing RabbitMQ"
        apt_install rabbitmq-server
    fi
    log "starting RabbitMQ"
    rabbitmq-server -detached >/dev/null 2>&1 || true
    for _ in $(seq 1 60); do rabbit_ready && return 0; sleep 1; done
    echo "RabbitMQ did not start" >&2
    return 1
}

ensure_chromium() {
    # The dashboard's browser test (tests/dashboard.rs) drives headless Chromium via chromedriver.
    # A CJK font makes the Chinese text of its screenshots readable.
    if [ -x /usr/bin/chromium ] && command -v chromedriver >/dev/null && ls /usr/share/fonts/truetype/wqy/wqy-microhei.ttc >/dev/null 2>&1; then
        return 0
    fi
    log "installing Chromium, chromedriver and a CJK font"
    apt_install chromium chromium-driver fonts-wqy-microhei || echo "Chromium not installed: the dashboard browser test will be skipped" >&2
}

ensure_axe() {
    # The dashboard's browser tests check every page with axe-core (injected through WebDriver);
    # it is kept out of git, in .cache/axe, and required once installed here.
    local dir=.cache/axe
    local js="$dir/node_modules/axe-core/axe.min.js"
    if [ ! -f "$js" ]; then
        if ! command -v npm >/dev/null; then
            echo "npm not available: the dashboard's accessibility checks will be skipped" >&2
            return 0
        fi
        log "installing axe-core into $dir (npm)"
        mkdir -p "$dir"
        npm install --silent --no-audit --no-fund --prefix "$dir" axe-core@4.14.1
    fi
    export DASHBOARD_AXE_JS="$PWD/$js"
    export DASHBOARD_REQUIRE_AXE=1
}

s3_ready() { (exec 3<>/dev/tcp/127.0.0.1/5055) 2>/dev/null; }

ensure_s3() {
    # tests/attachments.rs stores evidence attachments in a real S3-compatible server.
    if s3_ready; then return 0; fi
    if ! python3 -c 'import moto.server, flask' >/dev/null 2>&1; then
        log "installing moto[server] (pip)"
        python3 -m pip install --quiet 'moto[server]'
    fi
    log "starting moto_server on 127.0.0.1:5055"
    nohup python3 -m moto.server -H 127.0.0.1 -p 5055 >/tmp/moto_server.log 2>&1 &
    for _ in $(seq 1 60); do s3_ready && return 0; sleep 1; done
    echo "moto_server did not start (see /tmp/moto_server.log)" >&2
    return 1
}

ensure_postgres
ensure_rabbitmq
ensure_chromium
ensure_axe
ensure_s3

log "cargo fmt --check"
cargo fmt --all -- --check
log "import graph: no circles, no upward imports (scripts/import_graph.py)"
python3 scripts/import_graph.py
log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
log "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi
log "packaging: cargo install, systemd unit, container image (scripts/package-test.sh)"
scripts/package-test.sh
