# syntax=docker/dockerfile:1
# One image per Keel binary:
#   docker build --build-arg SERVICE=platform -t keel/platform .      (make docker-build)
# SERVICE is the binary name: platform now; api-gateway, identity-service, auth-service,
# authz-service and audit-service as they land. Every binary takes `serve`, listens on 8080 and
# answers /healthz.

ARG RUST_VERSION=1.95

# --- build -----------------------------------------------------------------------------------------
# Protos compile with a pure-Rust compiler in build.rs, so no protoc is installed.
FROM rust:${RUST_VERSION}-bookworm AS builder
ARG SERVICE=platform
WORKDIR /src
COPY . .
# The registry and target caches survive between builds (BuildKit cache mounts); the target dir is a
# cache, not a layer, so the binary is copied out of it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin "${SERVICE}" \
    && install -D -m 0755 "target/release/${SERVICE}" /out/service

# --- run -------------------------------------------------------------------------------------------
# Same Debian release as the builder, so the glibc the binary was linked against is there.
FROM debian:bookworm-slim AS runtime
ARG SERVICE=platform
# ca-certificates for outgoing TLS (OTLP, SMTP, S3, ...), curl for the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 keel \
    && useradd --system --uid 10001 --gid keel --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin keel
WORKDIR /app
COPY --from=builder /out/service /app/bin/service
# Configuration is read-only to the service; overlay it with KEEL_* variables or *_FILE secrets.
COPY config/ /app/config/
# The embedded default database (sqlite:data) lives here; mount a volume on it to keep it, or point
# KEEL_DATABASE__URL at PostgreSQL.
RUN mkdir -p /app/data && chown keel:keel /app/data

LABEL org.opencontainers.image.title="keel-${SERVICE}" \
      org.opencontainers.image.description="Keel ${SERVICE}" \
      org.opencontainers.image.licenses="Apache-2.0"
# production.yaml: JSON logs, OTLP traces, HTTP bound to 0.0.0.0.
ENV KEEL_ENV=production \
    KEEL_CONFIG_DIR=/app/config
USER 10001:10001
EXPOSE 8080
# Shell form so a port moved with KEEL_HTTP__PORT is followed.
HEALTHCHECK --interval=30s --timeout=3s --start-period=15s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:${KEEL_HTTP__PORT:-8080}/healthz" >/dev/null || exit 1
ENTRYPOINT ["/app/bin/service"]
CMD ["serve"]
