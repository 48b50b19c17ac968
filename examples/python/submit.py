"""Submits a Shoal job with nats-py, waits for its end and prints its record.

The job is checked against schemas/job.json before it is sent; JetStream's
answer confirms it is stored; the record is read from KV bucket shoal_jobs
under <group>.<id>. Works against `bash deploy/dev.sh` as it is:

    NATS_URL=nats://127.0.0.1:4222 python3 examples/python/submit.py [GROUP [QUEUE [ENTRYPOINT [ARG...]]]]

GROUP defaults to demo, QUEUE to default, ENTRYPOINT to hello (the demo's).
Needs nats-py and jsonschema (deploy/tools.sh puts both in .tools/python).
"""

import asyncio
import json
import os
import pathlib
import sys
import time
import uuid

import jsonschema
import nats
from nats.js.errors import KeyNotFoundError

SCHEMA = pathlib.Path(__file__).resolve().parents[2] / "schemas" / "job.json"
TERMINAL = {"succeeded", "failed", "timed_out", "cancelled", "dead"}


async def main(group: str, queue: str, entrypoint: str, args: list) -> int:
    job = {"id": f"py-{uuid.uuid4().hex[:12]}", "entrypoint": entrypoint, "args": args}
    jsonschema.validate(job, json.loads(SCHEMA.read_text()))

    client = await nats.connect(os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    try:
        js = client.jetstream()
        ack = await js.publish(f"shoal.jobs.{group}.{queue}", json.dumps(job).encode())
        print(f"submitted {group}.{job['id']} (stream {ack.stream}, sequence {ack.seq})", file=sys.stderr)

        jobs = await js.key_value("shoal_jobs")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                entry = await jobs.get(f"{group}.{job['id']}")
            except KeyNotFoundError:
                entry = None
            if entry is not None and entry.value:
                record = json.loads(entry.value)
                if record.get("state") in TERMINAL:
                    print(json.dumps(record, indent=2))
                    return 0 if record["state"] == "succeeded" else 1
            await asyncio.sleep(0.1)
        print(f"submit.py: job {group}.{job['id']} did not end within 60 s", file=sys.stderr)
        return 1
    finally:
        await client.close()


if __name__ == "__main__":
    argv = sys.argv[1:]
    sys.exit(
        asyncio.run(
            main(
                argv[0] if len(argv) > 0 else "demo",
                argv[1] if len(argv) > 1 else "default",
                argv[2] if len(argv) > 2 else "hello",
                argv[3:],
            )
        )
    )
