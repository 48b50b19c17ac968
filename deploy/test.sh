#!/usr/bin/env bash
# Runs every check and test of Shoal: formatting, lints, unit tests and the
# end-to-end tests against real nats-server processes. Installs the pinned
# NATS tools first (deploy/tools.sh), reusing them when already there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

eval "$(bash deploy/tools.sh --env)"
nats-server --version
nats --version

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace

# Every parser of hostile input, fuzzed for a bounded time from the kept corpus.
bash deploy/fuzz.sh "${SHOAL_FUZZ_SECONDS:-20}"
