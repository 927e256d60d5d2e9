#!/usr/bin/env bash
# CPU time per proxied request, gateway against nginx (docs/performance.md "Gateway"): on this VM
# requests per second move by ±20% between identical runs, while the CPU a proxy spends per request
# moves by a few percent, so this is the figure to compare builds with. In ONE run: the upstream
# (`keel-perf upstream`), then nginx and the release api-gateway in turn in front of it, each
# loaded with `wrk -t2 -c64` while `perf stat -e task-clock` counts the proxy's CPU time (all of
# nginx's processes, the whole gateway process).
#
#   perf/gateway-cpu.sh                 # builds api-gateway and keel-perf in release, then ~40 s
#   PERF_SKIP_BUILD=1 perf/gateway-cpu.sh
#   PERF_GATEWAY_BASELINE=/path/to/older/api-gateway perf/gateway-cpu.sh   # A/B two gateway builds
#
# Prints one line per proxy: requests/s, CPU µs, context switches and page faults per request, and
# the gateway/nginx CPU ratio.
# Needs `perf` (linux-perf), wrk and nginx (perf/setup.sh installs the last two). Knobs:
# PERF_SECONDS (6), PERF_WARMUP (2), PERF_UPSTREAM_PORT (18190), PERF_NGINX_PORT (18191),
# PERF_GATEWAY_PORT (18192), PERF_SKIP_BUILD=1, PERF_GATEWAY_BIN (the gateway binary to measure,
# default the one just built), PERF_GATEWAY_BASELINE (a second gateway binary, measured after the
# first in the same run and reported as `baseline`, with the gateway/baseline ratio). Processes it
# starts are stopped by PID at the end.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-target}
seconds=${PERF_SECONDS:-6}
warmup=${PERF_WARMUP:-2}
upstream_port=${PERF_UPSTREAM_PORT:-18190}
nginx_port=${PERF_NGINX_PORT:-18191}
gateway_port=${PERF_GATEWAY_PORT:-18192}
gateway_bin=${PERF_GATEWAY_BIN:-$target/release/api-gateway}
baseline_bin=${PERF_GATEWAY_BASELINE:-}
path=/perf/hello

log() { printf 'perf/gateway-cpu.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

command -v perf >/dev/null 2>&1 || die "needs perf (Debian: linux-perf)"
perf/setup.sh
if [[ ${PERF_SKIP_BUILD:-0} != 1 ]]; then
    cargo build --release --locked -p keel-gateway --bin api-gateway -p keel-perf --bin keel-perf >&2
fi

work=$(mktemp -d /tmp/keel-perf-cpu.XXXXXX)
chmod 755 "$work" # nginx's workers run as an unprivileged user
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

wait_ready() {
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.2
    done
    die "$1 did not become ready"
}

# measure NAME URL PIDS: wrk for PERF_SECONDS+1 s, perf stat over PERF_SECONDS s inside it.
measure() {
    local name=$1 url=$2 pid_list=$3
    wrk -t2 -c64 -d"${warmup}s" "$url" >/dev/null
    wrk -t2 -c64 -d"$((seconds + 1))s" "$url" >"$work/wrk-$name.txt" &
    local load=$!
    sleep 0.5
    perf stat -x, -e task-clock,context-switches,page-faults -p "$pid_list" -- sleep "$seconds" \
        2>"$work/stat-$name.txt"
    wait "$load"
    local rps cpu_ms switches faults
    rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk-$name.txt")
    cpu_ms=$(awk -F, '/task-clock/ {print $1}' "$work/stat-$name.txt")
    switches=$(awk -F, '/context-switches/ {print $1}' "$work/stat-$name.txt")
    faults=$(awk -F, '/page-faults/ {print $1}' "$work/stat-$name.txt")
    python3 -c 'import sys; name, rps, ms, s, cs, pf = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]); n = rps * s; print(f"{name}: {rps:,.0f} req/s, {ms * 1000 / n:.1f} CPU µs per request, {cs / n:.3f} context switches and {pf / n:.3f} page faults per request")' \
        "$name" "$rps" "$cpu_ms" "$seconds" "${switches:-0}" "${faults:-0}" | tee -a "$work/lines.txt"
}

"$target/release/keel-perf" upstream --listen "127.0.0.1:$upstream_port" 2>"$work/upstream.log" &
pids+=($!)
wait_ready "http://127.0.0.1:$upstream_port$path"

perf/nginx-conf.sh "$work/nginx" "$upstream_port" "$nginx_port"
nginx -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf" &
nginx_master=$!
pids+=("$nginx_master")
wait_ready "http://127.0.0.1:$nginx_port$path"
nginx_pids=$(pgrep -d, -P "$nginx_master" || true),$nginx_master
measure nginx "http://127.0.0.1:$nginx_port$path" "$nginx_pids"
kill "$nginx_master"; wait "$nginx_master" 2>/dev/null || true

config="$work/config"
mkdir -p "$config"
cp config/default.yaml "$config/default.yaml"
sed "s/127\.0\.0\.1:18090/127.0.0.1:$upstream_port/" perf/config/perf-gateway.yaml >"$config/perf-gateway.yaml"
# gateway NAME BINARY: starts BINARY on the gateway port, measures it as NAME, stops it.
gateway() {
    local name=$1 binary=$2
    KEEL_ENV=perf-gateway KEEL_CONFIG_DIR=$config KEEL_HTTP__PORT=$gateway_port \
        "$binary" 2>"$work/$name.log" &
    local pid=$!
    pids+=("$pid")
    wait_ready "http://127.0.0.1:$gateway_port/ready"
    measure "$name" "http://127.0.0.1:$gateway_port$path" "$pid"
    kill "$pid"; wait "$pid" 2>/dev/null || true
}
gateway gateway "$gateway_bin"
[[ -z $baseline_bin ]] || gateway baseline "$baseline_bin"

python3 - "$work/lines.txt" <<'PY'
import re, sys
cpu = {}
for line in open(sys.argv[1]):
    name, rest = line.split(":", 1)
    cpu[name] = float(re.search(r"([\d.]+) CPU", rest).group(1))
print(f"gateway / nginx CPU per request: {cpu['gateway'] / cpu['nginx']:.2f}")
if "baseline" in cpu:
    print(f"baseline / nginx CPU per request: {cpu['baseline'] / cpu['nginx']:.2f}")
    print(f"gateway / baseline CPU per request: {cpu['gateway'] / cpu['baseline']:.2f}")
PY
