#!/usr/bin/env bash
# Makes sure the servers Keel's tests talk to are up, and that promtool and etcd are installed.
#
#   ./scripts/ensure-services.sh        check (and if need be start) everything, then exit
#   source scripts/ensure-services.sh   only define the keel_* functions (scripts/test.sh does this)
#
# For each server the address comes from DATABASE_URL / REDIS_URL / NATS_URL / ETCD_URL (defaults
# below).
# A server that already answers is left alone, so running this is a no-op on a normal machine.
# One that does not answer is started with its local start command, but only when the address is on
# this machine and that command exists (guarded with `command -v`): in GitHub Actions the servers are
# service containers and nothing is started here, we only wait for them. Then we wait until the
# server answers (KEEL_SERVICE_WAIT_SECS seconds, default 60) and fail with a clear message if not.
#
# RabbitMQ and MariaDB are preinstalled on the dev machines too, but no test uses them yet: add a
# keel_ensure_* function here when one does.

KEEL_DEFAULT_DATABASE_URL="postgres://postgres@127.0.0.1:5432/test"
KEEL_DEFAULT_REDIS_URL="redis://127.0.0.1:6379"
KEEL_DEFAULT_NATS_URL="nats://127.0.0.1:4222"
KEEL_DEFAULT_ETCD_URL="http://127.0.0.1:2379"

keel_log() { printf '[services] %s\n' "$*" >&2; }

