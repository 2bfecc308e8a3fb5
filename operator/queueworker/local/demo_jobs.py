"""The demo's job handler: sleep as long as the job says, then record it as done.

Completions go to Redis (the workers' own Redis, ``QUEUEWORKER_REDIS_URL``) so
the demo can prove that no job was lost: each job carries a demo id (``did``)
and its send time; the handler adds the id to ``demo:{run}:done`` and, on a
job's first attempt, its queue wait to ``demo:{run}:waits``. A job marked
``flaky`` fails on its first attempt (the runtime retries it), so the demo
shows retries without losing anything.
"""

from __future__ import annotations

import time
from typing import Any

from queueworker.worker.config import worker_redis


def handle(payload: dict[str, Any]) -> None:
    """Gets the decoded payload (the runtime runs plain functions in a thread)."""
    run, did = str(payload["run"]), str(payload["did"])
    client = worker_redis()
    attempt = int(client.hincrby(f"demo:{run}:attempts", did, 1))  # type: ignore[arg-type]
    if attempt == 1:
        client.rpush(f"demo:{run}:waits", max(0.0, time.time() - float(payload["sent"])))
        if payload.get("flaky"):
            client.incr(f"demo:{run}:failures")
            raise RuntimeError("demo: simulated failure on the first attempt (will be retried)")
    time.sleep(float(payload.get("seconds", 0.1)))
    client.sadd(f"demo:{run}:done", did)
