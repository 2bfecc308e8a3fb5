"""Table-driven tests of `decide`, one policy or rule per table."""

from __future__ import annotations

import json
from typing import Any

import pytest

from queueworker.engine import Decision, GPUCapacity, PodState, decide

from support.engine_specs import feed, obs, spec


def run(scaling: dict[str, Any], steps: list[dict[str, Any]], **spec_kw: Any) -> list[Decision]:
    """Feed observations in order, carrying memory and the replica count like the operator."""
    return feed(spec(scaling, **spec_kw), steps)


@pytest.mark.parametrize(
    ("waiting", "in_flight", "target", "current", "expected"),
    [
        (30, 7, 5, 8, 8),  # the reason-line example
        (0, 4, 1, 4, 4),  # busy workers are demand
        (10, 0, 1, 3, 10),
        (10, 0, 3, 1, 4),
        (500, 0, 1, 3, 10),  # maxReplicas
        (1, 0, 1, 0, 1),  # first job scales from zero
    ],
)
def test_backlog_policy(
    waiting: int, in_flight: int, target: int, current: int, expected: int
) -> None:
    d = run({"targetBacklogPerReplica": target, "maxReplicas": 10},
            [{"now": 0, "waiting": waiting, "in_flight": in_flight, "current": current}])[0]
    assert d.desired == expected
    assert f"backlog {waiting + in_flight}" in d.reason
    assert d.direction == ("up" if expected > current else "down" if expected < current
                           else "none")


def test_reason_line_example() -> None:
    d = run({"targetBacklogPerReplica": 5, "maxReplicas": 20},
            [{"now": 0, "waiting": 30, "in_flight": 7, "current": 8}])[0]
    assert d.reason.startswith("backlog 37 (waiting 30, in flight 7) / target 5 per replica -> 8")


@pytest.mark.parametrize(
    ("activation", "waiting", "expected"),
    [(0, 0, 0), (0, 1, 1), (5, 5, 0), (5, 6, 6)],
)
def test_activation_from_zero(activation: int, waiting: int, expected: int) -> None:
    d = run({"activationBacklog": activation, "maxReplicas": 10},
            [{"now": 0, "waiting": waiting, "current": 0}])[0]
    assert d.desired == expected


def test_stranded_in_flight_jobs_activate_from_zero() -> None:
    # A worker died holding jobs and the pool is at zero: only a worker's reaper
    # hands them back, so they must bring a replica up (found by local mode).
    d = run({"maxReplicas": 10}, [{"now": 0, "waiting": 0, "in_flight": 2, "current": 0}])[0]
    assert d.desired >= 1
    assert d.direction == "up"


def test_scale_from_zero_ignores_up_window() -> None:
    d = run({"scaleUp": {"stabilizationSeconds": 120}},
            [{"now": 0, "waiting": 3, "current": 0}])[0]
    assert d.desired == 3


def test_idle_before_zero() -> None:
    ds = run(
        {"idleSecondsBeforeZero": 60, "scaleDown": {"stabilizationSeconds": 0}},
        [
            {"now": 0, "waiting": 2, "current": 2},
            {"now": 10, "waiting": 0},
            {"now": 40, "waiting": 0},
            {"now": 59, "waiting": 0},
            {"now": 60, "waiting": 0},  # the last job was seen at 0
        ],
    )
    assert [d.desired for d in ds] == [2, 1, 1, 1, 0]
    assert "before zero" in ds[1].reason
    assert "-> 0" in ds[-1].reason


def test_in_flight_job_keeps_idle_clock_at_zero() -> None:
    ds = run(
        {"idleSecondsBeforeZero": 30, "scaleDown": {"stabilizationSeconds": 0}},
        [{"now": t, "waiting": 0, "in_flight": 1, "current": 1} for t in range(0, 200, 10)],
    )
    assert all(d.desired == 1 for d in ds)


def test_min_replicas_never_goes_to_zero() -> None:
    ds = run({"minReplicas": 2, "idleSecondsBeforeZero": 0,
              "scaleDown": {"stabilizationSeconds": 0}},
             [{"now": t, "current": 5} for t in (0, 100, 200)])
    assert [d.desired for d in ds] == [2, 2, 2]


def test_scale_down_window_holds_highest() -> None:
    ds = run(
        {"scaleDown": {"stabilizationSeconds": 60}, "maxReplicas": 20},
        [
            {"now": 0, "waiting": 10, "current": 10},
            {"now": 30, "waiting": 4},
            {"now": 59, "waiting": 2},
            {"now": 61, "waiting": 2},  # the 10 fell out; 4 from t=30 is highest
            {"now": 91, "waiting": 2},
        ],
    )
    assert [d.desired for d in ds] == [10, 10, 10, 4, 2]
    assert "scale-down window 60s" in ds[1].reason


def test_scale_up_window_holds_lowest() -> None:
    ds = run(
        {"scaleUp": {"stabilizationSeconds": 30}, "maxReplicas": 20},
        [
            {"now": 0, "waiting": 2, "current": 2},
            {"now": 10, "waiting": 8},
            {"now": 20, "waiting": 9},
            {"now": 31, "waiting": 9},
        ],
    )
    assert [d.desired for d in ds] == [2, 2, 2, 8]


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        ({"pods": 2, "periodSeconds": 60}, [3, 3, 3, 5]),
        ({"percent": 100, "periodSeconds": 60}, [2, 2, 2, 4]),
        ({"pods": 1, "percent": 50, "periodSeconds": 60}, [2, 2, 2, 3]),
    ],
)
def test_scale_up_rate_limit(limit: dict[str, Any], expected: list[int]) -> None:
    ds = run(
        {"scaleUp": {"rateLimit": limit}, "maxReplicas": 50},
        [
            {"now": 0, "waiting": 40, "current": 1},
            {"now": 30, "waiting": 40},
            {"now": 59, "waiting": 40},
            {"now": 61, "waiting": 40},
        ],
    )
    assert [d.desired for d in ds] == expected
    assert "rate limit" in ds[0].reason


