"""Waiting jobs per priority level of native queues, in one round trip.

For ``queueworker queues``, the HTTP API and anyone else who shows a queue's
depth by priority (the operator's reader folds the same LLENs into its own
pipeline: observe/layouts/native.py). Levels follow ``keys.waiting``:

    from queueworker.worker.depths import waiting_by_priority
    waiting_by_priority(redis.Redis(...), ["emails"])  # {"emails": {10: 0, ..., 5: 3, ..., 1: 0}}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio as aioredis

from queueworker.worker import keys


def _split(queues: Sequence[str], flat: Sequence[Any]) -> dict[str, dict[int, int]]:
    n = len(keys.PRIORITIES)
    return {q: {level: int(flat[i * n + j]) for j, level in enumerate(keys.PRIORITIES)}
            for i, q in enumerate(queues)}


def waiting_by_priority(client: redis.Redis, queues: Sequence[str],
                        prefix: str = keys.DEFAULT_PREFIX) -> dict[str, dict[int, int]]:
    """{queue: {priority: waiting jobs}} for levels 10..1 (redis-py, one pipeline)."""
    with client.pipeline(transaction=False) as pipe:
        for q in queues:
            for _, key in keys.waiting_levels(q, prefix):
                pipe.llen(key)
        return _split(queues, pipe.execute())


async def awaiting_by_priority(client: aioredis.Redis, queues: Sequence[str],
                               prefix: str = keys.DEFAULT_PREFIX) -> dict[str, dict[int, int]]:
    """The same over redis.asyncio."""
    async with client.pipeline(transaction=False) as pipe:
        for q in queues:
            for _, key in keys.waiting_levels(q, prefix):
                pipe.llen(key)
        return _split(queues, await pipe.execute())
