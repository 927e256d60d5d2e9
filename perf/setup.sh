#!/usr/bin/env bash
# Installs the load tools and the reverse proxy that perf/gateway.sh compares the gateway against,
# when they are missing. Idempotent: a second run finds everything and returns at once.
#
#   perf/setup.sh          # prints nothing on stdout; progress on stderr
#
# - nginx and wrk from Debian (`apt-get install`, as root). The package's own service is not
#   started (the harness runs nginx with a generated configuration of its own, see gateway.sh).
# - oha from crates.io (`cargo install --locked`, about 5 minutes the first time) into
#   $KEEL_TOOLS (default /var/tmp/keel-tools, outside the work tree so it survives a fresh
#   checkout), with its own target directory there so an interrupted build resumes.
#
# Variables: KEEL_TOOLS (install root), OHA_VERSION (default below).
set -euo pipefail

tools=${KEEL_TOOLS:-/var/tmp/keel-tools}
oha_version=${OHA_VERSION:-1.16.0}

log() { printf 'perf/setup.sh: %s\n' "$*" >&2; }

missing=()
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
if ((${#missing[@]})); then
    log "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # The package lists may be absent or stale on a fresh machine: update once, then retry.
    if ! apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
        apt-get update >&2
        apt-get install -y --no-install-recommends "${missing[@]}" >&2
    fi
fi

oha="$tools/bin/oha"
if [[ -x "$oha" ]] && "$oha" --version 2>/dev/null | grep -q "$oha_version"; then
    exit 0
fi
log "building oha $oha_version into $tools (cargo install, a few minutes the first time)"
mkdir -p "$tools"
# Default features: oha 1.16 does not build without its TLS feature, though the harness speaks plain HTTP.
CARGO_TARGET_DIR="$tools/target" cargo install oha --version "=$oha_version" --locked --root "$tools" >&2
"$oha" --version >&2
