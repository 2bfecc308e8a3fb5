"""Chaos jobs: sleep, then record the completion (set of numbers + run counts)."""

from __future__ import annotations

import os
import time
from typing import Any

import redis

_client: redis.Redis | None = None


def handle(payload: dict[str, Any]) -> None:
    global _client
    time.sleep(float(payload.get("seconds", 0.1)))
    if _client is None:
        _client = redis.Redis.from_url(os.environ["QUEUEWORKER_REDIS_URL"])
    n = str(payload["n"])
    pipe = _client.pipeline(transaction=False)
    pipe.sadd("chaos:done", n)
    pipe.hincrby("chaos:runs", n, 1)
    pipe.execute()
