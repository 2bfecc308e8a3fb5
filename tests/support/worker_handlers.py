"""Handlers that test workers run (`--handler support.worker_handlers:record`).

They write what happened to the Redis named by QUEUEWORKER_REDIS_URL:
``test:started`` and ``test:done`` lists of ``<job id>:<delivery count>``.
A payload may ask for ``{"sleep": S}`` (seconds of work), ``{"fail": true}``
(always raise) or ``{"fail_times": N}`` (raise on the first N attempts).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis.asyncio as aioredis

from queueworker.worker.config import worker_redis, worker_redis_url
from queueworker.worker.job import Job

_async: aioredis.Redis | None = None


def _aclient() -> aioredis.Redis:
    global _async
    if _async is None:
        _async = aioredis.Redis.from_url(worker_redis_url())
    return _async


class Boom(RuntimeError):
    pass


def _maybe_fail(payload: Any, job: Job) -> None:
    if not isinstance(payload, dict):
        return
    if payload.get("fail"):
        raise Boom(f"asked to fail (try {job.tries + 1})")
    if job.tries < int(payload.get("fail_times", 0)):
        raise Boom(f"failing attempt {job.tries + 1} of {payload['fail_times']}")


async def record(payload: Any, job: Job) -> None:
    r = _aclient()
    await r.rpush("test:started", f"{job.id}:{job.deliveries}")
    if isinstance(payload, dict) and payload.get("sleep"):
        await asyncio.sleep(float(payload["sleep"]))
    _maybe_fail(payload, job)
    await r.rpush("test:done", f"{job.id}:{job.deliveries}")


def record_sync(payload: Any, job: Job) -> None:
    r = worker_redis()
    r.rpush("test:started", f"{job.id}:{job.deliveries}")
    if isinstance(payload, dict) and payload.get("sleep"):
        time.sleep(float(payload["sleep"]))
    _maybe_fail(payload, job)
    r.rpush("test:done", f"{job.id}:{job.deliveries}")


async def noop(payload: Any) -> None:
    return None


handlers = {"default": record, "record": record, "record_sync": record_sync}
