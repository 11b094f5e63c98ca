# ganzhi-gateway container image: multi-stage, small, runs as an unprivileged user (uid 10001).
#
#   docker build -t ganzhi-gateway .
#   docker run -d --name gateway -p 8080:8080 -e GATEWAY_ADMIN_TOKEN=... \
#       -v gateway-data:/var/lib/ganzhi-gateway ganzhi-gateway
#
# The built-in configuration (deploy/container/gateway.toml) keeps SQLite in the volume and has
# one admin token read from GATEWAY_ADMIN_TOKEN; mount your own at /etc/ganzhi-gateway/gateway.toml.
# Base images are build arguments, for registries inside a government network:
#   --build-arg RUST_IMAGE=registry.example.gov.cn/rust:1.95-bookworm
#   --build-arg RUNTIME_IMAGE=registry.example.gov.cn/debian:bookworm-slim
# `--target prebuilt --build-arg BINARY=target/release/gateway` packs a binary built on a
# Debian 12 (glibc 2.36) host instead of building one (scripts/package-test.sh does this).
ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUNTIME_IMAGE} AS runtime-base
# CA certificates for outbound TLS (sources, sinks, PostgreSQL); nothing else is installed.
RUN set -eux; \
    if [ ! -s /etc/ssl/certs/ca-certificates.crt ]; then \
        apt-get update; \
        apt-get install -y --no-install-recommends ca-certificates; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    groupadd --system --gid 10001 gateway; \
    useradd --system --uid 10001 --gid gateway --home-dir /var/lib/ganzhi-gateway \
        --no-create-home --shell /usr/sbin/nologin gateway; \
    install -d -o gateway -g gateway -m 0750 /var/lib/ganzhi-gateway; \
    install -d -m 0755 /etc/ganzhi-gateway /usr/share/ganzhi-gateway
COPY deploy/container/gateway.toml /etc/ganzhi-gateway/gateway.toml
COPY mappings /usr/share/ganzhi-gateway/mappings
COPY schemas /usr/share/ganzhi-gateway/schemas
ENV GATEWAY_LOG=info
WORKDIR /var/lib/ganzhi-gateway
VOLUME ["/var/lib/ganzhi-gateway"]
EXPOSE 8080
USER 10001:10001
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["/usr/local/bin/gateway", "probe", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["/usr/local/bin/gateway"]
CMD ["run", "--config", "/etc/ganzhi-gateway/gateway.toml"]

# A binary built outside (same Debian release), packed into the same runtime image.
FROM runtime-base AS prebuilt
ARG BINARY=target/release/gateway
COPY ${BINARY} /usr/local/bin/gateway

# The build stage (after `prebuilt`, so that builders without BuildKit stop before it).
FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
# The dist profile: fat LTO, one codegen unit (see BENCHMARKS.md for what it gains).
RUN cargo build --locked --profile dist -p gateway \
    && install -D -m 0755 target/dist/gateway /out/gateway

# The default target: the binary built in the build stage.
FROM runtime-base AS runtime
COPY --from=build /out/gateway /usr/local/bin/gateway
