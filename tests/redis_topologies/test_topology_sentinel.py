"""A master behind real Sentinels killed under load (tests/support/redis_sentinel.py).

One worker serves two queues; two producers enqueue about 100 jobs/s each, one
plain and one durable (``WAIT 1``, worker/durable.py); the operator's reader
polls the depths through the Sentinels. Then the master gets SIGKILL. The
test counts, per queue, acknowledged jobs that never ran (lost) and jobs that
ran twice (duplicated), and prints them (RELIABILITY.md has the figures).
Held: the workers and producers reach the new master by themselves, the
reader reports Redis unreachable while there is no master and reads again
after, and no acknowledged durable job is lost.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from queueworker.observe import connections
from queueworker.operator import api
from queueworker.operator.controller.observe import Connection, read_queues
from queueworker.worker import connection, keys
from queueworker.worker.durable import AsyncDurableProducer, NotReplicatedError
from queueworker.worker.job import Job
from queueworker.worker.producer import AsyncProducer
from queueworker.worker.runtime import Worker

from support.redis_sentinel import MASTER_NAME, SentinelSetup
from support.worker_inproc import fast_settings, table, wait_for

pytestmark = pytest.mark.slow

QUEUES = ("plain", "durable")


@pytest.fixture
def sentinel() -> Iterator[SentinelSetup]:
    setup = SentinelSetup(password="master-pw", sentinel_password="sentinel-pw").start()
    yield setup
    setup.cleanup()


@dataclass
class Tally:
    acked: dict[str, set[int]] = field(default_factory=lambda: {q: set() for q in QUEUES})
    unsure: dict[str, set[int]] = field(default_factory=lambda: {q: set() for q in QUEUES})
    ran: dict[str, collections.Counter[int]] = field(
        default_factory=lambda: {q: collections.Counter() for q in QUEUES})
    errors: collections.Counter[str] = field(default_factory=collections.Counter)

    def lost(self, q: str) -> set[int]:
        return self.acked[q] - set(self.ran[q])

    def duplicated(self, q: str) -> int:
        return sum(1 for n in self.ran[q].values() if n > 1)


async def produce(producer: AsyncProducer, queue: str, tally: Tally, stop: asyncio.Event) -> None:
    seq = 0
    while not stop.is_set():
        seq += 1
        try:
            await producer.enqueue(queue, {"seq": seq})
            tally.acked[queue].add(seq)
        except (RedisError, OSError, NotReplicatedError) as exc:
            # not acknowledged: it may or may not be in Redis (never counted as lost)
            tally.unsure[queue].add(seq)
            tally.errors[f"{queue}:{type(exc).__name__}"] += 1
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.01)


async def read_loop(conn: Connection, spec: api.QueueWorkerSpec, log: list[tuple[float, bool]],
                    stop: asyncio.Event) -> None:
    while not stop.is_set():
        got = await read_queues(conn, spec, time.time(), 2.0)
        log.append((time.monotonic(), got.reachable and got.queues is not None))
        await asyncio.sleep(0.2)


async def drained(client: aioredis.Redis) -> bool:
    try:
        async with client.pipeline(transaction=False) as pipe:
            for q in QUEUES:
                pipe.llen(keys.waiting(q))
                pipe.zcard(keys.inflight(q))
                pipe.zcard(keys.delayed(q))
            return sum(await pipe.execute()) == 0
    except (RedisError, OSError):
        return False


async def test_a_master_killed_under_load(sentinel: SentinelSetup) -> None:
    url = sentinel.url()
    tally = Tally()

    async def handler(payload: dict[str, Any], job: Job) -> None:
        tally.ran[job.queue][payload["seq"]] += 1

    worker = Worker(fast_settings(url, queues=list(QUEUES), lease=2.0, concurrency=8),
                    table(handler))
    producers = {"plain": AsyncProducer(connection.async_client(url)),
                 "durable": AsyncDurableProducer(connection.async_client(url),
                                                 min_replicas_ack=1, ack_timeout=1.0)}
    spec = api.QueueWorkerSpec.model_validate({
        "redis": {"sentinel": {"masterName": MASTER_NAME, "addresses": sentinel.addresses,
                               "passwordSecretRef": {"name": "s", "key": "sentinel"}},
                  "passwordSecretRef": {"name": "s", "key": "master"}},
        "queues": [{"name": q} for q in QUEUES],
        "template": {"spec": {"containers": [{"name": "w", "image": "i"}]}}})
    values = {"master": "master-pw", "sentinel": "sentinel-pw"}
    target = connections.target_from_spec(spec.redis, lambda _, key: values[key])
    reader = target.async_client(socket_timeout=1.0, socket_connect_timeout=1.0)
    readings: list[tuple[float, bool]] = []
    stop = asyncio.Event()
    tasks = [asyncio.create_task(worker.run()),
             asyncio.create_task(read_loop(Connection(reader, target.secrets), spec, readings,
                                           stop)),
             *(asyncio.create_task(produce(p, q, tally, stop)) for q, p in producers.items())]
    try:
        await wait_for(lambda: _ran_at_least(tally, 50), 20, "jobs running before the kill")
        old = await asyncio.to_thread(sentinel.kill_master)
        killed_at = time.monotonic()
        before = {q: len(tally.acked[q]) for q in QUEUES}
        new = await asyncio.to_thread(sentinel.wait_new_master, old, 30.0)
        promoted_at = time.monotonic()
        # both producers and the worker go on against the new master
        await wait_for(lambda: _acked_since(tally, before, 50), 30, "enqueues after failover")
        stop.set()
        await wait_for(lambda: _all_ran(tally, "durable"), 30, "every durable job to run")
        await wait_for(lambda: drained(reader), 30, "the queues to drain")
    finally:
        stop.set()
        worker.stop("test")
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        for client in (reader, *(p.redis for p in producers.values())):
            await client.aclose()
    failed_reads = [t for t, ok in readings if not ok and t >= killed_at]
    print(f"\nfailover {old} -> {new} in {promoted_at - killed_at:.1f}s; "
          f"unreachable readings {len(failed_reads)}; producer errors {dict(tally.errors)}")
    for q in QUEUES:
        print(f"{q}: acked {len(tally.acked[q])} unsure {len(tally.unsure[q])} "
              f"lost {len(tally.lost(q))} duplicated {tally.duplicated(q)}")
    assert failed_reads  # RedisReachable went False while there was no master...
    assert readings[-1][1]  # ... and the reader reads again through the Sentinels
    assert not tally.lost("durable")


async def _ran_at_least(tally: Tally, n: int) -> bool:
    return all(len(tally.ran[q]) >= n for q in QUEUES)


async def _acked_since(tally: Tally, before: dict[str, int], n: int) -> bool:
    return all(len(tally.acked[q]) >= before[q] + n for q in QUEUES)


async def _all_ran(tally: Tally, q: str) -> bool:
    return not tally.lost(q)
