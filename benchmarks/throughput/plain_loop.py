"""The ceiling: the simplest reliable list consumer (BLMOVE to a processing list, LREM to ack).

At-least-once only in the weakest sense: nothing puts a crashed worker's jobs
back (no lease, no reaper), no retries, no failed store. Two round trips a job.
"""

import json
import os
import sys

import redis


def handle(payload: object) -> None:
    return None


def main() -> int:
    r = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    queue, processing = "plain:queue", f"plain:processing:{os.getpid()}"
    while True:
        raw = r.blmove(queue, processing, 1.0, "RIGHT", "LEFT")
        if raw is None:
            return 0
        handle(json.loads(raw))
        r.lrem(processing, 1, raw)


if __name__ == "__main__":
    sys.exit(main())
