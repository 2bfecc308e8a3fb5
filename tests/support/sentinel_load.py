"""Load for a failover: producers that count what was acknowledged, a worker handler
that counts what ran, and the lost / duplicated arithmetic (the Sentinel test and
benchmarks/sentinel/bench.py share it)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from queueworker.worker import keys
from queueworker.worker.durable import NotReplicatedError
from queueworker.worker.job import Job
from queueworker.worker.producer import AsyncProducer


@dataclass
class Tally:
    """Per queue: sequence numbers acknowledged to a producer, those whose enqueue
    raised (maybe in Redis, maybe not: never counted as lost), and runs per number."""

    queues: Sequence[str]
    acked: dict[str, set[int]] = field(default_factory=dict)
    unsure: dict[str, set[int]] = field(default_factory=dict)
    ran: dict[str, collections.Counter[int]] = field(default_factory=dict)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)

    def __post_init__(self) -> None:
        for q in self.queues:
            self.acked[q], self.unsure[q], self.ran[q] = set(), set(), collections.Counter()

    def lost(self, q: str) -> set[int]:
        return self.acked[q] - set(self.ran[q])

    def duplicated(self, q: str) -> int:
        return sum(1 for n in self.ran[q].values() if n > 1)

    def handler(self, seconds: float = 0.0) -> Callable[[dict[str, Any], Job], Awaitable[None]]:
        """A handler that counts the run (after ``seconds`` of work, when given)."""
        async def handler(payload: dict[str, Any], job: Job) -> None:
            if seconds:
                await asyncio.sleep(seconds)
            self.ran[job.queue][int(payload["seq"])] += 1
        return handler

    def summary(self, q: str) -> dict[str, int]:
        return {"acked": len(self.acked[q]), "unsure": len(self.unsure[q]),
                "lost": len(self.lost(q)), "duplicated": self.duplicated(q)}


async def produce(producer: AsyncProducer, queue: str, tally: Tally, stop: asyncio.Event,
                  numbers: collections.abc.Iterator[int], pause: float = 0.0) -> None:
    """Enqueue ``{"seq": n}`` until ``stop``; a failed enqueue backs off 50 ms."""
    while not stop.is_set():
        seq = next(numbers)
        try:
            await producer.enqueue(queue, {"seq": seq})
            tally.acked[queue].add(seq)
        except (RedisError, OSError, NotReplicatedError) as exc:
            tally.unsure[queue].add(seq)
            tally.errors[f"{queue}:{type(exc).__name__}"] += 1
            await asyncio.sleep(0.05)
        if pause:
            await asyncio.sleep(pause)


async def drained(client: aioredis.Redis, queues: Sequence[str]) -> bool:
    """No job waiting, delayed or in flight in any of ``queues`` (False if unreachable)."""
    try:
        async with client.pipeline(transaction=False) as pipe:
            for q in queues:
                pipe.llen(keys.waiting(q))
                pipe.zcard(keys.inflight(q))
                pipe.zcard(keys.delayed(q))
            counts: list[int] = await pipe.execute()
            return sum(counts) == 0
    except (RedisError, OSError):
        return False
