"""Issue 16 through the real operator (kopf on the kmock emulator, a real redis-server):
a QueueWorker at zero wakes one pod start ahead of a schedule's tick, and a paused queue's
backlog scales nothing until the queue is resumed."""

from __future__ import annotations

import datetime
import time

import pytest
import redis

from queueworker.engine.forecast import DEFAULT_START_SECONDS
from queueworker.operator import api, metrics
from queueworker.operator.cluster import status as st
from queueworker.worker import admin
from queueworker.worker.schedule_store import ScheduleStore
from queueworker.worker.schedules import Schedule

from support.operator_cluster import Cluster, wait_for
from support.operator_specs import fast_config, push_jobs, spec

# Multi-process and tens of seconds: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

POLL = 0.5
LABELS = {"namespace": "default", "queueworker": "jobs"}


def _polls_after(t: float, n: int) -> bool:
    """The loop has polled n more times since ``t`` (its last-poll gauge moved on)."""
    last = metrics.REGISTRY.get_sample_value("queueworker_last_poll_timestamp_seconds", LABELS)
    return last is not None and last >= t + n * POLL


async def test_zero_wakes_a_pod_start_ahead_of_a_tick(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    async with Cluster(config=fast_config()) as c:
        await c.start_operator()
        await c.create_qw("jobs", spec(redis_url, ["jobs"], poll=POLL, minReplicas=0,
                                       maxReplicas=5, idleSecondsBeforeZero=600))
        await wait_for(lambda: c.replicas("jobs") == 0, 10, "an idle Deployment at 0")
        # A tick 36 s away: no pod start measured yet, so the lead is the engine's
        # default pod start (30 s): the QueueWorker wakes about 6 s from now.
        tick = float(int(time.time()) + 36)
        ScheduleStore(r).register([Schedule("nightly", queue="jobs", every=1)],
                                  now_ms=int(tick * 1000) - 1)
        await wait_for(lambda: c.replicas("jobs") == 1, 40, "1 replica for the tick")
        status = await wait_for(lambda: c.qw("jobs")["status"].get("lastScaleTime")
                                and c.qw("jobs")["status"], 10, "the scale in status")
        # Woken one pod start ahead of the tick (lastScaleTime is whole seconds), not sooner.
        woke = datetime.datetime.fromisoformat(status["lastScaleTime"]).timestamp()
        assert tick - DEFAULT_START_SECONDS - 1 <= woke <= tick
        status = await wait_for(
            lambda: c.qw("jobs")["status"]["queues"][0].get("nextScheduleTime")
            and c.qw("jobs")["status"], 10, "the next tick in status")
        assert status["queues"][0]["nextScheduleTime"] == st.now_iso(tick)
        reason = c.qw("jobs")["status"]["lastScaleReason"]
        assert "schedule of jobs due in" in reason
        assert f"(<= pod start {DEFAULT_START_SECONDS:.0f}s) -> 1" in reason
        assert reason.startswith("Schedule: ")
        assert metrics.REGISTRY.get_sample_value(
            "queueworker_scale_events_total", {**LABELS, "direction": "up", "reason": "Schedule"})


async def test_paused_backlog_scales_nothing_until_resumed(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    async with Cluster(config=fast_config()) as c:
        await c.start_operator()
        await c.create_qw("jobs", spec(redis_url, ["jobs"], poll=POLL, minReplicas=0,
                                       maxReplicas=4, targetBacklogPerReplica=10,
                                       idleSecondsBeforeZero=600))
        await wait_for(lambda: c.replicas("jobs") == 0, 10, "an idle Deployment at 0")
        admin.pause_queue(r, "jobs")
        push_jobs(redis_url, "jobs", 100)
        status = await wait_for(
            lambda: c.qw("jobs")["status"].get("backlog") == 100 and c.qw("jobs")["status"],
            10, "the paused backlog in status")
        api.QueueWorkerStatus.model_validate(status)  # the CRD's status schema accepts it
        assert status["queues"][0]["paused"] is True
        assert status["queues"][0]["waiting"] == 100
        sample = metrics.REGISTRY.get_sample_value
        assert sample("queueworker_queue_paused", {**LABELS, "queue": "jobs"}) == 1
        seen = time.time()
        await wait_for(lambda: _polls_after(seen, 4), 20, "4 more polls")
        assert c.replicas("jobs") == 0
        assert not c.events("jobs", "ScaledUp")

        admin.resume_queue(r, "jobs")
        await wait_for(lambda: c.replicas("jobs") == 4, 10, "4 replicas once resumed")
        await wait_for(lambda: sample("queueworker_queue_paused",
                                      {**LABELS, "queue": "jobs"}) == 0, 10, "paused gauge 0")
        status = await wait_for(
            lambda: c.qw("jobs")["status"]["queues"][0]["paused"] is False
            and c.qw("jobs")["status"], 10, "resumed in status")
        assert "paused" not in status["lastScaleReason"]