def test_scale_down_rate_limit() -> None:
    ds = run(
        {"scaleDown": {"stabilizationSeconds": 0,
                       "rateLimit": {"pods": 3, "periodSeconds": 60}}, "maxReplicas": 50},
        [{"now": t, "waiting": 1, "current": 10} if t == 0 else {"now": t, "waiting": 1}
         for t in (0, 30, 61, 122)],
    )
    assert [d.desired for d in ds] == [7, 7, 4, 1]


def test_fallback_when_queues_unreadable() -> None:
    d = run({"fallbackReplicas": 3}, [{"now": 0, "current": 7, "queues_ok": False}])[0]
    assert d.desired == 3
    assert "connection refused" in d.reason
    d = run({}, [{"now": 0, "current": 7, "queues_ok": False}])[0]
    assert d.desired == 7


def test_paused_uses_manual_replicas() -> None:
    d = run({"paused": True}, [{"now": 0, "waiting": 100, "current": 2, "manual": 5}])[0]
    assert (d.desired, d.direction) == (5, "up")
    d = run({"paused": True}, [{"now": 0, "waiting": 100, "current": 2}])[0]
    assert d.desired == 2


def test_gpu_cap_reports_shortfall() -> None:
    gpu = GPUCapacity(resource_name="nvidia.com/gpu", per_replica=1, max_replicas=4, free=2)
    d = run({"maxReplicas": 20}, [{"now": 0, "waiting": 10, "current": 2, "gpu": gpu}],
            gpu={"capToFreeCapacity": True})[0]
    assert (d.desired, d.gpu_limited, d.gpu_shortfall) == (4, True, 6)
    assert "free GPUs" in d.reason
    d = run({"maxReplicas": 20}, [{"now": 0, "waiting": 10, "current": 2, "gpu": gpu}],
            gpu={"capToFreeCapacity": False})[0]
    assert (d.desired, d.gpu_limited) == (10, False)


def test_remove_idle_pods_first() -> None:
    pods = (
        PodState("busy-a", busy=True, in_flight=1),
        PodState("idle-b", busy=False),
        PodState("busy-c", busy=True, in_flight=2),
        PodState("idle-d", busy=False, ready=False),
        PodState("gone-e", busy=False, terminating=True),
    )
    d = run({"scaleDown": {"stabilizationSeconds": 0}, "targetBacklogPerReplica": 10},
            [{"now": 0, "waiting": 0, "in_flight": 3, "current": 4, "pods": pods}])[0]
    # Demand says 1, but two pods are busy: not below 2; the idle ones go.
    assert d.desired == 2
    assert d.remove_first == ("idle-d", "idle-b")
    assert "busy" in d.reason


def test_memory_survives_json_round_trip() -> None:
    s = spec({"policy": "waitTime", "scaleDown": {"stabilizationSeconds": 300},
              "scaleUp": {"rateLimit": {"pods": 4}}})
    memory: dict[str, Any] | None = None
    current = 1
    for t in range(0, 600, 5):
        d = decide(s, obs(t, waiting=t % 17, in_flight=current, current=current,
                          enqueued=t * 2, completed=t * 2 - 3), memory)
        memory = json.loads(json.dumps(d.memory))
        current = d.desired
    assert len(json.dumps(memory)) < 3000


def test_garbage_memory_is_ignored() -> None:
    s = spec({})
    for bad in ({"v": 1, "up": "x", "down": [[1]], "ev": [["a", 1]], "rates": 3},
                {"v": 99}, {}):
        d = decide(s, obs(0, waiting=3, current=1), bad)
        assert d.desired == 3


@pytest.mark.parametrize(
    ("waiting", "expected"),
    [
        # 2 arrivals/s, 8 in flight, 2 done/s: service 8 / 2 = 4 s, load 8 slots,
        # + sqrt(8) = 10.8 -> 11; 30 waiting drain in 30 s: + 30 x 4 / 30 = 4 -> 15.
        (0, 11),
        (30, 15),
    ],
)
def test_wait_time_policy_from_counters(waiting: int, expected: int) -> None:
    s = spec({"policy": "waitTime", "targetWaitSeconds": 30, "maxReplicas": 50})
    memory: dict[str, Any] | None = None
    d = None
    for t in range(0, 300, 5):
        d = decide(s, obs(t, waiting=waiting, in_flight=8, current=20,
                          enqueued=2 * t, completed=2 * t), memory)
        memory = d.memory
    assert d is not None
    assert d.desired == expected, d.reason
    assert "arrivals 2.00/s x service 4.0s" in d.reason


def test_wait_time_without_counters_uses_backlog() -> None:
    d = run({"policy": "waitTime", "maxReplicas": 50},
            [{"now": 0, "waiting": 12, "in_flight": 3, "current": 1}])[0]
    assert d.desired == 15
    assert "no rates measured yet" in d.reason


def test_impossible_observation_is_named() -> None:
    with pytest.raises(ValueError, match=r"queues\['default'\].waiting=-3"):
        decide(spec({}), obs(0, waiting=-3, current=1), None)
    with pytest.raises(ValueError, match="current_replicas=-1"):
        decide(spec({}), obs(0, current=-1, pods=()), None)
