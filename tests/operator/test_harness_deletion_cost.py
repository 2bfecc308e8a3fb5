"""The deletion-cost marks: idle pods are marked, and the marks are seen, before replicas drop.

The ReplicaSet controller picks scale-down victims from its informer cache of
pods. The operator marks the idle pods with a low pod-deletion-cost, waits until
its own pod index (fed by a watch like the controller's) shows the marks, plus
``deletion_cost_margin_seconds``, then lowers replicas. On a real cluster the
pods' watch and the Deployment's watch are separate streams, and the pod
annotations can reach the controller after the new replica count does; here the
pods' informer lags and the Deployments' not at all, the worst order. The busy
pods are the ones the ReplicaSet would pick without the marks (newest first,
then by name), so a replica count lowered before the marks are seen takes the
busy pods.

Both cases run with the operator's own defaults for the deletion-cost wait. The
second lags the pods by more than the fixed 1 s sleep the operator once had
after marking: that sleep let the busy pods go there.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from queueworker.operator.cluster import deployment as dep
from queueworker.operator.controller.context import OperatorConfig

from support.operator_cluster import PODS, Cluster, pod_ready, wait_for
from support.operator_specs import clear_queue, fast_config, heartbeat, push_jobs, spec

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

POLL = 0.5


def _config() -> OperatorConfig:
    defaults = OperatorConfig()
    return dataclasses.replace(
        fast_config(), deletion_cost_margin_seconds=defaults.deletion_cost_margin_seconds,
        deletion_cost_wait_seconds=defaults.deletion_cost_wait_seconds)


async def test_busy_pods_survive_a_scale_down_through_a_lagging_pod_informer(
        redis_url: str) -> None:
    await _busy_pods_survive(redis_url, lag=0.6)


async def test_busy_pods_survive_a_pod_informer_lagging_more_than_the_old_fixed_delay(
        redis_url: str) -> None:
    await _busy_pods_survive(redis_url, lag=1.5)


async def _busy_pods_survive(redis_url: str, *, lag: float) -> None:
    async with Cluster(config=_config(), lags={PODS: lag}) as c:
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
        # The operator's own pod watch lags too: let it see all four pods first, or it
        # knows of fewer busy pods and rightly scales further down.
        await asyncio.sleep(lag + POLL)

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
