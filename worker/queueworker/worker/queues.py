"""Queue depths from the worker's own keys (keys.py), without Kubernetes.

``depths`` reads, per queue, in one pipelined round trip: waiting per priority
level (``keys.waiting_levels``), delayed (and how many of them are due),
in flight, and the age of the oldest waiting job (job ids start with their
enqueue time, so the last id of each level list is enough). ``failed_counts``
counts the failed store per queue (one HGET per failed job, pipelined).
``queueworker queues`` prints them; the operator's native reader
(observe/layouts/native.py) reads the same keys for scaling, and depths.py
has the waiting-per-level read alone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis

from queueworker.worker import keys
from queueworker.worker.connection import is_cluster
from queueworker.worker.depths import awaiting_by_priority


@dataclass(frozen=True)
class Depth:
    queue: str
    waiting: int
    by_priority: dict[int, int] = field(default_factory=dict)  # non-empty levels only
    delayed: int = 0
    due: int = 0  # delayed jobs already due: ready on the next take
    in_flight: int = 0
    failed: int = 0
    oldest_age: float | None = None  # seconds the oldest waiting job has waited

    def info(self) -> dict[str, Any]:
        return {"queue": self.queue, "waiting": self.waiting,
                "waiting_by_priority": {str(p): n for p, n in self.by_priority.items()},
                "delayed": self.delayed, "due": self.due, "in_flight": self.in_flight,
                "failed": self.failed, "oldest_age_seconds": self.oldest_age}


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def discover(client: redis.Redis, prefix: str) -> list[str]:
    """Queues that ever had a job (their stats hash exists), sorted."""
    head, tail = f"{prefix}:{{", "}:stats"
    found = {_text(k)[len(head):-len(tail)]
             for k in client.scan_iter(match=f"{prefix}:{{*}}:stats", count=1000)}
    return sorted(q for q in found if q and "{" not in q and "}" not in q)


def depths(client: redis.Redis, prefix: str, queues: Sequence[str],
           now: float | None = None) -> list[Depth]:
    now = time.time() if now is None else now
    levels = {q: keys.waiting_levels(q, prefix) for q in queues}
    with client.pipeline(transaction=False) as pipe:
        for q in queues:
            for _, key in levels[q]:
                pipe.llen(key)
                pipe.lindex(key, -1)
            pipe.zcard(keys.delayed(q, prefix))
            pipe.zcount(keys.delayed(q, prefix), "-inf", repr(now))
            pipe.zcard(keys.inflight(q, prefix))
        replies = iter(pipe.execute())
    failed = failed_counts(client, prefix, queues)
    out = []
    for q in queues:
        by_priority: dict[int, int] = {}
        oldest: float | None = None
        for level, _ in levels[q]:
            n, last = int(next(replies)), next(replies)
            if n:
                by_priority[level] = n
            at = keys.enqueued_at_from_id(_text(last)) if last is not None else None
            if at is not None and (oldest is None or at < oldest):
                oldest = at
        delayed, due, in_flight = (int(next(replies)) for _ in range(3))
        out.append(Depth(q, sum(by_priority.values()), by_priority, delayed, due, in_flight,
                         failed.get(q, 0),
                         None if oldest is None else round(max(0.0, now - oldest), 3)))
    return out


def failed_counts(client: redis.Redis, prefix: str, queues: Sequence[str] | None = None,
                  batch: int = 1000) -> dict[str, int]:
    """Failed jobs per queue (of ``queues``, or of every queue ``discover`` finds): one
    ZCARD each, plus the old layout's one store (``keys.legacy_failed``), where an entry
    whose hash is gone counts under ``?``."""
    names = list(queues) if queues is not None else discover(client, prefix)
    with client.pipeline(transaction=False) as pipe:
        for q in names:
            pipe.zcard(keys.failed(q, prefix))
        counts = {q: int(n) for q, n in zip(names, pipe.execute(), strict=True) if int(n)}
    if is_cluster(client):
        return counts  # no old store on a cluster (failed.stores)
    start = 0
    while True:
        ids = client.zrange(keys.legacy_failed(prefix), start, start + batch - 1)
        if not ids:
            return counts
        start += len(ids)
        with client.pipeline(transaction=False) as pipe:
            for i in ids:
                pipe.hget(keys.job(_text(i), prefix), "queue")
            for q in pipe.execute():
                name = "?" if q is None else _text(q)
                counts[name] = counts.get(name, 0) + 1


async def waiting_total(client: aioredis.Redis, prefix: str, queues: Sequence[str]) -> int:
    """Jobs waiting on these queues, every priority level (one round trip)."""
    if not queues:
        return 0
    levels = await awaiting_by_priority(client, queues, prefix)
    return sum(sum(per_level.values()) for per_level in levels.values())


async def still_waiting(client: aioredis.Redis, prefix: str, queues: Sequence[str]) -> bool:
    """Whether jobs wait on these queues (True on a Redis error: not known to be empty)."""
    try:
        return await waiting_total(client, prefix, queues) > 0
    except (redis.RedisError, OSError):
        return True
