"""The operator (real kopf, kmock API) scaling from a master behind real Sentinels while
the master is killed: fallback replicas and RedisReachable=False without a master,
scaling from the backlog again once a replica is promoted."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis

from support.operator_cluster import Cluster, wait_for
from support.operator_specs import fast_config, push_jobs, spec
from support.redis_sentinel import MASTER_NAME, SentinelSetup

pytestmark = pytest.mark.slow


@pytest.fixture
def sentinel() -> Iterator[SentinelSetup]:
    setup = SentinelSetup().start()
    yield setup
    setup.cleanup()


async def test_the_operator_follows_a_failover(sentinel: SentinelSetup) -> None:
    master_url = f"redis://127.0.0.1:{sentinel.master_port()}/0"
    push_jobs(master_url, "jobs", 40)
    assert redis.Redis.from_url(master_url).wait(2, 5000) == 2  # both replicas have them
    qw = spec("redis://unused", poll=0.5, maxReplicas=8, fallbackReplicas=2,
              targetBacklogPerReplica=10)
    qw["redis"] = {"sentinel": {"masterName": MASTER_NAME, "addresses": sentinel.addresses}}
    async with Cluster(config=fast_config()) as c:
        await c.start_operator()
        await c.create_qw("q", qw)
        await wait_for(lambda: c.replicas("q") == 4, 15, "4 replicas from the backlog")

        old = await asyncio.to_thread(sentinel.kill_master)
        await wait_for(lambda: c.replicas("q") == 2, 15, "fallback replicas without a master")
        cond = await wait_for(
            lambda: (c.condition("q", "RedisReachable") or {}).get("status") == "False"
            and c.condition("q", "RedisReachable"), 10, "RedisReachable=False")
        assert "master" in cond["message"].lower() or "connect" in cond["message"].lower()

        new = await asyncio.to_thread(sentinel.wait_new_master, old)
        push_jobs(f"redis://127.0.0.1:{new}/0", "jobs", 20)
        await wait_for(lambda: c.replicas("q") == 6, 20, "the new master's backlog of 60")
        await wait_for(
            lambda: (c.condition("q", "RedisReachable") or {}).get("status") == "True",
            10, "RedisReachable=True")