# Runs a command as root: directly when we are root, through passwordless sudo otherwise.
keel_as_root() {
    if [[ ${EUID:-$(id -u)} -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        keel_log "need root to run: $*"
        return 1
    fi
}

# Prints "host port" of the first server in URL (scheme://[user[:pass]@]host[:port][/path][?query]).
keel_url_host_port() {
    local url=${1%%,*} default_port=$2 authority host port
    authority=${url#*://}
    authority=${authority%%[/?#]*}
    authority=${authority##*@}
    if [[ $authority == \[* ]]; then # [::1]:4222
        host=${authority%%]*}
        host=${host#[}
        port=${authority#*]}
        port=${port#:}
    else
        host=${authority%%:*}
        port=${authority#"$host"}
        port=${port#:}
    fi
    printf '%s %s\n' "${host:-127.0.0.1}" "${port:-$default_port}"
}

# True when HOST is this machine, i.e. a server we may start ourselves.
keel_is_local() {
    case $1 in
        127.* | localhost | ::1) return 0 ;;
        *) return 1 ;;
    esac
}

# True when something accepts TCP connections on HOST PORT.
keel_tcp_open() {
    # shellcheck disable=SC2016 # $0 and $1 expand in the inner shell, on purpose
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# Runs CHECK (a function name plus args) every second until it succeeds or the wait runs out.
keel_wait_for() {
    local name=$1 deadline=$((SECONDS + ${KEEL_SERVICE_WAIT_SECS:-60}))
    shift
    until "$@"; do
        if ((SECONDS >= deadline)); then
            keel_log "$name did not answer within ${KEEL_SERVICE_WAIT_SECS:-60}s"
            return 1
        fi
        sleep 1
    done
}

# --- PostgreSQL --------------------------------------------------------------------------------

keel_postgres_ready() {
    local host=$1 port=$2
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h "$host" -p "$port" -t 3
    else
        keel_tcp_open "$host" "$port"
    fi
}

keel_start_postgres() {
    local version
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [[ ! -d /etc/postgresql ]]; then
        keel_log "PostgreSQL is not running and pg_ctlcluster is not installed here; start it yourself"
        return 1
    fi
    version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -V | tail -n 1)
    keel_log "starting PostgreSQL $version/main"
    keel_as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
}

# Creates the database named in URL when the server lacks it (a fresh machine), if psql is here.
keel_ensure_database() {
    local url=${1%%\?*} db admin_url exists
    db=${url##*/}
    admin_url=${url%/*}/postgres
    [[ $db =~ ^[A-Za-z0-9_]+$ ]] || return 0
    command -v psql >/dev/null 2>&1 || return 0
    exists=$(psql "$admin_url" -XtAc "SELECT 1 FROM pg_database WHERE datname = '$db'" 2>/dev/null) ||
        return 0 # cannot ask (no such admin database, auth): leave it to the tests to report
    if [[ -z $exists ]]; then
        keel_log "creating database $db"
        psql "$admin_url" -XqAc "CREATE DATABASE \"$db\"" >/dev/null ||
            keel_log "could not create database $db (tests that need it will say why)"
    fi
    return 0
}

keel_ensure_postgres() {
    local url=${DATABASE_URL:-$KEEL_DEFAULT_DATABASE_URL} host port
    read -r host port < <(keel_url_host_port "$url" 5432)
    if ! keel_postgres_ready "$host" "$port"; then
        if keel_is_local "$host"; then
            keel_start_postgres || keel_log "could not start PostgreSQL; waiting in case it is starting"
        fi
        keel_wait_for "PostgreSQL at $host:$port" keel_postgres_ready "$host" "$port" || return 1
    fi
    keel_ensure_database "$url"
    keel_log "PostgreSQL at $host:$port is ready"
}

# --- Redis -------------------------------------------------------------------------------------

keel_redis_ready() {
    local url=$1 host=$2 port=$3
    if command -v redis-cli >/dev/null 2>&1 && [[ $url == redis://* ]]; then
        [[ $(timeout 3 redis-cli -u "$url" ping 2>/dev/null) == PONG ]]
    else
        keel_tcp_open "$host" "$port"
    fi
}

keel_start_redis() {
    local port=$1
    if ! command -v redis-server >/dev/null 2>&1; then
        keel_log "Redis is not running and redis-server is not installed here; start it yourself"
        return 1
    fi
    keel_log "starting Redis on port $port"
    keel_as_root mkdir -p /var/lib/redis /var/log/redis
    keel_as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$port" --save "" \
        --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
}

keel_ensure_redis() {
    local url=${REDIS_URL:-$KEEL_DEFAULT_REDIS_URL} host port
    read -r host port < <(keel_url_host_port "$url" 6379)
    if ! keel_redis_ready "$url" "$host" "$port"; then
        if keel_is_local "$host"; then
            keel_start_redis "$port" || keel_log "could not start Redis; waiting in case it is starting"
        fi
        keel_wait_for "Redis at $host:$port" keel_redis_ready "$url" "$host" "$port" || return 1
    fi
    keel_log "Redis at $host:$port is ready"
}

# --- NATS (JetStream) --------------------------------------------------------------------------

# Prints the INFO line a NATS server sends first on every connection; fails when none comes.
keel_nats_info() {
    # shellcheck disable=SC2016 # $0, $1 and $line expand in the inner shell, on purpose
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && IFS= read -r -t 2 line <&3 && printf "%s\n" "$line"' \
        "$1" "$2" 2>/dev/null
}

keel_nats_ready() {
    [[ $(keel_nats_info "$1" "$2") == INFO* ]]
}

keel_start_nats() {
    local port=$1 server
    server=$(command -v nats-server || true)
    if [[ -z $server ]] || ! command -v start-stop-daemon >/dev/null 2>&1; then
        keel_log "NATS is not running and nats-server is not installed here; start it yourself (with -js)"
        return 1
    fi
    keel_log "starting NATS (JetStream) on port $port"
    keel_as_root mkdir -p /var/lib/nats-server
    keel_as_root start-stop-daemon --start --oknodo --background --exec "$server" -- \
        -a 127.0.0.1 -p "$port" -js -sd /var/lib/nats-server -l /var/log/nats-server.log
}

keel_ensure_nats() {
    local url=${NATS_URL:-$KEEL_DEFAULT_NATS_URL} host port
    read -r host port < <(keel_url_host_port "$url" 4222)
    if ! keel_nats_ready "$host" "$port"; then
        if keel_is_local "$host"; then
            keel_start_nats "$port" || keel_log "could not start NATS; waiting in case it is starting"
        fi
        keel_wait_for "NATS at $host:$port" keel_nats_ready "$host" "$port" || return 1
    fi
    if [[ $(keel_nats_info "$host" "$port") != *'"jetstream":true'* ]]; then
        keel_log "NATS at $host:$port answers but JetStream is off; restart it with -js"
        return 1
    fi
    keel_log "NATS at $host:$port is ready (JetStream on)"
}

# --- etcd ----------------------------------------------------------------------------------------

# The registry's etcd backend is tested against a real etcd (Debian's etcd-server, 3.4 on bookworm).
keel_etcd_ready() {
    local url=$1 host=$2 port=$3
    if command -v curl >/dev/null 2>&1; then
        [[ $(curl -fsS -m 3 "${url%%,*}/health" 2>/dev/null) == *'"health":"true"'* ]]
    else
        keel_tcp_open "$host" "$port"
    fi
}

# Installs etcd-server with apt-get when there is no etcd binary.
keel_install_etcd() {
    command -v etcd >/dev/null 2>&1 && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        keel_log "etcd is missing and there is no apt-get: install etcd (3.4 or later) yourself"
        return 1
    fi
    keel_log "installing etcd (Debian package etcd-server)"
    if ! keel_as_root apt-get update -q </dev/null ||
        ! keel_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            etcd-server </dev/null; then
        keel_log "could not install the etcd-server package"
        return 1
    fi
    command -v etcd >/dev/null 2>&1
}

# Starts a one-member etcd in the background on 127.0.0.1:PORT (peers on PORT+1), its data and log
# under /var/tmp/keel-etcd. No root needed.
keel_start_etcd() {
    local port=$1 peer=$(($1 + 1)) dir=/var/tmp/keel-etcd
    keel_install_etcd || return 1
    keel_log "starting etcd on port $port (data and log in $dir)"
    mkdir -p "$dir"
    nohup etcd --name keel-test --data-dir "$dir/data" \
        --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "keel-test=http://127.0.0.1:$peer" >>"$dir/etcd.log" 2>&1 </dev/null &
    disown 2>/dev/null || true
}

keel_ensure_etcd() {
    local url=${ETCD_URL:-$KEEL_DEFAULT_ETCD_URL} host port
    read -r host port < <(keel_url_host_port "$url" 2379)
    if ! keel_etcd_ready "$url" "$host" "$port"; then
        if keel_is_local "$host"; then
            keel_start_etcd "$port" || keel_log "could not start etcd; waiting in case it is starting"
        fi
        keel_wait_for "etcd at $host:$port" keel_etcd_ready "$url" "$host" "$port" || return 1
    fi
    keel_log "etcd at $host:$port is ready"
}

# --- promtool ----------------------------------------------------------------------------------

# Tests check the /metrics output with `promtool check metrics`; promtool comes with the Debian
# package prometheus.
keel_ensure_promtool() {
    if command -v promtool >/dev/null 2>&1; then
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        keel_log "promtool is missing and there is no apt-get: install Prometheus' promtool yourself"
        return 1
    fi
    keel_log "installing promtool (Debian package prometheus)"
    if ! keel_as_root apt-get update -q </dev/null ||
        ! keel_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            prometheus </dev/null; then
        keel_log "could not install the prometheus package"
        return 1
    fi
    command -v promtool >/dev/null 2>&1
}

# --- everything --------------------------------------------------------------------------------

# Checks every server (etcd included) and promtool, reports each failure, and fails if any failed.
keel_ensure_services() {
    local failed=()
    keel_ensure_postgres || failed+=(PostgreSQL)
    keel_ensure_redis || failed+=(Redis)
    keel_ensure_nats || failed+=(NATS)
    keel_ensure_etcd || failed+=(etcd)
    keel_ensure_promtool || failed+=(promtool)
    if ((${#failed[@]})); then
        keel_log "not available: ${failed[*]}"
        return 1
    fi
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    keel_ensure_services
fi
