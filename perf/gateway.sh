#!/usr/bin/env bash
# The gateway against nginx (issue 4, docs/performance.md "Gateway"): in ONE run on this machine,
# the same trivial upstream (`keel-perf upstream`) is loaded directly, through nginx (Debian, upstream
# keep-alive) and through the release api-gateway, then, through the all-in-one platform, on a
# public route and on a route that needs a JWT. Prints one JSON line per measurement and, at the
# end, the ratios (one JSON line, then a table).
#
#   perf/gateway.sh                    # about 3 minutes of load after the builds
#   PERF_SECONDS=2 perf/gateway.sh     # a quick check that everything runs (figures meaningless)
#
# Scenarios (load generator on the same machine, sharing its cores):
#   1. saturation: `wrk -t2 -c64 -d10s` against direct, then nginx and the gateway in
#      PERF_ROUNDS alternating rounds (their ratio is the median of the rounds' ratios: one pair of
#      runs on a shared VM moves by ±20%); platform-public and platform-jwt (same upstream, same
#      platform process, without and with a bearer token), also in PERF_ROUNDS alternating rounds.
#   2. fixed rate, open loop: `oha -q 10000 -z 10s --latency-correction` against direct, nginx,
#      gateway (latency counted from when each request was due, so queueing shows).
# Each target is warmed up for PERF_WARMUP seconds first (discarded).
#
# Knobs (environment): PERF_SECONDS (10), PERF_WARMUP (2), PERF_ROUNDS (3), PERF_RATE (10000),
# PERF_THREADS (2), PERF_CONNECTIONS (64), PERF_JWT (auto | on | off: auto skips the JWT step, with a warning line,
# when the platform refuses perf/config/perf-platform.yaml or its protected route lets a request
# without a token through; on makes that fatal), PERF_SKIP_BUILD=1 (use the release
# binaries already built), PERF_KEEP=1 (keep the temporary directory: logs, raw tool output),
# PERF_UPSTREAM_PORT (18090), PERF_NGINX_PORT (18091), PERF_GATEWAY_PORT (18092),
# PERF_PLATFORM_PORT (18093), KEEL_TOOLS (where perf/setup.sh put oha).
# Rate limiting is on, with quotas far above the load (perf/config/*.yaml); the gateway's and the
# platform's lines say "rate_limited": true when their answers carry X-RateLimit-* headers.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-target}
seconds=${PERF_SECONDS:-10}
warmup=${PERF_WARMUP:-2}
rounds=${PERF_ROUNDS:-3}
rate=${PERF_RATE:-10000}
threads=${PERF_THREADS:-2}
connections=${PERF_CONNECTIONS:-64}
jwt=${PERF_JWT:-auto}
upstream_port=${PERF_UPSTREAM_PORT:-18090}
nginx_port=${PERF_NGINX_PORT:-18091}
gateway_port=${PERF_GATEWAY_PORT:-18092}
platform_port=${PERF_PLATFORM_PORT:-18093}
path=/perf/hello
expected_body='Hello, Keel!'

