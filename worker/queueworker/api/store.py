"""Async reads and admin writes over the worker's keys (``worker/keys.py``).

The worker's ``FailedStore`` is synchronous (redis-py); the API serves from one event
loop, so these are the same operations over ``redis.asyncio``, reusing the worker's Lua
(``failed.RETRY``) so that a retry through the API and through the CLI are the same
script.
"""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio as aioredis

from queueworker.api.models import FailedJob, QueueStatus, RunningJob, WorkerStatus
from queueworker.worker import keys
from queueworker.worker.admin import paused_key
from queueworker.worker.failed import RETRY
from queueworker.worker.heartbeat import Heartbeat
from queueworker.worker.job import Job

# Only an id in the failed set loses its hash: a running or done job is never deleted here.
FORGET = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""
SCAN_LIMIT = 10_000  # keys looked at to find the queues when none are configured


def _counters(raw: dict[str, str]) -> dict[str, int]:
    out = {}
    for k, v in raw.items():
        try:
            out[k] = int(v)
        except ValueError:
            continue
    return out


async def queue_status(r: aioredis.Redis, queue: str, prefix: str) -> QueueStatus:
    """Depths in one round trip: per level LLEN and the oldest id (its age is in the id);
    the levels as ``keys.waiting_levels`` names them (``depths.py`` reads the same)."""
    levels = keys.waiting_levels(queue, prefix)
    async with r.pipeline(transaction=False) as pipe:
        for _, key in levels:
            pipe.llen(key)
            pipe.lindex(key, -1)
        pipe.zcard(keys.delayed(queue, prefix))
        pipe.zcard(keys.inflight(queue, prefix))
        pipe.hgetall(keys.stats(queue, prefix))
        pipe.sismember(paused_key(prefix), queue)
        *per_level, delayed, inflight, stats, paused = await pipe.execute()
    by_priority: dict[str, int] = {}
    ages = []
    for (level, _), n, oldest in zip(levels, per_level[::2], per_level[1::2], strict=True):
        by_priority[str(level)] = int(n)
        at = keys.enqueued_at_from_id(oldest) if oldest else None
        if at is not None:
            ages.append(max(0.0, time.time() - at))
    return QueueStatus(queue=queue, waiting=sum(by_priority.values()), delayed=int(delayed),
                       in_flight=int(inflight), oldest_waiting_seconds=max(ages, default=None),
                       by_priority=by_priority, paused=bool(paused), stats=_counters(stats))


async def find_queues(r: aioredis.Redis, prefix: str) -> list[str]:
    """Queues that have a stats hash (every enqueue writes one), found by SCAN."""
    head, tail = f"{prefix}:{{", "}:stats"
    found: set[str] = set()
    seen = 0
    async for key in r.scan_iter(match=f"{prefix}:{{*}}:stats", count=1000):
        seen += 1
        if key.startswith(head) and key.endswith(tail):
            found.add(key[len(head):-len(tail)])
        if seen >= SCAN_LIMIT:
            break
    return sorted(found)


def worker_status(b: Heartbeat) -> WorkerStatus:
    return WorkerStatus(id=b.id, pod=b.pod, host=b.host, pid=b.pid, queues=list(b.queues),
                        state=b.state, processed=b.processed, failed=b.failed,
                        started_at=b.started_at, beat_at=b.beat_at,
                        in_flight=[RunningJob(id=j.id, queue=j.queue, started_at=j.started_at)
                                   for j in b.in_flight])


def job_info(job_id: str, raw: dict[str, str]) -> dict[str, Any] | None:
    return Job.from_hash(job_id, raw).info() if raw else None


class AsyncFailedStore:
    def __init__(self, r: aioredis.Redis, prefix: str) -> None:
        self.r = r
        self.prefix = prefix
        self.key = keys.failed(prefix)
        self._retry = r.register_script(RETRY)
        self._forget = r.register_script(FORGET)

    async def list(self, queue: str | None, limit: int, offset: int = 0) -> list[FailedJob]:
        """Newest first; with ``queue``, the newest ``limit`` of that queue."""
        out: list[FailedJob] = []
        start = offset if queue is None else 0
        skipped = 0
        while len(out) < limit:
            page = 500 if queue else limit
            ids = await self.r.zrevrange(self.key, start, start + page - 1)
            if not ids:
                break
            start += len(ids)
            async with self.r.pipeline(transaction=False) as pipe:
                for i in ids:
                    pipe.hmget(keys.job(i, self.prefix), ["queue", "failed_at", "tries", "error"])
                rows = await pipe.execute()
            for i, (q, at, tries, err) in zip(ids, rows, strict=True):
                if queue is not None and q != queue:
                    continue
                if queue is not None and skipped < offset:
                    skipped += 1
                    continue
                out.append(FailedJob(id=i, queue=q, failed_at=_float(at), tries=_int(tries),
                                     error=err.splitlines()[0] if err else ""))
                if len(out) >= limit:
                    break
        return out

    async def show(self, job_id: str) -> dict[str, Any] | None:
        async with self.r.pipeline(transaction=False) as pipe:
            pipe.zscore(self.key, job_id)
            pipe.hgetall(keys.job(job_id, self.prefix))
            score, raw = await pipe.execute()
        return None if score is None else job_info(job_id, raw)

    async def retry(self, job_id: str) -> bool:
        return int(await self._retry(args=[self.prefix, job_id])) == 1

    async def forget(self, job_id: str) -> bool:
        """Delete a failed job; a job that is not in the failed store is left alone."""
        return int(await self._forget(keys=[self.key, keys.job(job_id, self.prefix)],
                                      args=[job_id])) == 1


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _int(text: str | None) -> int:
    try:
        return int(text) if text else 0
    except ValueError:
        return 0


async def set_paused(r: aioredis.Redis, queue: str, prefix: str, paused: bool) -> None:
    """What ``admin.pause_queue`` / ``resume_queue`` do (the worker's ``AdminWatch`` reads
    the set), over redis.asyncio; a resume wakes the queue's idle workers at once."""
    if paused:
        await r.sadd(paused_key(prefix), queue)  # type: ignore[misc]
        return
    async with r.pipeline(transaction=False) as pipe:
        pipe.srem(paused_key(prefix), queue)
        pipe.lpush(keys.notify(queue, prefix), "1")
        pipe.ltrim(keys.notify(queue, prefix), 0, 15)
        await pipe.execute()
