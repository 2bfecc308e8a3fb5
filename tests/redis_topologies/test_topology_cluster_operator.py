"""The operator (real kopf, kmock API) scaling native queues in three hash slots of a real
Redis Cluster: one read pipeline per node per poll, replicas from the backlog of all three;
a QueueWorker naming a cluster with a foreign layout is SpecValid=False with the reason."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from queueworker.worker import connection, keys

from support.operator_cluster import Cluster, wait_for
from support.operator_specs import fast_config, spec
from support.redis_cluster import ClusterSetup

pytestmark = pytest.mark.slow

QUEUES = ["emails", "reports", "audio"]


@pytest.fixture
def cluster() -> Iterator[ClusterSetup]:
    setup = ClusterSetup().start()
    yield setup
    setup.cleanup()


def _push(url: str, counts: dict[str, int]) -> None:
    r = connection.sync_client(url)
    try:
        for q, n in counts.items():
            r.lpush(keys.waiting(q), *(f"1700000000000-{q}-{i}" for i in range(n)))
    finally:
        r.close()


async def test_the_operator_scales_native_queues_of_a_cluster(cluster: ClusterSetup) -> None:
    url = cluster.url()
    assert len({keys.slot(q) for q in QUEUES}) == 3
    _push(url, {"emails": 10, "reports": 10, "audio": 20})
    qw = spec(url, QUEUES, poll=0.5, maxReplicas=8, targetBacklogPerReplica=10)
    bad = spec(url, ["q"], poll=0.5)
    bad["queues"][0]["layout"] = "rq"
    async with Cluster(config=fast_config()) as c:
        await c.start_operator()
        await c.create_qw("q", qw)
        await wait_for(lambda: c.replicas("q") == 4, 20, "4 replicas from 40 jobs in 3 slots")
        _push(url, {"reports": 20})
        await wait_for(lambda: c.replicas("q") == 6, 20, "6 replicas from 60 jobs")
        await c.create_qw("bad", bad)
        cond = await wait_for(
            lambda: (c.condition("bad", "SpecValid") or {}).get("status") == "False"
            and c.condition("bad", "SpecValid"), 15, "SpecValid=False")
        assert "RQ, Celery (kombu), Sidekiq, Dramatiq and arq do not support" in cond["message"]
