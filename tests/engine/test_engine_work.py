"""Issue 14's engine rules: activity between polls, demand in seconds of work,
waitTime sized by the workers' own job slots, and heartbeat lag."""

from __future__ import annotations

from typing import Any

import pytest

from queueworker.engine import Decision, PodState, decide

from support.engine_specs import feed, obs, spec

# ------------------------------------------------------------ activity between polls


def test_trickle_between_polls_keeps_a_replica() -> None:
    # 0.5 jobs/s of short jobs: every poll finds the queue empty and no job in
    # flight, but the counters moved. That is activity: no scale to zero.
    s = spec({"idleSecondsBeforeZero": 60, "scaleDown": {"stabilizationSeconds": 0}})
    steps = [{"now": t, "current": 1, "enqueued": t // 2, "completed": t // 2}
             for t in range(0, 600, 5)]
    ds = feed(s, steps)
    assert all(d.desired == 1 for d in ds)
    assert "came and went since the last poll" in ds[-1].reason


def test_quiet_counters_let_it_go_to_zero() -> None:
    s = spec({"idleSecondsBeforeZero": 60, "scaleDown": {"stabilizationSeconds": 0}})
    steps = [{"now": t, "current": 1, "enqueued": min(t, 100) // 2,
              "completed": min(t, 100) // 2} for t in range(0, 300, 5)]
    ds = feed(s, steps)
    zero_at = next(steps[i]["now"] for i, d in enumerate(ds) if d.desired == 0)
    # The last job was counted at t=100: zero 60 s later, not before.
    assert zero_at == 160
    assert "no jobs for 60s >= 60s -> 0" in ds[steps.index(
        next(st for st in steps if st["now"] == 160))].reason


def test_counters_without_a_baseline_are_not_activity() -> None:
    s = spec({"idleSecondsBeforeZero": 0, "scaleDown": {"stabilizationSeconds": 0}})
    d = decide(s, obs(0, current=1, enqueued=50, completed=50), {"v": 1, "active": -100.0})
    assert d.desired == 0


@pytest.mark.parametrize("idle_before_zero", [0, 30])
def test_a_busy_pod_whose_job_is_in_no_count_keeps_it_from_zero(idle_before_zero: int) -> None:
    # Celery's early ack: the task left the queue and is in no count, but the
    # worker's beat says busy. Going to zero would cut it, whatever the idle setting.
    s = spec({"idleSecondsBeforeZero": idle_before_zero,
              "scaleDown": {"stabilizationSeconds": 0}})
    pods = (PodState("a", busy=True), PodState("b", busy=False))
    d = decide(s, obs(100, current=2, pods=pods), {"v": 1, "active": 0.0})
    assert d.desired == 1, d.reason
    assert d.remove_first == ("b",)
    idle = decide(s, obs(100, current=2, pods=(PodState("a", busy=False),
                                               PodState("b", busy=False))),
                  {"v": 1, "active": 0.0})
    assert idle.desired == 0, idle.reason  # the same poll without the busy pod does go


# ------------------------------------------------------------- demand in seconds of work


def _measured(svc: float, rate: float, waiting: int, in_flight: int,
              scaling: dict[str, Any]) -> Decision:
    """Decide after five minutes of `rate` jobs/s taking `svc` s each."""
    s = spec({"maxReplicas": 100, **scaling})
    busy = round(rate * svc)
    memory: dict[str, Any] | None = None
    d = None
    for t in range(0, 300, 5):
        d = decide(s, obs(t, waiting=0, in_flight=busy, current=max(busy, 1),
                          enqueued=round(rate * t), completed=round(rate * t)), memory)
        memory = d.memory
    d = decide(s, obs(300, waiting=waiting, in_flight=in_flight, current=max(busy, 1),
                      enqueued=round(rate * 300) + waiting, completed=round(rate * 300)),
               memory)
    return d


def test_short_jobs_do_not_start_a_pod_each() -> None:
    # 0.2 s e-mails at 5/s (one in flight on average): 4 more waiting are 0.8 s
    # of work, not four more pods' worth.
    d = _measured(0.2, 5.0, waiting=4, in_flight=1, scaling={})
    assert d.desired == 3, d.reason  # load 1 + margin 1 + 4 x 0.2 / 30 = 2.03 slots
    assert "as work:" in d.reason
    assert d.reason.startswith("backlog 5 (waiting 4, in flight 1) / target 1 per replica -> 5")


def test_long_jobs_keep_a_pod_per_job() -> None:
    # 4-minute GPU jobs: 4 waiting are 16 minutes of work; one pod each.
    d = _measured(240.0, 1 / 60, waiting=4, in_flight=4, scaling={})
    assert d.desired == 8, d.reason
    assert "as work" not in d.reason


def test_e_mail_spike_is_sized_by_work() -> None:
    # 5,000 e-mails of 0.2 s: 1,000 s of work, cleared within targetWaitSeconds 30
    # (33.3 slots), on top of the arrival rate the spike itself raised (17 busy +
    # margin 4.1): 55 replicas, not 100 (maxReplicas) as the job count asks.
    d = _measured(0.2, 5.0, waiting=5000, in_flight=1, scaling={})
    assert d.desired == 55, d.reason


# ------------------------------------------------------------------- waitTime's slots


def test_wait_time_does_not_read_target_backlog_as_pod_capacity() -> None:
    # With targetBacklogPerReplica 200 the old waitTime packed 200 jobs into a
    # pod that runs one: 1 replica for 11 slots of work.
    one = _measured(4.0, 2.0, waiting=0, in_flight=8,
                    scaling={"policy": "waitTime", "targetBacklogPerReplica": 1})
    many = _measured(4.0, 2.0, waiting=0, in_flight=8,
                     scaling={"policy": "waitTime", "targetBacklogPerReplica": 200})
    assert one.desired == many.desired == 11, many.reason
    assert "/ 1 per replica" in many.reason


def test_wait_time_uses_the_slots_workers_report() -> None:
    s = spec({"policy": "waitTime", "maxReplicas": 100})
    memory: dict[str, Any] | None = None
    d = None
    for t in range(0, 300, 5):
        pods = tuple(PodState(f"p{i}", busy=True, in_flight=4, slots=4) for i in range(2))
        d = decide(s, obs(t, in_flight=8, current=2, pods=pods, enqueued=2 * t,
                          completed=2 * t), memory)
        memory = d.memory
    assert d is not None
    # 8 busy + sqrt(8) = 10.8 slots / 4 per replica -> 3
    assert d.desired == 3, d.reason
    assert "/ 4 per replica" in d.reason


def test_slots_seen_are_remembered() -> None:
    s = spec({"policy": "waitTime", "maxReplicas": 100})
    pods = tuple(PodState(f"p{i}", busy=True, in_flight=3) for i in range(2))
    d = decide(s, obs(0, in_flight=6, current=2, pods=pods, enqueued=0, completed=0), None)
    assert d.memory["slots"] == 3
    idle = tuple(PodState(f"p{i}", busy=False) for i in range(2))
    d2 = decide(s, obs(5, current=2, pods=idle, enqueued=0, completed=0), d.memory)
    assert d2.memory["slots"] == 3


# --------------------------------------------------------------------- heartbeat lag


def test_pod_that_took_a_job_since_its_last_beat_is_not_idle() -> None:
    # Three jobs in flight (the queue knows), one pod's beat shows it; the other
    # two pods took theirs since their last beat. Target 5 asks for 1 replica.
    s = spec({"targetBacklogPerReplica": 5, "scaleDown": {"stabilizationSeconds": 0}})
    pods = (PodState("a", busy=True, in_flight=1), PodState("b", busy=False),
            PodState("c", busy=False), PodState("d", busy=False))
    d = decide(s, obs(0, in_flight=3, current=4, pods=pods), None)
    assert d.desired == 3, d.reason
    assert "+2 idle-looking" in d.reason
    assert len(d.remove_first) == 1


def test_terminating_pods_jobs_are_not_lag() -> None:
    s = spec({"targetBacklogPerReplica": 5, "scaleDown": {"stabilizationSeconds": 0}})
    pods = (PodState("a", busy=True, in_flight=1), PodState("t", busy=True, in_flight=2,
                                                            terminating=True),
            PodState("b", busy=False), PodState("c", busy=False))
    d = decide(s, obs(0, in_flight=3, current=3, pods=pods), None)
    assert d.desired == 1, d.reason
    assert "idle-looking" not in d.reason


def test_freshest_beat_goes_first_among_idle_pods() -> None:
    # Either idle pod may have taken a job since its beat; the older beat is likelier to hide one.
    s = spec({"scaleDown": {"stabilizationSeconds": 0}})
    pods = (PodState("old", busy=False, beat_age_seconds=4.5),
            PodState("fresh", busy=False, beat_age_seconds=0.5),
            PodState("busy", busy=True, in_flight=1, beat_age_seconds=0.1))
    d = decide(s, obs(0, in_flight=1, current=3, pods=pods), None)
    assert d.desired == 1, d.reason
    assert d.remove_first == ("fresh", "old")
