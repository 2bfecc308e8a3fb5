"""Backlog drives replicas up; an empty queue brings them down, idle pods first."""

from __future__ import annotations

import asyncio

import pytest

from queueworker.operator import api, metrics

from support.operator_cluster import Cluster, wait_for
from support.operator_specs import clear_queue, fast_config, heartbeat, push_jobs, spec

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

POLL = 0.5


async def test_backlog_scales_up_then_idle_pods_go_first(redis_url: str) -> None:
    async with Cluster(config=fast_config()) as c:
        await c.start_operator()
        await c.create_qw("jobs", spec(
            redis_url, ["jobs"], poll=POLL, minReplicas=0, maxReplicas=10,
            targetBacklogPerReplica=50, idleSecondsBeforeZero=600,
            scaleDown={"stabilizationSeconds": 1}))
        await wait_for(lambda: c.replicas("jobs") == 0, 10, "an idle Deployment at 0")
        await asyncio.sleep(POLL)

        push_jobs(redis_url, "jobs", 500)
        # Within 2 poll intervals (plus slack for a shared 2-core machine).
        await wait_for(lambda: c.replicas("jobs") == 10, 2 * POLL + 2.0, "10 replicas")
        st = await wait_for(lambda: c.qw("jobs")["status"].get("backlog") == 500 and
                            c.qw("jobs")["status"], 5, "backlog in status")
        api.QueueWorkerStatus.model_validate(st)  # the CRD's status schema accepts it
        assert st["desiredReplicas"] == 10
        assert st["queues"][0]["waiting"] == 500
        assert st["oldestJobAgeSeconds"] is not None
        assert "Backlog" in st["lastScaleReason"]
        await wait_for(lambda: c.events("jobs", "ScaledUp"), 5, "a ScaledUp Event")
        labels = {"namespace": "default", "queueworker": "jobs"}
        sample = metrics.REGISTRY.get_sample_value
        assert sample("queueworker_desired_replicas", labels) == 10
        assert sample("queueworker_queue_jobs", {**labels, "queue": "jobs",
                                                 "state": "waiting"}) == 500
        assert sample("queueworker_queue_waiting_jobs_by_priority",
                      {**labels, "queue": "jobs", "priority": "5"}) == 500
        assert (sample("queueworker_scale_events_total",
                       {**labels, "direction": "up", "reason": "Backlog"}) or 0) >= 1
        assert sample("queueworker_redis_up", labels) == 1
        assert sample("queueworker_spec_valid", labels) == 1

        pods = await wait_for(lambda: len(c.pods("jobs")) == 10 and c.pods("jobs"), 10,
                              "10 pods")
        names = sorted(p["metadata"]["name"] for p in pods)
        busy = set(names[:3])
        for name in names:
            heartbeat(redis_url, name, "busy" if name in busy else "idle")

        clear_queue(redis_url, "jobs")
        # Empty queue: after the 1 s window, down to the 3 busy pods.
        await wait_for(lambda: c.replicas("jobs") == 3, 10, "3 replicas (the busy pods)")
        await wait_for(lambda: len(c.pods("jobs")) == 3, 10, "3 pods left")
        left = {p["metadata"]["name"] for p in c.pods("jobs")}
        assert left == busy
        removed = c.controller.deleted
        assert len(removed) == 7
        for pod in removed:
            assert pod["metadata"]["name"] not in busy
            cost = pod["metadata"]["annotations"].get("controller.kubernetes.io/pod-deletion-cost")
            assert cost == "-100", pod["metadata"]["name"]
        await wait_for(lambda: c.events("jobs", "ScaledDown"), 5, "a ScaledDown Event")
        st = c.qw("jobs")["status"]
        assert "Idle" in st["lastScaleReason"]
