"""The deletion-cost delay: idle pods are marked, and the mark is seen, before replicas drop.

The ReplicaSet controller picks scale-down victims from its informer cache of
pods. The operator marks the idle pods with a low pod-deletion-cost, waits
``deletion_cost_delay_seconds``, then lowers replicas. On a real cluster the
pods' watch and the Deployment's watch are separate streams, and the pod
annotations can reach the controller after the new replica count does; here the
pods' informer lags by ``POD_LAG`` and the Deployments' not at all, the worst
order. The busy pods are the ones the ReplicaSet would pick without the marks
(newest first, then by name), so without the delay the busy pods go.
"""

from __future__ import annotations

import dataclasses

from queueworker.operator.cluster import deployment as dep

from support.operator_cluster import PODS, Cluster, pod_ready, wait_for
from support.operator_specs import clear_queue, fast_config, heartbeat, push_jobs, spec

POLL = 0.5
POD_LAG = 0.6
DELAY = 1.2  # the operator's wait after marking: more than the informer lag


async def test_busy_pods_survive_a_scale_down_through_a_lagging_pod_informer(
        redis_url: str) -> None:
    config = dataclasses.replace(fast_config(), deletion_cost_delay_seconds=DELAY)
    async with Cluster(config=config, lags={PODS: POD_LAG}) as c:
        await c.start_operator()
        await c.create_qw("jobs", spec(
            redis_url, ["jobs"], poll=POLL, minReplicas=0, maxReplicas=4,
            targetBacklogPerReplica=100, idleSecondsBeforeZero=600,
            scaleDown={"stabilizationSeconds": 1}))
        await wait_for(lambda: c.replicas("jobs") == 0, 10, "an idle Deployment at 0")
        push_jobs(redis_url, "jobs", 400)
        pods = await wait_for(lambda: len(c.pods("jobs")) == 4 and all(
            pod_ready(p) for p in c.pods("jobs")) and c.pods("jobs"), 15, "4 ready pods")
        # Busy: the two the ReplicaSet would remove first if it saw no deletion cost.
        order = [p["metadata"]["name"] for p in c.controller.rank(pods)]
        busy = set(order[:2])
        for name in order:
            heartbeat(redis_url, name, "busy" if name in busy else "idle")

        clear_queue(redis_url, "jobs")
        await wait_for(lambda: c.replicas("jobs") == 2, 15, "2 replicas (the busy pods)")
        await wait_for(lambda: len([p for p in c.pods("jobs") if not p["metadata"].get(
            "deletionTimestamp")]) == 2, 10, "2 pods left")
        left = {p["metadata"]["name"] for p in c.pods("jobs")
                if not p["metadata"].get("deletionTimestamp")}
        assert left == busy, f"the ReplicaSet removed busy pods: kept {left}, busy {busy}"
        removed = c.controller.deleted
        assert {p["metadata"]["name"] for p in removed} == set(order[2:])
        for pod in removed:  # the controller saw the mark in its (lagging) cache
            cost = pod["metadata"]["annotations"].get(dep.DELETION_COST_ANNOTATION)
            assert cost == "-100", pod["metadata"]["name"]
