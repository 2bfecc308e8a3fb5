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
from queueworker.worker.connection import is_cluster
from queueworker.worker.failed import RETRY, stores
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
    """The failed store over redis.asyncio: every queue's (``keys.failed``, the queues
    found by ``find_queues``) and the old layout's one store, as ``failed.FailedStore``."""

    def __init__(self, r: aioredis.Redis, prefix: str) -> None:
        self.r = r
        self.prefix = prefix
        self.cluster = is_cluster(r)
        self._retry = r.register_script(RETRY)
        self._forget = r.register_script(FORGET)

    async def list(self, queue: str | None, limit: int, offset: int = 0) -> list[FailedJob]:
        """Newest first; with ``queue``, the newest ``limit`` of that queue."""
        names = [queue] if queue is not None else await find_queues(self.r, self.prefix)
        want = offset + limit
        entries: list[tuple[str, float]] = []
        for key in stores(names, self.prefix, self.cluster):
            legacy = key == keys.legacy_failed(self.prefix)
            # the old store mixes queues: read it all when one queue is asked for
            rows = await self.r.zrevrange(key, 0, -1 if legacy and queue else want - 1,
                                          withscores=True)
            entries += [(i, float(at)) for i, at in rows]
        entries.sort(key=lambda e: -e[1])
        ids = [i for i, _ in entries]
        async with self.r.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hmget(keys.job(i, self.prefix), ["queue", "failed_at", "tries", "error"])
            rows = await pipe.execute()
        out: list[FailedJob] = []
        for i, (q, at, tries, err) in zip(ids, rows, strict=True):
            if queue is not None and q != queue:
                continue
            out.append(FailedJob(id=i, queue=q, failed_at=_float(at), tries=_int(tries),
                                 error=err.splitlines()[0] if err else ""))
        return out[offset:offset + limit]

    async def _store_of(self, job_id: str) -> str | None:
        queue = await self.r.hget(keys.job(job_id, self.prefix), "queue")  # type: ignore[misc]
        names = [n for n in (queue, keys.queue_of_id(job_id)) if n]
        for key in stores(dict.fromkeys(names), self.prefix, self.cluster):
            if await self.r.zscore(key, job_id) is not None:
                return key
        return None

    async def show(self, job_id: str) -> dict[str, Any] | None:
        if await self._store_of(job_id) is None:
            return None
        return job_info(job_id, await self.r.hgetall(keys.job(job_id, self.prefix)))  # type: ignore[misc]

    async def retry(self, job_id: str) -> bool:
        route = keys.script_keys(keys.queue_of_id(job_id) or "", self.cluster, self.prefix)
        return int(await self._retry(keys=route, args=[self.prefix, job_id])) == 1

    async def forget(self, job_id: str) -> bool:
        """Delete a failed job; a job that is not in the failed store is left alone."""
        key = await self._store_of(job_id)
        if key is None:
            return False
        return int(await self._forget(keys=[key, keys.job(job_id, self.prefix)],
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
