#!/usr/bin/env bash
# Keel's test command (the one the README documents; `make test` runs it too).
#
#   ./scripts/test.sh                      every test of the workspace
#   ./scripts/test.sh -p keel-config       cargo test arguments pass through ...
#   ./scripts/test.sh -- --nocapture       ... and so do test-harness arguments after `--`
#
# It makes sure PostgreSQL, Redis, NATS JetStream and etcd answer (starting local ones that stopped,
# installing etcd if need be, see scripts/ensure-services.sh) and that promtool is installed, points
# the tests at those servers (DATABASE_URL, REDIS_URL, NATS_URL, ETCD_URL; a value you set yourself
# wins) and sets KEEL_REQUIRE_SERVERS=1, so a test that needs a server fails instead of printing
# `SKIPPED:` and passing. Then it runs `cargo test` on every target, and the doc tests, which
# `--all-targets` leaves out, and for the whole suite scripts/api-fuzz.sh (the REST API fuzzed
# against its OpenAPI documents with Schemathesis, installed from PyPI if missing). Plain cargo
# test rather than nextest: it runs doc tests too and is what
# every contributor already knows.
# Exits non-zero on the first failure.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/ensure-services.sh
source scripts/ensure-services.sh

export DATABASE_URL="${DATABASE_URL:-$KEEL_DEFAULT_DATABASE_URL}"
export REDIS_URL="${REDIS_URL:-$KEEL_DEFAULT_REDIS_URL}"
export NATS_URL="${NATS_URL:-$KEEL_DEFAULT_NATS_URL}"
export ETCD_URL="${ETCD_URL:-$KEEL_DEFAULT_ETCD_URL}"

keel_ensure_services

export KEEL_REQUIRE_SERVERS=1

# Split the arguments into cargo's (before `--`) and the test harness' (from `--` on), and look at
# cargo's: with a package selected, `--workspace` must not widen it again; with targets selected
# (--lib, --test x, --doc, ...), run exactly what was asked instead of all targets plus doc tests.
cargo_args=()
harness_args=()
package_selected=false
targets_selected=false
while (($#)); do
    case $1 in
        --)
            harness_args=("$@")
            break
            ;;
        -p | -p* | --package | --package=* | --workspace | --all | --exclude | --exclude=*)
            package_selected=true
            ;;
        --lib | --bin | --bin=* | --bins | --test | --test=* | --tests | --bench | --bench=* | \
            --benches | --example | --example=* | --examples | --all-targets | --doc)
            targets_selected=true
            ;;
    esac
    cargo_args+=("$1")
    shift
done

scope=()
$package_selected || scope=(--workspace)

run() {
    printf '+ %s\n' "$*" >&2
    "$@"
}

if $targets_selected; then
    run cargo test "${scope[@]}" "${cargo_args[@]}" "${harness_args[@]}"
else
    run cargo test "${scope[@]}" --all-targets "${cargo_args[@]}" "${harness_args[@]}"
    run cargo test "${scope[@]}" --doc "${cargo_args[@]}" "${harness_args[@]}"
fi

# The whole suite (no package or target chosen) runs the gateway's end-to-end tests a second time
# with its HTTP/1.1 fast path off, so both ways of serving a request pass every one of them, and
# ends with the REST API fuzzed against its own
# OpenAPI documents (scripts/api-fuzz.sh: Schemathesis, the platform on a free port).
if ! $package_selected && ! $targets_selected; then
    KEEL_TEST_GATEWAY_FAST_PATH=off run cargo test -p keel-gateway --test gateway "${harness_args[@]}"
    run scripts/api-fuzz.sh
fi
