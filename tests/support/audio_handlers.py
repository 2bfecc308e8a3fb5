"""The audio-separation service's handler, scaled down for tests (tests/api/test_api_e2e.py).

``separate`` pretends to split ``{"duration": S}`` seconds of audio into stems in four
steps, reporting progress after each; ``{"fail": true}`` is a file it cannot read. It
counts how many run at once in the worker's Redis (``audio:running`` now,
``audio:concurrency`` every value seen) and the order jobs start (``audio:started``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from queueworker.worker.config import worker_redis_url
from queueworker.worker.job import Job

STEPS = 4
STEMS = ["vocals", "drums", "bass", "other"]
_client: aioredis.Redis | None = None


def _redis() -> aioredis.Redis:
    global _client
    if _client is None:
        _client = aioredis.Redis.from_url(worker_redis_url())
    return _client


async def separate(payload: Any, job: Job) -> Any:
    r = _redis()
    now = await r.incr("audio:running")
    await r.rpush("audio:concurrency", now)
    await r.rpush("audio:started", job.id)
    try:
        if payload.get("fail"):
            raise ValueError(f"cannot decode {payload.get('file')!r}: not an audio file")
        for step in range(1, STEPS + 1):
            await asyncio.sleep(float(payload["duration"]) / STEPS)
            job.progress(step / STEPS, detail={"stage": f"step {step}/{STEPS}"})
        return {"file": payload.get("file"), "stems": STEMS}
    finally:
        await r.decr("audio:running")
