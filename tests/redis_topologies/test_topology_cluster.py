"""A real 6-node Redis Cluster (tests/support/redis_cluster.py) through the factory's
redis+cluster:// clients; where a queue's keys land."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from queueworker.worker import connection, keys

from support.redis_cluster import ClusterSetup

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
        # ... and a job hash does not (see test_topology_cluster_slots.py)
        assert await client.cluster_keyslot(keys.job("1732400000000-ab")) not in slots
    finally:
        await client.aclose()
