"""Job handler for local-mode tests: sleep, then count the job as done in Redis.

``t:done`` is a set of job numbers; ``t:runs`` counts completions per number
(more than 1: a duplicate, e.g. a job redelivered after its worker was killed).
"""

from __future__ import annotations

import time
from typing import Any

from queueworker.worker.config import worker_redis


def handle(payload: dict[str, Any]) -> None:
    time.sleep(float(payload.get("seconds", 0.1)))
    client = worker_redis()
    n = str(payload["n"])
    pipe = client.pipeline(transaction=False)
    pipe.sadd("t:done", n)
    pipe.hincrby("t:runs", n, 1)
    pipe.execute()
