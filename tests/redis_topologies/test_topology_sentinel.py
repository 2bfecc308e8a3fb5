"""A master behind real Sentinels killed under load (tests/support/redis_sentinel.py).

One worker serves two queues; two producers enqueue about 100 jobs/s each, one
plain and one durable (``WAIT 1``, worker/durable.py); the operator's reader
polls the depths through the Sentinels. Then the replicas are frozen for 0.5 s
(they fall behind) and the master gets SIGKILL. The
test counts, per queue, acknowledged jobs that never ran (lost) and jobs that
ran twice (duplicated), and prints them (RELIABILITY.md has the figures).
Held: the workers and producers reach the new master by themselves, the
reader reports Redis unreachable while there is no master and reads again
after, the plain producer got acknowledgements no replica backed, and no
acknowledged durable job is lost.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections.abc import Iterator

import pytest

from queueworker.observe import connections
from queueworker.operator import api
from queueworker.operator.controller.observe import Connection, read_queues
from queueworker.worker import connection
from queueworker.worker.durable import AsyncDurableProducer
from queueworker.worker.producer import AsyncProducer
from queueworker.worker.runtime import Worker

from support.redis_sentinel import MASTER_NAME, SentinelSetup
from support.sentinel_load import Tally, drained, produce
from support.worker_inproc import fast_settings, table, wait_for

pytestmark = pytest.mark.slow

QUEUES = ("plain", "durable")


@pytest.fixture
def sentinel() -> Iterator[SentinelSetup]:
    setup = SentinelSetup(password="master-pw", sentinel_password="sentinel-pw").start()
    yield setup
    setup.cleanup()


async def read_loop(conn: Connection, spec: api.QueueWorkerSpec, log: list[tuple[float, bool]],
                    stop: asyncio.Event) -> None:
    while not stop.is_set():
        got = await read_queues(conn, spec, time.time(), 2.0)
        log.append((time.monotonic(), got.reachable and got.queues is not None))
        await asyncio.sleep(0.2)


async def test_a_master_killed_under_load(sentinel: SentinelSetup) -> None:
    url = sentinel.url()
    tally = Tally(QUEUES)
    worker = Worker(fast_settings(url, queues=list(QUEUES), lease=2.0, concurrency=8),
                    table(tally.handler()))
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
             *(asyncio.create_task(produce(p, q, tally, stop, itertools.count(1), 0.01))
               for q, p in producers.items())]
    try:
        await wait_for(lambda: _ran_at_least(tally, 50), 20, "jobs running before the kill")
        # The replicas fall behind (frozen), then the master dies: what it acknowledged
        # meanwhile exists nowhere else (replication is asynchronous).
        await asyncio.to_thread(sentinel.signal_replicas, signal.SIGSTOP)
        frozen = {q: len(tally.acked[q]) for q in QUEUES}
        await asyncio.sleep(0.5)
        old = await asyncio.to_thread(sentinel.kill_master)
        killed_at = time.monotonic()
        before = {q: len(tally.acked[q]) for q in QUEUES}
        await asyncio.to_thread(sentinel.signal_replicas, signal.SIGCONT)
        new = await asyncio.to_thread(sentinel.wait_new_master, old, 30.0)
        promoted_at = time.monotonic()
        # both producers and the worker go on against the new master
        await wait_for(lambda: _acked_since(tally, before, 50), 30, "enqueues after failover")
        stop.set()
        await wait_for(lambda: _all_ran(tally, "durable"), 30, "every durable job to run")
        await wait_for(lambda: drained(reader, QUEUES), 30, "the queues to drain")
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
        print(q, tally.summary(q))
    print("acknowledged while the replicas were frozen:",
          {q: before[q] - frozen[q] for q in QUEUES})
    assert failed_reads  # RedisReachable went False while there was no master...
    assert readings[-1][1]  # ... and the reader reads again through the Sentinels
    assert before["plain"] > frozen["plain"]  # plain acks with no replica holding the job
    assert not tally.lost("durable")  # WAIT 1 acknowledged only what a replica had


async def _ran_at_least(tally: Tally, n: int) -> bool:
    return all(len(tally.ran[q]) >= n for q in QUEUES)


async def _acked_since(tally: Tally, before: dict[str, int], n: int) -> bool:
    return all(len(tally.acked[q]) >= before[q] + n for q in QUEUES)


async def _all_ran(tally: Tally, q: str) -> bool:
    return not tally.lost(q)
