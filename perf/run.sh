#!/usr/bin/env bash
# Runs every load scenario of keel-perf against a release all-in-one platform, in one go, and
# prints one JSON line per scenario (docs/performance.md quotes these lines).
#
#   perf/run.sh            # about 3 minutes of load after the release build
#
# The platform runs with the embedded defaults (SQLite in a temporary directory, in-process bus),
# its public port on 18080 and the authz and audit gRPC listeners on fixed ports so the gRPC
# scenarios can reach them. The load generator shares the machine's cores with the platform, as
# the figures in docs/performance.md say.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-target}

cargo build --release --locked -p keel-platform --bin platform -p keel-perf --bin keel-perf >&2

data=$(mktemp -d)
admin_email=perf-admin@keel.test
admin_password="perf admin passphrase $(date +%s)"
base=http://127.0.0.1:18080
export KEEL_ENV=development
export KEEL_DATABASE__URL="sqlite:$data"
export KEEL_IDENTITY__OUTBOX_DIR="$data/outbox"
export KEEL_ADMIN_EMAIL="$admin_email"
export KEEL_ADMIN_PASSWORD="$admin_password"
export KEEL_HTTP__PORT=18080
export KEEL_LISTEN__AUTHZ__GRPC=127.0.0.1:19103
export KEEL_LISTEN__AUDIT__GRPC=127.0.0.1:19104
export KEEL_TELEMETRY__LOG__LEVEL=warn
export KEEL_TELEMETRY__TRACES__EXPORTER=none
# One client address sends every request here: the per-address rate limits and the failed-login
# throttle would measure themselves, not the platform.
export KEEL_GATEWAY__RATE_LIMITS__ENABLED=false

"$target/release/platform" serve 2>"$data/platform.log" &
platform=$!
trap 'kill "$platform" 2>/dev/null || true; wait "$platform" 2>/dev/null || true; rm -rf "$data"' EXIT

for _ in $(seq 1 100); do
    curl -fsS "$base/ready" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -fsS "$base/ready" >/dev/null

perf="$target/release/keel-perf"
login=(--base "$base" --email "$admin_email" --password "$admin_password")
token=$(curl -fsS -H 'content-type: application/json' \
    -d "{\"email\":\"$admin_email\",\"password\":\"$admin_password\"}" "$base/api/v1/auth/login" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
user_id=$(curl -fsS -H "authorization: Bearer $token" "$base/api/v1/users/me" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

"$perf" argon2
"$perf" login-open "${login[@]}" --rate 60 --seconds 30
"$perf" login-closed "${login[@]}" --concurrency 8 --seconds 20
"$perf" refresh "${login[@]}" --concurrency 32 --seconds 20
"$perf" has-permission --grpc http://127.0.0.1:19103 --user-id "$user_id" --rate 2000 --seconds 20
for batch in 1 10 100; do
    "$perf" audit-record --grpc http://127.0.0.1:19104 --batch "$batch" --concurrency 4 --seconds 10
done
