#!/usr/bin/env bash
# User-space instructions per proxied request (docs/performance.md "Gateway"), counted by
# valgrind's callgrind: the same count for the same binaries and load whatever else the machine
# does, where requests per second and even CPU time per request move by ±20% between identical
# runs on a shared VM. In ONE run, each proxy in front of the same upstream (`keel-perf upstream`,
# not counted), one process each under callgrind:
#
# - nginx (one worker, `master_process off`, the configuration of perf/nginx-conf.sh);
# - the release api-gateway with its HTTP/1.1 fast path (`gateway.fast_path: true`, the default);
# - the same binary with the fast path off (every request through hyper and axum).
#
# Each is warmed up with 500 requests, its counters are zeroed (`callgrind_control -z`), it is
# sent PERF_REQUESTS requests (oha, 8 connections, closed loop), and its counters are dumped: the
# instructions of those requests alone, divided by their number. Kernel time is not counted (it
# is about the same for every proxy: perf/gateway-cpu.sh).
#
#   perf/gateway-instructions.sh                  # builds api-gateway and keel-perf in release first
#   PERF_SKIP_BUILD=1 perf/gateway-instructions.sh
#
# Needs valgrind, nginx and oha (perf/setup.sh installs the last two). Knobs: PERF_REQUESTS
# (5000), PERF_UPSTREAM_PORT (18290), PERF_NGINX_PORT (18291), PERF_GATEWAY_PORT (18292),
# PERF_SKIP_BUILD=1. Processes it starts are stopped by PID at the end.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-target}
requests=${PERF_REQUESTS:-5000}
upstream_port=${PERF_UPSTREAM_PORT:-18290}
nginx_port=${PERF_NGINX_PORT:-18291}
gateway_port=${PERF_GATEWAY_PORT:-18292}
path=/perf/hello
export PATH="${KEEL_TOOLS:-/var/tmp/keel-tools}/bin:$PATH"

log() { printf 'perf/gateway-instructions.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

command -v valgrind >/dev/null 2>&1 || die "needs valgrind"
perf/setup.sh
if [[ ${PERF_SKIP_BUILD:-0} != 1 ]]; then
    cargo build --release --locked -p keel-gateway --bin api-gateway -p keel-perf --bin keel-perf >&2
fi

work=$(mktemp -d /tmp/keel-perf-instructions.XXXXXX)
chmod 755 "$work" # nginx runs as an unprivileged user for part of its work
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

wait_ready() {
    for _ in $(seq 1 300); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.5
    done
    die "$1 did not become ready"
}

# count NAME PID URL: instructions of PID over `requests` requests to URL.
count() {
    local name=$1 pid=$2 url=$3
    wait_ready "$url"
    oha -n 500 -c 8 --no-tui "$url" >/dev/null
    callgrind_control -z "$pid" >/dev/null
    oha -n "$requests" -c 8 --no-tui "$url" >"$work/oha-$name.txt"
    callgrind_control -d "$pid" >/dev/null
    sleep 1
    local total ok
    total=$(cat "$work/cg-$name.out".* | awk '/^summary:/ {sum += $2} END {print sum}')
    ok=$(awk '/\[200\]/ {print $2}' "$work/oha-$name.txt")
    [[ $ok == "$requests" ]] || log "$name: only ${ok:-0} of $requests answered 200"
    python3 -c 'import sys; name, total, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]); print(f"{name}: {total / n:,.0f} instructions per request ({total:,} over {n:,})")' \
        "$name" "$total" "$requests" | tee -a "$work/lines.txt"
}

"$target/release/keel-perf" upstream --listen "127.0.0.1:$upstream_port" 2>"$work/upstream.log" &
pids+=($!)
wait_ready "http://127.0.0.1:$upstream_port$path"

perf/nginx-conf.sh "$work/nginx" "$upstream_port" "$nginx_port"
sed -i 's/^worker_processes auto;/worker_processes 1;\nmaster_process off;/' "$work/nginx/nginx.conf"
valgrind --tool=callgrind --callgrind-out-file="$work/cg-nginx.out" \
    nginx -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>"$work/valgrind-nginx.log" &
nginx_pid=$!
pids+=("$nginx_pid")
count nginx "$nginx_pid" "http://127.0.0.1:$nginx_port$path"
kill "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true

config="$work/config"
mkdir -p "$config"
cp config/default.yaml "$config/default.yaml"
sed "s/127\.0\.0\.1:18090/127.0.0.1:$upstream_port/" perf/config/perf-gateway.yaml >"$config/perf-gateway.yaml"
for fast_path in true false; do
    name=gateway-fast-path-$fast_path
    KEEL_ENV=perf-gateway KEEL_CONFIG_DIR=$config KEEL_HTTP__PORT=$gateway_port \
        KEEL_GATEWAY__WORKER_THREADS=1 KEEL_GATEWAY__FAST_PATH=$fast_path \
        valgrind --tool=callgrind --callgrind-out-file="$work/cg-$name.out" \
        "$target/release/api-gateway" 2>"$work/valgrind-$name.log" &
    pid=$!
    pids+=("$pid")
    count "$name" "$pid" "http://127.0.0.1:$gateway_port$path"
    kill "$pid"; wait "$pid" 2>/dev/null || true
done

python3 - "$work/lines.txt" <<'PY'
import re, sys
counts = {}
for line in open(sys.argv[1]):
    name, rest = line.split(":", 1)
    counts[name] = float(re.search(r"([\d,]+) instructions", rest).group(1).replace(",", ""))
fast, stack, nginx = counts["gateway-fast-path-true"], counts["gateway-fast-path-false"], counts["nginx"]
print(f"fast path / nginx: {fast / nginx:.2f}; general stack / nginx: {stack / nginx:.2f}; fast path / general stack: {fast / stack:.2f}")
PY
