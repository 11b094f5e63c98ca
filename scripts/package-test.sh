#!/usr/bin/env bash
# Packaging, tested: builds and starts the gateway each way docs/deployment.md describes.
#   1. `cargo install --path gateway`: installs the binary, starts it, asks /readyz and the API,
#      stops it with SIGTERM (exit status 0 expected).
#   2. systemd (deploy/systemd/*.service): `systemd-analyze verify`, the offline security rating
#      (exposure at most 2.0), then the unit's ExecStartPre and ExecStart run as its User in its
#      WorkingDirectory with its Environment (systemd is not PID 1 on build machines, so the
#      sandbox options themselves are rated, not enforced, here).
#   3. The container (Dockerfile): the runtime image built around the binary of step 1 (target
#      `prebuilt`; the Dockerfile's own build stage needs the rust image from a registry), started,
#      checked to run as uid 10001 and to answer /readyz, then removed. Without a reachable image
#      registry the Debian base image is made with debootstrap (cached as an image).
# Profile: PACKAGE_PROFILE=debug (default: shares the test build) or release.
# Environment: PACKAGE_SKIP_CONTAINER=1 skips step 3 (it is not skipped quietly otherwise: no
# container engine is an error).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PROFILE=${PACKAGE_PROFILE:-debug}
WORK=$(mktemp -d /tmp/gw-package.XXXXXX)
PIDS=()
CONTAINER=""
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [ -n "$CONTAINER" ]; then docker rm -f "$CONTAINER" >/dev/null 2>&1 || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
log() { printf '\n== package: %s\n' "$*" >&2; }
fail() { echo "package test FAILED: $*" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_ready() { # url seconds
    local url=$1 seconds=$2
    for _ in $(seq 1 "$seconds"); do
        if "$BIN" probe "$url" --timeout-seconds 2 2>/dev/null; then return 0; fi
        sleep 1
    done
    return 1
}

TOKEN="gwt_$(python3 -c 'import secrets; print(secrets.token_hex(32))')"

# ------------------------------------------------------------------ 1. cargo install
log "cargo install --path gateway ($PROFILE)"
install_flags=(--path gateway --locked --root "$WORK/install" --target-dir "$ROOT/target")
if [ "$PROFILE" = debug ]; then install_flags+=(--debug); fi
cargo install "${install_flags[@]}" 2>&1 | tail -n 3
BIN="$WORK/install/bin/gateway"
[ -x "$BIN" ] || fail "cargo install made no $BIN"
"$BIN" --version

PORT=$(free_port)
mkdir -p "$WORK/plain"
cat > "$WORK/plain/gateway.toml" <<TOML
[store]
path = "state/gateway.db"
[server]
listen = "127.0.0.1:$PORT"
[[server.tokens]]
name = "admin"
role = "admin"
token_env = "GATEWAY_ADMIN_TOKEN"
TOML
GATEWAY_ADMIN_TOKEN=$TOKEN "$BIN" config check "$WORK/plain/gateway.toml" >/dev/null || fail "config check refused the minimal configuration"
GATEWAY_ADMIN_TOKEN=$TOKEN "$BIN" run --config "$WORK/plain/gateway.toml" >"$WORK/plain/log" 2>&1 &
pid=$!; PIDS+=("$pid")
wait_ready "http://127.0.0.1:$PORT/readyz" 60 || { cat "$WORK/plain/log" >&2; fail "the installed binary did not become ready"; }
status=$(python3 - "$PORT" "$TOKEN" <<'PY'
import sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/api/me", headers={"Authorization": f"Bearer {sys.argv[2]}"})
print(urllib.request.urlopen(req, timeout=5).status)
PY
)
[ "$status" = 200 ] || fail "/api/me answered $status"
kill -TERM "$pid"
wait "$pid" || fail "the installed binary did not stop cleanly on SIGTERM (exit $?)"
echo "cargo install: ready, /api/me 200, stopped cleanly"

# ------------------------------------------------------------------ 2. systemd
log "systemd units"
UNIT_DIR="$WORK/units"; mkdir -p "$UNIT_DIR"
for unit in deploy/systemd/*.service; do
    name=$(basename "$unit")
    sed "s#/usr/local/bin/gateway#$BIN#g" "$unit" > "$UNIT_DIR/$name"
    if command -v systemd-analyze >/dev/null; then
        out=$(systemd-analyze verify "$UNIT_DIR/$name" 2>&1 || true)
        if [ -n "$out" ]; then echo "$out" >&2; fail "systemd-analyze verify $name"; fi
        systemd-analyze security --offline=true --threshold=20 "$UNIT_DIR/$name" | tail -n 1 \
            || fail "$name: exposure above 2.0"
    else
        fail "systemd-analyze not found (Debian package systemd)"
    fi
done
# The single-instance unit's commands, as its user, with its environment and working directory.
UNIT=deploy/systemd/ganzhi-gateway.service
user=$(sed -n 's/^User=//p' "$UNIT")
id "$user" >/dev/null 2>&1 || useradd --system --home-dir /var/lib/ganzhi-gateway --shell /usr/sbin/nologin "$user"
ETC="$WORK/etc/ganzhi-gateway"; STATE="$WORK/var/lib/ganzhi-gateway"
mkdir -p "$ETC" "$STATE"
PORT=$(free_port)
sed -e "s#127.0.0.1:8080#127.0.0.1:$PORT#" -e "s#/var/lib/ganzhi-gateway#$STATE#g" deploy/systemd/gateway.toml > "$ETC/gateway.toml"
printf 'GATEWAY_ADMIN_TOKEN=%s\n' "$TOKEN" > "$ETC/gateway.env"; chmod 0600 "$ETC/gateway.env"
chown -R "$user:$user" "$STATE"; chmod 0755 "$WORK" "$WORK/etc" "$ETC" "$WORK/install" "$WORK/install/bin"
mkdir -p "$WORK/var" "$WORK/var/lib"; chmod 0755 "$WORK/var" "$WORK/var/lib"
subst() { sed -e "s#/usr/local/bin/gateway#$BIN#g" -e "s#/etc/ganzhi-gateway#$ETC#g" -e "s#/var/lib/ganzhi-gateway#$STATE#g"; }
pre=$(sed -n 's/^ExecStartPre=//p' "$UNIT" | subst)
start=$(sed -n 's/^ExecStart=//p' "$UNIT" | subst)
envs=$(sed -n 's/^Environment=//p' "$UNIT")
as_unit() { # runs "$@" as the unit would: its user, no new privileges, no capabilities
    # (exec: in a background call the PID is the gateway's; call it in a subshell otherwise)
    cd "$STATE" && exec env -i PATH=/usr/bin:/bin $envs $(cat "$ETC/gateway.env") \
        setpriv --reuid "$user" --regid "$user" --init-groups --no-new-privs --inh-caps=-all --bounding-set=-all "$@"
}
(as_unit $pre >/dev/null) || fail "ExecStartPre ($pre) failed"
as_unit $start >"$WORK/unit.log" 2>&1 &
pid=$!; PIDS+=("$pid")
wait_ready "http://127.0.0.1:$PORT/readyz" 60 || { cat "$WORK/unit.log" >&2; fail "the unit's ExecStart did not become ready"; }
[ -f "$STATE/gateway.db" ] && [ -d "$STATE/attachments" ] || fail "the unit's state is not in its StateDirectory"
[ "$(stat -c %U "$STATE/gateway.db")" = "$user" ] || fail "the database file is not owned by $user"
kill -TERM "$pid"; rc=0; wait "$pid" || rc=$?; [ "$rc" = 0 ] || { tail -n 5 "$WORK/unit.log" >&2; fail "the unit's ExecStart did not stop cleanly (exit $rc)"; }
echo "systemd: verified, rated, started as $user, stopped cleanly"

# ------------------------------------------------------------------ 3. container
if [ "${PACKAGE_SKIP_CONTAINER:-}" = 1 ]; then
    log "container: skipped (PACKAGE_SKIP_CONTAINER=1)"
    exit 0
fi
log "container image"
ensure_docker() {
    if docker info >/dev/null 2>&1; then return 0; fi
    if ! command -v dockerd >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null || fail "cannot install docker.io"
    fi
    (nohup dockerd >/tmp/gw-dockerd.log 2>&1 &)
    for _ in $(seq 1 30); do docker info >/dev/null 2>&1 && return 0; sleep 1; done
    tail -n 20 /tmp/gw-dockerd.log >&2
    fail "no container engine: dockerd did not start"
}
ensure_docker
BASE=debian:bookworm-slim
if ! docker image inspect "$BASE" >/dev/null 2>&1 && ! timeout 60 docker pull -q "$BASE" >/dev/null 2>&1; then
    BASE=ganzhi-base/debian:bookworm-minbase
    if ! docker image inspect "$BASE" >/dev/null 2>&1; then
        log "no registry: making $BASE with debootstrap"
        command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
        rootfs="$WORK/rootfs"
        debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* \
               "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
        tar -C "$rootfs" -c . | docker import - "$BASE" >/dev/null
    fi
fi
mkdir -p target/package
cp "$BIN" target/package/gateway
strip target/package/gateway 2>/dev/null || true
IMAGE=ganzhi-gateway:package-test
docker build -q --target prebuilt --build-arg RUNTIME_IMAGE="$BASE" --build-arg BINARY=target/package/gateway \
    -t "$IMAGE" . >/dev/null || fail "docker build"
PORT=$(free_port)
CONTAINER=gw-package-test-$$
docker run -d --name "$CONTAINER" -e GATEWAY_ADMIN_TOKEN="$TOKEN" -p "127.0.0.1:$PORT:8080" "$IMAGE" >/dev/null
wait_ready "http://127.0.0.1:$PORT/readyz" 60 || { docker logs "$CONTAINER" >&2; fail "the container did not become ready"; }
uid=$(docker exec "$CONTAINER" id -u)
[ "$uid" = 10001 ] || fail "the container runs as uid $uid, not 10001"
docker exec "$CONTAINER" /usr/local/bin/gateway probe || fail "the image's HEALTHCHECK command fails"
docker stop -t 30 "$CONTAINER" >/dev/null
code=$(docker inspect --format '{{.State.ExitCode}}' "$CONTAINER")
[ "$code" = 0 ] || fail "the container exited with $code on stop"
size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
base_size=$(docker image inspect --format '{{.Size}}' "$BASE")
echo "container: ready as uid 10001, stopped cleanly; image $((size / 1048576)) MiB (base $((base_size / 1048576)) MiB, binary $(( $(stat -c %s target/package/gateway) / 1048576 )) MiB, $PROFILE)"
docker rmi "$IMAGE" >/dev/null 2>&1 || true
