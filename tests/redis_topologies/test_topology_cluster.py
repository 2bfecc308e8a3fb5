"""A real 6-node Redis Cluster (tests/support/redis_cluster.py) through the factory's
redis+cluster:// clients; where a queue's keys land."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from queueworker.worker import connection, keys
from queueworker.worker.failed import FailedStore
from queueworker.worker.flows import FlowError, Flows
from queueworker.worker.producer import Producer
from queueworker.worker.queues import depths
from queueworker.worker.runtime import Worker

from support.redis_cluster import ClusterSetup
from support.worker_inproc import fast_settings, run_until, table

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterSetup]:
    setup = ClusterSetup().start()
    yield setup
    setup.cleanup()


def test_cluster_clients_reach_every_master(cluster: ClusterSetup) -> None:
    client = connection.cluster_sync(cluster.url(), decode_responses=True)
    try:
        masters = {n.name for n in client.get_primaries()}
        assert len(masters) == 3
        names = [f"k{i}" for i in range(64)]
        with client.pipeline() as pipe:  # redis-py splits it: one pipeline per node
            for k in names:
                pipe.set(k, k)
            pipe.execute()
        assert {client.get_node_from_key(k).name for k in names} == masters
        assert [client.get(k) for k in names] == names
    finally:
        client.close()


async def test_a_queues_keys_share_one_slot_on_a_real_cluster(cluster: ClusterSetup) -> None:
    client = connection.cluster_async(cluster.url(), decode_responses=True)
    try:
        queue_keys = [keys.waiting("emails"), keys.delayed("emails"), keys.inflight("emails"),
                      keys.stats("emails"), keys.notify("emails"), keys.rate("emails", 7)]
        slots = {await client.cluster_keyslot(k) for k in queue_keys}
        assert len(slots) == 1
        # ... and so does a job hash: job ids name their queue (keys.job)
        assert await client.cluster_keyslot(keys.job("1732400000000-ab@emails")) in slots
    finally:
        await client.aclose()


QUEUES = ("emails", "reports", "audio")  # three hash slots (asserted below)


async def test_a_native_worker_serves_queues_of_several_slots(cluster: ClusterSetup) -> None:
    """Enqueue, run, settle, delay, unique, fail and retry across three slots: one script
    call per slot (keys.slot_groups), every job accounted for."""
    url = cluster.url()
    assert len({keys.slot(q) for q in QUEUES}) == 3
    r = connection.sync_client(url, decode_responses=True)
    producer = Producer(r, keyring=None)
    ids = producer.enqueue_many("emails", [{"n": i} for i in range(10)])
    ids += [producer.enqueue(QUEUES[i % 3], {"n": i}) for i in range(10, 40)]
    ids.append(producer.enqueue("reports", {"n": 100}, delay=0.3))
    first = producer.enqueue_result("audio", {"n": 101}, unique_key="u")
    assert not producer.enqueue_result("audio", {"n": 102}, unique_key="u").created
    bad = producer.enqueue("audio", {"fail": True}, max_tries=1)
    seen: list[int] = []

    async def handler(payload: dict[str, Any]) -> None:
        if payload.get("fail"):
            raise RuntimeError("planned")
        seen.append(payload["n"])
        await asyncio.sleep(0)

    async def settled() -> bool:
        return (all(producer.job(i)["state"] == "done" for i in [*ids, first.id])  # type: ignore[index]
                and FailedStore(r).ids() == [bad])

    worker = Worker(fast_settings(url, queues=list(QUEUES)), table(handler))
    assert await run_until(worker, settled, 30) == 0
    assert sorted(seen) == [*range(40), 100, 101]
    assert FailedStore(r).retry_ids([bad]) == [bad]
    assert r.lrange(keys.waiting("audio"), 0, -1) == [bad]
    assert {d.queue: d.failed for d in depths(r, "qw", list(QUEUES))} == dict.fromkeys(QUEUES, 0)
    with pytest.raises(FlowError, match="Redis Cluster"):
        Flows(r)
    r.close()
