#!/usr/bin/env bash
# Fuzzes every parser of what Shoal reads from the wire or from files (job
# specs, stream messages and their fold into records, times and durations,
# resource YAML) for SECONDS each (default 20), from
# the corpus kept in fuzz/corpus. New inputs go to a temporary folder, so the
# kept corpus changes only when someone copies inputs in on purpose. A crash
# fails the run and leaves its input in fuzz/artifacts/<target>/.
# Usage: bash deploy/fuzz.sh [SECONDS]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds="${1:-20}"
eval "$(bash "$root/deploy/tools.sh" --env)"
# cargo fuzz builds with sanitizer options that stable rustc takes only this way.
export RUSTC_BOOTSTRAP=1
cd "$root/fuzz"
for target in job_spec events fold time resource_yaml; do
  found=$(mktemp -d)
  trap 'rm -rf "$found"' EXIT
  echo "fuzz.sh: $target for ${seconds}s" >&2
  cargo fuzz run "$target" "$found" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 -print_funcs=0
  rm -rf "$found"
done
