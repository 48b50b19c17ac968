#!/usr/bin/env bash
# Runs Shoal on this machine: a local nats-server, the projector, the registry, a worker
# and a demo job (`shoal dev`). Ctrl-C stops everything. Extra arguments go
# to `shoal dev` (e.g. --once to stop after the demo job).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

eval "$(bash deploy/tools.sh --env --run)"
cargo build --quiet --bin shoal
exec target/debug/shoal dev "$@"
