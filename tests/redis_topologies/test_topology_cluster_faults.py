"""Faults under load on a real 6-node Redis Cluster (tests/support/redis_cluster.py): a slot
migrated and a master killed while a worker runs jobs of three slots and a producer enqueues;
lost and duplicated jobs counted (benchmarks/RELIABILITY.md). Its own cluster: the last test
leaves it with a master fewer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from queueworker.worker import connection, keys
from queueworker.worker.broker import REDIS_ERRORS
from queueworker.worker.producer import AsyncProducer, Producer
from queueworker.worker.runtime import Worker

from support.redis_cluster import ClusterSetup
from support.worker_inproc import fast_settings, run_until, table

pytestmark = pytest.mark.slow

QUEUES = ("emails", "reports", "audio")  # three hash slots


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterSetup]:
    setup = ClusterSetup().start()
    yield setup
    setup.cleanup()


async def test_a_slot_migrated_under_load_loses_no_job(cluster: ClusterSetup) -> None:
    """Move the hash slot of one queue to another master (MIGRATE, a key a call and 10 ms
    between calls: a slow ``redis-cli --cluster reshard``) while a worker runs jobs of three
    slots and a producer enqueues to all three: every acknowledged job runs. While the slot
    is split over two nodes the scripts of its queue are refused (keys.fence), none runs
    half there (without the fence: BUSYKEY, and scripts stopped half way)."""
    url = cluster.url()
    r = connection.sync_client(url, decode_responses=True)
    producer = Producer(r, keyring=None)
    for i in range(300):
        producer.enqueue(QUEUES[i % 3], {"n": i})
    runs: dict[int, int] = {}
    acked: list[int] = []
    unacked = 0
    moved: list[int] = []

    async def handler(payload: dict[str, Any]) -> None:
        runs[payload["n"]] = runs.get(payload["n"], 0) + 1
        await asyncio.sleep(0.01)

    slot = keys.slot("reports")
    source_port = r.get_node_from_key(keys.waiting("reports")).port  # type: ignore[attr-defined]
    source = next(s for s in cluster.servers if s.port == source_port)
    target = next(s for s in cluster.servers if s is not source and redis.Redis(
        port=s.port).info("replication")["role"] == "master")
    client = connection.async_client(url, decode_responses=True)
    load = AsyncProducer(client, keyring=None)

    async def enqueue_through_the_move() -> None:
        nonlocal unacked
        n = 2000
        while mover is None or not mover.done():
            n += 1
            try:
                await load.enqueue(QUEUES[n % 3], {"n": n})
                acked.append(n)
            except REDIS_ERRORS:
                unacked += 1
            await asyncio.sleep(0.002)

    mover: asyncio.Task[int] | None = None

    async def move_then_all_ran() -> bool:
        nonlocal mover
        if len(runs) >= 60 and mover is None:
            mover = asyncio.create_task(asyncio.to_thread(
                cluster.migrate_slot, slot, source, target, 1, 0.01))
        if mover is not None and mover.done() and not moved:
            moved.append(mover.result())
        return bool(moved) and feeder.done() and set(runs) >= {*range(300), *acked}

    feeder = asyncio.create_task(enqueue_through_the_move())
    worker = Worker(fast_settings(url, queues=list(QUEUES), lease=5.0), table(handler))
    await run_until(worker, move_then_all_ran, 90)
    await client.aclose()
    lost = sorted({*range(300), *acked} - set(runs))
    twice = sorted(n for n, k in runs.items() if k > 1)
    print(f"\nslot migration under load: {moved} keys moved; {300 + len(acked)} acknowledged, "
          f"{unacked} not acknowledged, lost {len(lost)}, ran twice {len(twice)}")
    with redis.Redis(port=target.port) as owner:  # every key of the slot moved
        assert owner.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) > 0
    with redis.Redis(port=source.port) as old:
        assert old.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
    assert lost == []
    r.close()


async def test_a_master_killed_under_load_loses_no_job(cluster: ClusterSetup) -> None:
    """Kill the master of one queue's slot while a worker runs jobs of three slots and a
    producer enqueues to all three: its replica takes over (the clients reload the slot
    map by themselves); every job queued before runs, none twice; the counts of the ones
    enqueued through the failover are printed (benchmarks/RELIABILITY.md). Runs last: the
    cluster keeps one master fewer."""
    url = cluster.url()
    r = connection.sync_client(url, decode_responses=True)
    producer = Producer(r, keyring=None)
    before = [producer.enqueue(QUEUES[i % 3], {"n": i}) for i in range(300)]
    runs: dict[int, int] = {}
    acked: list[int] = []
    unacked = 0
    killed_at: float | None = None

    async def handler(payload: dict[str, Any]) -> None:
        runs[payload["n"]] = runs.get(payload["n"], 0) + 1
        await asyncio.sleep(0.01)

    victim_port = r.get_node_from_key(keys.waiting("reports")).port  # type: ignore[attr-defined]
    victim = next(s for s in cluster.servers if s.port == victim_port)
    client = connection.async_client(url, decode_responses=True)
    load = AsyncProducer(client, keyring=None)

    async def enqueue_through_the_failover() -> None:
        nonlocal unacked
        n = 1000
        while killed_at is None or time.monotonic() < killed_at + 8:  # the failover, and after
            n += 1
            try:
                await load.enqueue(QUEUES[n % 3], {"n": n})
                acked.append(n)
            except REDIS_ERRORS:
                unacked += 1  # not acknowledged: may or may not be in Redis
            await asyncio.sleep(0.005)

    async def kill_then_all_ran() -> bool:
        nonlocal killed_at
        if len(runs) >= 60 and victim.proc is not None:
            victim.proc.kill()
            victim.proc.wait()
            victim.proc = None
            killed_at = time.monotonic()
        return feeder.done() and set(runs) >= {*range(300), *acked}

    feeder = asyncio.create_task(enqueue_through_the_failover())
    worker = Worker(fast_settings(url, queues=list(QUEUES), lease=5.0), table(handler))
    await run_until(worker, kill_then_all_ran, 90)
    await client.aclose()
    lost = sorted({*range(300), *acked} - set(runs))
    twice = sorted(n for n, k in runs.items() if k > 1)
    print(f"\nfailover under load: {300 + len(acked)} acknowledged ({len(acked)} through the "
          f"failover, {unacked} not acknowledged), lost {len(lost)}, ran twice {len(twice)}")
    assert victim.proc is None  # the master was killed mid-run
    assert lost == []
    assert all(producer.job(i)["state"] == "done" for i in before)  # type: ignore[index]
    r.close()
