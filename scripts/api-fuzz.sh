#!/usr/bin/env bash
# Fuzzes the public REST API against its own OpenAPI documents with Schemathesis (PyPI): the
# all-in-one `platform` with embedded defaults on a free port, the seeded admin's token on every
# request, every operation of the identity, auth, authz and audit documents, generated valid and
# invalid inputs, and stateful sequences that follow the documents' links.
#
# Usage: scripts/api-fuzz.sh [extra schemathesis options]   (scripts/test.sh runs it last)
#
# What fails the run: a 5xx, an answer whose status, content type or body the document does not
# allow, a schema-violating request that is accepted, a missing problem+json, an unauthenticated
# request that passes. Left out: `positive_data_acceptance` (a schema-valid request refused), since
# a syntactically valid cursor, token or role id that no one issued is rightly a 422, and no JSON
# Schema says "an id that exists". Rate limits and the login throttle are off for the run: the
# fuzzer sends hundreds of requests a second from one address, as one user.
#
# Environment: CARGO_TARGET_DIR (where the debug `platform` binary is, built if missing);
# KEEL_FUZZ_EXAMPLES (examples per operation, default 30); KEEL_FUZZ_SEED (default fixed, so a
# failure reproduces; set `random` for a new one each run).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

target_dir="${CARGO_TARGET_DIR:-$root/target}"
platform="$target_dir/debug/platform"
examples="${KEEL_FUZZ_EXAMPLES:-30}"
seed="${KEEL_FUZZ_SEED:-20261126}"
schemathesis_version="4.32.5"

if ! command -v schemathesis >/dev/null || [[ $(schemathesis --version 2>/dev/null) != *"$schemathesis_version"* ]]; then
    echo "api-fuzz: installing schemathesis $schemathesis_version from PyPI" >&2
    python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version"
fi
if [[ ! -x $platform ]]; then
    cargo build -p keel-platform --bin platform
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/keel-api-fuzz.XXXXXX")
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
admin_email="fuzz-admin@example.com"
admin_password="fuzzing the keel api $RANDOM$RANDOM"

platform_pid=""
cleanup() {
    [[ -n $platform_pid ]] && kill "$platform_pid" 2>/dev/null && wait "$platform_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/data"
ln -s "$root/config" "$work/config"
(
    cd "$work"
    KEEL_ENV=development KEEL_HTTP__PORT="$port" KEEL_IDENTITY__PUBLIC_URL="$base" \
        KEEL_GATEWAY__RATE_LIMITS__ENABLED=false KEEL_AUTH__LOGIN_THROTTLE__ENABLED=false \
        KEEL_ADMIN_EMAIL="$admin_email" KEEL_ADMIN_PASSWORD="$admin_password" \
        exec "$platform" serve >"$work/platform.log" 2>&1
) &
platform_pid=$!

for _ in $(seq 1 300); do
    curl -fsS "$base/ready" >/dev/null 2>&1 && break
    kill -0 "$platform_pid" 2>/dev/null || { cat "$work/platform.log" >&2; exit 1; }
    sleep 0.1
done
curl -fsS "$base/ready" >/dev/null

token=$(curl -fsS "$base/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"email\":\"$admin_email\",\"password\":\"$admin_password\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

seed_args=()
[[ $seed == random ]] || seed_args=(--seed "$seed")

status=0
for service in identity auth authz audit; do
    echo "==> api-fuzz: $service ($base/api/v1/$service/openapi.json)"
    # From the scratch directory: Schemathesis keeps a cache in `.schemathesis/` under the
    # working directory.
    (cd "$work" && schemathesis run "$base/api/v1/$service/openapi.json" --url "$base" \
        -H "Authorization: Bearer $token" \
        --checks all --exclude-checks positive_data_acceptance \
        --max-examples "$examples" "${seed_args[@]}" --no-color "$@") || status=1
done
if ((status != 0)); then
    echo "api-fuzz: failures above; the platform's log follows" >&2
    tail -n 50 "$work/platform.log" >&2
fi
exit "$status"