log() { printf 'perf/gateway.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

perf/setup.sh
oha="${KEEL_TOOLS:-/var/tmp/keel-tools}/bin/oha"
if [[ ${PERF_SKIP_BUILD:-0} != 1 ]]; then
    cargo build --release --locked -p keel-gateway --bin api-gateway -p keel-platform --bin platform \
        -p keel-perf --bin keel-perf >&2
fi
perf="$target/release/keel-perf"

work=$(mktemp -d /tmp/keel-perf-gateway.XXXXXX)
chmod 755 "$work" # nginx's workers run as an unprivileged user
lines="$work/lines.jsonl"
: >"$lines"
pids=()

# stop PID: stops one process this script started (only those, by PID) and forgets it.
stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    local kept=() pid
    for pid in "${pids[@]}"; do [[ $pid == "$1" ]] || kept+=("$pid"); done
    pids=("${kept[@]}")
}
cleanup() {
    local pid
    for pid in "${pids[@]}"; do stop "$pid"; done
    if [[ ${PERF_KEEP:-0} == 1 ]]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# wait_ready URL PID NAME LOG: polls URL until it answers 2xx; fails if the process exits first.
wait_ready() {
    for _ in $(seq 1 150); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.2
    done
    log "$3 did not become ready at $1; the end of its log ($4):"
    tail -n 20 "$4" >&2 || true
    return 1
}

# check URL [curl args...]: the target must answer 200 with the upstream's body.
check() {
    local url=$1 body
    shift
    body=$(curl -fsS "$@" "$url") || die "$url did not answer 2xx"
    [[ $body == "$expected_body" ]] || die "$url answered '$body', not the upstream's body"
}

# Config dir for KEEL_ENV=$1: default.yaml plus perf/config/$1.yaml, upstream port substituted.
config_dir() {
    local dir="$work/config-$1"
    mkdir -p "$dir"
    cp config/default.yaml "$dir/default.yaml"
    sed "s/127\.0\.0\.1:18090/127.0.0.1:$upstream_port/" "perf/config/$1.yaml" >"$dir/$1.yaml"
    printf '%s' "$dir"
}

# Common labels of every line.
# Quoted as a JSON string: a short hash such as 8267e31 would otherwise be read as a number.
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
labels=(--label "revision=\"$revision\"" --label "connections=$connections")

# saturation TARGET URL [wrk args...]
saturation() {
    local name=$1 url=$2 raw="$work/wrk-$1.txt"
    shift 2
    if ((warmup > 0)); then wrk -t"$threads" -c"$connections" -d"${warmup}s" "$@" "$url" >/dev/null; fi
    wrk -t"$threads" -c"$connections" -d"${seconds}s" -s perf/wrk-report.lua "$@" "$url" >"$raw"
    "$perf" measurement --tool wrk --measurement saturation --target "$name" "${labels[@]}" \
        --label "threads=$threads" "${extra_labels[@]}" "$raw" | tee -a "$lines"
}

# fixed_rate TARGET URL
fixed_rate() {
    local name=$1 url=$2 raw="$work/oha-$1.json"
    local args=(-q "$rate" -c "$connections" --latency-correction -w --no-tui --output-format json)
    if ((warmup > 0)); then "$oha" "${args[@]}" -z "${warmup}s" -o /dev/null "$url"; fi
    "$oha" "${args[@]}" -z "${seconds}s" -o "$raw" "$url"
    "$perf" measurement --tool oha --measurement fixed_rate --target "$name" --offered-rps "$rate" \
        "${labels[@]}" "${extra_labels[@]}" "$raw" | tee -a "$lines"
}

# rate_limited URL [curl args...]: true when the answer carries X-RateLimit-* headers.
rate_limited() {
    local headers
    headers=$(curl -fsS -D - -o /dev/null "$@") || die "$1 did not answer 2xx"
    if grep -qi '^x-ratelimit-limit:' <<<"$headers"; then echo true; else echo false; fi
}

# skipped TARGET REASON: the line standing for a measurement that could not be taken.
skipped() {
    python3 -c 'import json,sys; print(json.dumps({"measurement": "saturation", "target": sys.argv[1], "skipped": sys.argv[2]}))' \
        "$1" "$2" | tee -a "$lines"
}

# --- the upstream, nginx and the gateway -------------------------------------------------------
# A port already taken would have the run measure whatever answers there.
for port in "$upstream_port" "$nginx_port" "$gateway_port" "$platform_port"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port is already in use (set PERF_*_PORT, see the header of perf/gateway.sh)"
    fi
done
"$perf" upstream --listen "127.0.0.1:$upstream_port" 2>"$work/upstream.log" &
upstream=$!
pids+=("$upstream")
wait_ready "http://127.0.0.1:$upstream_port$path" "$upstream" upstream "$work/upstream.log"

perf/nginx-conf.sh "$work/nginx" "$upstream_port" "$nginx_port"
nginx -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf" &
nginx_pid=$!
pids+=("$nginx_pid")
wait_ready "http://127.0.0.1:$nginx_port$path" "$nginx_pid" nginx "$work/nginx/error.log"

KEEL_ENV=perf-gateway KEEL_CONFIG_DIR=$(config_dir perf-gateway) KEEL_HTTP__PORT=$gateway_port \
    "$target/release/api-gateway" 2>"$work/gateway.log" &
gateway=$!
pids+=("$gateway")
wait_ready "http://127.0.0.1:$gateway_port/ready" "$gateway" api-gateway "$work/gateway.log"

direct_url="http://127.0.0.1:$upstream_port$path"
nginx_url="http://127.0.0.1:$nginx_port$path"
gateway_url="http://127.0.0.1:$gateway_port$path"
for url in "$direct_url" "$nginx_url" "$gateway_url"; do check "$url"; done
gateway_labels=(--label "rate_limited=$(rate_limited "$gateway_url")")
log "load: ${seconds}s per measurement, ${warmup}s warm-up; gateway: ${gateway_labels[*]}"

extra_labels=()
saturation direct "$direct_url"
for ((round = 1; round <= rounds; round++)); do
    extra_labels=(--label "round=$round")
    saturation nginx "$nginx_url"
    extra_labels=("${gateway_labels[@]}" --label "round=$round")
    saturation gateway "$gateway_url"
done
extra_labels=()
fixed_rate direct "$direct_url"
fixed_rate nginx "$nginx_url"
extra_labels=("${gateway_labels[@]}")
fixed_rate gateway "$gateway_url"
extra_labels=()
stop "$gateway"
stop "$nginx_pid"

# --- JWT: the platform, one public and one protected route to the same upstream ----------------
# A separate step: it needs the gateway's route policy (`gateway.routes[].auth`). PERF_JWT=auto
# skips it, with a line saying why, when this build does not have it; PERF_JWT=on makes that fatal.
jwt_unavailable() {
    [[ $jwt == on ]] && die "PERF_JWT=on, but: $1"
    log "JWT step skipped: $1"
    skipped platform-public "$1"
    skipped platform-jwt "$1"
}

jwt_step() {
    if [[ $jwt == off ]]; then
        jwt_unavailable "PERF_JWT=off"
        return
    fi
    local data="$work/platform" base="http://127.0.0.1:$platform_port" platform token status
    local email=perf-admin@keel.test password
    password="perf admin passphrase $(date +%s)"
    mkdir -p "$data"
    KEEL_ENV=perf-platform KEEL_CONFIG_DIR=$(config_dir perf-platform) KEEL_HTTP__PORT=$platform_port \
        KEEL_DATABASE__URL="sqlite:$data" KEEL_IDENTITY__OUTBOX_DIR="$data/outbox" \
        KEEL_ADMIN_EMAIL="$email" KEEL_ADMIN_PASSWORD="$password" \
        "$target/release/platform" serve 2>"$work/platform.log" &
    platform=$!
    pids+=("$platform")
    if ! wait_ready "$base/ready" "$platform" platform "$work/platform.log"; then
        stop "$platform"
        # Most likely a configuration error naming the key, e.g. `unknown field: found auth`
        # while the gateway has no route policy yet.
        local why
        why=$(grep -m1 -i 'error' "$work/platform.log" | cut -c1-400 || true)
        jwt_unavailable "the platform did not start with perf/config/perf-platform.yaml: ${why:-see its log above}"
        return
    fi
    token=$(curl -fsS -H 'content-type: application/json' \
        -d "{\"email\":\"$email\",\"password\":\"$password\"}" "$base/api/v1/auth/login" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
    status=$(curl -s -o /dev/null -w '%{http_code}' "$base/perf/private/hello")
    if [[ $status != 401 ]]; then
        stop "$platform"
        jwt_unavailable "the auth: required route answered $status without a token, not 401"
        return
    fi
    check "$base/perf/public/hello"
    check "$base/perf/private/hello" -H "authorization: Bearer $token"
    local limited round
    limited=$(rate_limited "$base/perf/public/hello")
    # Alternating rounds, as for nginx and the gateway: one pair of runs moves by ±20% here.
    for ((round = 1; round <= rounds; round++)); do
        extra_labels=(--label "rate_limited=$limited" --label "round=$round")
        saturation platform-public "$base/perf/public/hello"
        saturation platform-jwt "$base/perf/private/hello" -H "authorization: Bearer $token"
    done
    extra_labels=()
    stop "$platform"
}
jwt_step

"$perf" gateway-summary "$lines"
