#!/usr/bin/env bash
# Runs the all-in-one platform locally with the embedded defaults (SQLite files under ./data/,
# in-process event bus, in-memory cache, ...; see config/default.yaml and config/development.yaml).
# No server needs to be installed. Extra arguments go to `platform serve`; settings come from
# KEEL_* variables (see .env.example), e.g. KEEL_HTTP__PORT=9090 ./scripts/dev.sh, and RUST_LOG,
# when set, wins over telemetry.log.level.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

export KEEL_ENV="${KEEL_ENV:-development}"
# The embedded database (database.url: sqlite:data) keeps one file per service in this directory.
mkdir -p data

exec cargo run -p keel-platform --bin platform -- serve "$@"
