"""`--namespace`: the operator acts only on QueueWorkers in the namespaces it watches."""

from __future__ import annotations

import asyncio

from support.operator_cluster import Cluster, wait_for
from support.operator_specs import fast_config, spec


async def test_only_watched_namespaces(redis_url: str) -> None:
    async with Cluster(config=fast_config()) as c:
        for ns in ("team-a", "team-b"):
            await c.add_namespace(ns)
        await c.start_operator(namespaces=["team-a"])
        await c.create_qw("in", spec(redis_url, poll=0.5, minReplicas=1), namespace="team-a")
        await c.create_qw("out", spec(redis_url, poll=0.5, minReplicas=1), namespace="team-b")
        await wait_for(lambda: c.replicas("in", "team-a") == 1, 10, "the watched one")
        await asyncio.sleep(2)
        assert c.deployment("out", "team-b") is None
        assert "status" not in c.qw("out", "team-b")
