#!/usr/bin/env bash
# Submits a job with only the `nats` CLI, waits for its end and prints its
# record. Works against `bash deploy/dev.sh` as it is:
#
#   NATS_URL=nats://127.0.0.1:4222 examples/sh/submit.sh [GROUP [QUEUE [ENTRYPOINT [ARG...]]]]
#
# GROUP defaults to demo, QUEUE to default, ENTRYPOINT to hello (the demo's).
set -euo pipefail

group=${1:-demo}
queue=${2:-default}
entrypoint=${3:-hello}
shift $(($# < 3 ? $# : 3))

json_string() { # a shell word as a JSON string
  local text=${1//\\/\\\\}
  text=${text//\"/\\\"}
  printf '"%s"' "$text"
}

id="sh-$(date +%s)-$$"
args=""
for arg in "$@"; do
  args+="${args:+,}$(json_string "$arg")"
done
job="{\"id\":\"$id\",\"entrypoint\":$(json_string "$entrypoint"),\"args\":[$args]}"

# A request, not a publish: JetStream answers once the job is stored.
ack=$(nats req "shoal.jobs.$group.$queue" "$job" --raw)
case "$ack" in
  *'"seq"'*) ;;
  *) echo "submit.sh: the job was not stored: $ack" >&2; exit 1 ;;
esac
echo "submitted $group.$id" >&2

# The record is in KV bucket shoal_jobs under <group>.<id>; wait for an end.
for _ in $(seq 1 600); do
  if record=$(nats kv get shoal_jobs "$group.$id" --raw 2>/dev/null); then
    case "$record" in
      *'"state":"succeeded"'* | *'"state":"failed"'* | *'"state":"timed_out"'* | \
        *'"state":"cancelled"'* | *'"state":"dead"'*)
        echo "$record"
        case "$record" in *'"state":"succeeded"'*) exit 0 ;; *) exit 1 ;; esac
        ;;
    esac
  fi
  sleep 0.1
done
echo "submit.sh: job $group.$id did not end within 60 s" >&2
exit 1
