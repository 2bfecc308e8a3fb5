"""Other libraries' workers: the operator reads their registries (observe/busy/) in the
same poll and removes idle pods first, as for native workers.

RQ's registry is written here the way RQ 3 writes it (rq/worker_registration.py,
rq/executions.py); the adapter itself is tested against real RQ workers in
tests/observe/test_busy_rq.py. This checks the operator's wiring: without it every
RQ pod looks idle and the busy ones could be the ones removed.
"""

from __future__ import annotations

import asyncio

import pytest
import redis

from support.operator_cluster import Cluster, wait_for
from support.operator_specs import fast_config, spec

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

POLL = 0.5


def _rq_worker(r: redis.Redis, pod: str, busy: bool) -> None:
    key = f"rq:worker:{pod}.{len(pod)}"
    r.sadd("rq:workers", key)
    r.hset(key, mapping={"hostname": pod, "pid": 1, "state": "busy" if busy else "idle"})
    if busy:
        r.sadd(f"{key}:executions", "job-1:exec-1")


async def test_idle_rq_pods_go_first_busy_ones_stay(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    body = spec(redis_url, ["jobs"], poll=POLL, minReplicas=0, maxReplicas=6,
                targetBacklogPerReplica=10, idleSecondsBeforeZero=600,
                scaleDown={"stabilizationSeconds": 1})
    body["queues"] = [{"name": "jobs", "layout": "rq"}]
    async with Cluster(config=fast_config()) as c:
        await c.start_operator()
        await c.create_qw("rqw", body)
        await wait_for(lambda: c.replicas("rqw") == 0, 10, "an idle Deployment at 0")
        await asyncio.sleep(POLL)

        r.rpush("rq:queue:jobs", *[f"job-{i}" for i in range(60)])
        await wait_for(lambda: c.replicas("rqw") == 6, 2 * POLL + 3.0, "6 replicas")
        pods = await wait_for(lambda: len(c.pods("rqw")) == 6 and c.pods("rqw"), 10, "6 pods")
        names = sorted(p["metadata"]["name"] for p in pods)
        busy = set(names[:2])
        for name in names:
            _rq_worker(r, name, name in busy)

        r.delete("rq:queue:jobs")
        # The queue is empty, but two RQ workers say they are busy: down to those two.
        await wait_for(lambda: c.replicas("rqw") == 2, 10, "2 replicas (the busy pods)")
        await wait_for(lambda: len(c.pods("rqw")) == 2, 10, "2 pods left")
        assert {p["metadata"]["name"] for p in c.pods("rqw")} == busy
