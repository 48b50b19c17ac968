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
# The job guard without a C library is built apart by its crate's build
# script (its panics abort), so cargo's checks do not reach it.
rustfmt --edition 2021 --check services/guard/bare/main.rs
guard_lints="$(mktemp -d)"
clippy-driver --edition 2021 --crate-type bin --crate-name shoal_job_guard -C panic=abort \
  -C relocation-model=static -C link-arg=-nostartfiles -C link-arg=-nostdlib -C link-arg=-static \
  -D warnings services/guard/bare/main.rs -o "$guard_lints/shoal-job-guard"
rm -rf "$guard_lints"
cargo test --workspace

# Every parser of hostile input, fuzzed for a bounded time from the kept corpus.
bash deploy/fuzz.sh "${SHOAL_FUZZ_SECONDS:-20}"
