"""Issue 14's restart-horizon rules (engine/forecast.py, engine/churn.py): what a
pod costs to start again decides when pods are added and removed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from queueworker.engine import Decision, GPUCapacity, PodState, decide
from queueworker.engine.forecast import DEFAULT_START_SECONDS, starts
from queueworker.operator.validation import parse_spec

from support.engine_specs import obs, spec


def _pods(ready: int, starting: int = 0, busy: int = 0, prefix: str = "p") -> tuple[PodState, ...]:
    return tuple(PodState(f"{prefix}{i}", busy=i < busy, in_flight=int(i < busy),
                          ready=i < ready) for i in range(ready + starting))


def test_pod_start_is_timed_from_the_poll_that_created_it() -> None:
    mem, h = starts(None, 0.0, _pods(1), poll=5)
    assert not h.measured
    assert h.start_seconds == DEFAULT_START_SECONDS
    mem, h = starts(mem, 5.0, _pods(1, starting=2), poll=5)  # scaled up at t=0
    for t in (10.0, 15.0):
        mem, h = starts(mem, t, _pods(1, starting=2), poll=5)
    mem, h = starts(mem, 20.0, _pods(3), poll=5)
    assert h.measured
    assert h.start_seconds == 20.0
    assert h.seconds == 25.0
    assert "new" not in mem


def test_pods_left_untimed_are_never_timed_late() -> None:
    # 40 pods start at once; 16 are timed. The rest must not be timed from a
    # later poll (they would read as fast starts).
    mem, _ = starts({"t": 0.0}, 5.0, _pods(0, starting=40), poll=5)
    assert len(mem["new"]) == 16
    assert mem["untimed"] == 24
    ready_16 = tuple(PodState(f"p{i}", busy=False, ready=i < 16) for i in range(40))
    mem, h = starts(mem, 20.0, ready_16, poll=5)
    assert h.start_seconds == 20.0
    mem, h = starts(mem, 25.0, ready_16, poll=5)
    assert "new" not in mem  # the 24 left were seen before: not timed from t=20
    mem, h = starts(mem, 30.0, _pods(40), poll=5)
    assert h.start_seconds == 20.0


def _steady(scaling: dict[str, Any], rate: float, svc: float, current: int,
            until: float = 300) -> tuple[dict[str, Any], float]:
    """Memory after `until` seconds of `rate` jobs/s of `svc` s on `current`
    ready pods, with one pod start of 20 s timed."""
    s = spec({"maxReplicas": 50, **scaling})
    busy = round(rate * svc)
    memory: dict[str, Any] | None = None
    t = 0.0
    while t < until:
        pods = _pods(current, busy=busy) if t >= 20 else _pods(current - 1, 1, busy=busy)
        d = decide(s, obs(t, in_flight=busy, current=current, pods=pods,
                          enqueued=round(rate * t), completed=round(rate * t)), memory)
        memory = d.memory
        t += 5
    assert memory is not None
    memory.pop("downAt", None)  # the count was held: no scale-down happened
    return memory, t


def test_no_scale_up_for_work_the_pods_clear_before_a_new_one_is_ready() -> None:
    # 1 job/s of 2 s on 4 pods: 2 busy. Three more waiting are 6 s of work; a
    # new pod would be ready in 20 s, long after they ran.
    memory, t = _steady({}, 1.0, 2.0, 4)
    s = spec({"maxReplicas": 50})
    d = decide(s, obs(t, waiting=3, in_flight=4, current=4, pods=_pods(4, busy=4),
                      enqueued=round(t) + 3, completed=round(t)), memory)
    assert d.desired == 4, d.reason
    assert "; start 0: of waiting 3 + 21.0 arriving in a pod start (20s), 4 replicas start" \
        in d.reason
    # A backlog the pods cannot clear within the start does start pods.
    d = decide(s, obs(t, waiting=60, in_flight=4, current=4, pods=_pods(4, busy=4),
                      enqueued=round(t) + 60, completed=round(t)), memory)
    assert d.desired > 4, d.reason


def test_scale_down_stops_at_the_forecast() -> None:
    # 2 jobs/s of 4 s: 8 busy on average. The queue is empty for a moment and
    # the window is 0: without the forecast the count would fall to the 2 busy.
    scaling = {"scaleDown": {"stabilizationSeconds": 0}}
    memory, t = _steady(scaling, 2.0, 4.0, 12)
    d = decide(spec({"maxReplicas": 50, **scaling}),
               obs(t, in_flight=2, current=12, pods=_pods(12, busy=2),
                   enqueued=round(2 * t), completed=round(2 * t)), memory)
    assert d.desired == 11, d.reason  # 8 + sqrt(8) = 10.8 slots
    assert "; kept: forecast over 25s (pod start 20s + poll): 7.8 busy" in d.reason


def test_scale_downs_are_a_restart_horizon_apart() -> None:
    scaling = {"scaleDown": {"stabilizationSeconds": 0}, "minReplicas": 1}
    s = spec({"maxReplicas": 50, **scaling})
    memory, t = _steady(scaling, 0.0, 4.0, 10)
    first = decide(s, obs(t, current=10, pods=_pods(10)), memory)
    assert first.desired == 1, first.reason
    # Another pod came up meanwhile (a manual scale, say): the next scale-down
    # waits until the horizon (25 s) since the last one has passed.
    d = decide(s, obs(t + 10, current=3, pods=_pods(3)), first.memory)
    assert d.desired == 3
    assert "last scale-down 10s ago < restart horizon 25s and 2 pods <= sqrt(3)" in d.reason
    d = decide(s, obs(t + 25, current=3, pods=_pods(3)), d.memory)
    assert d.desired == 1, d.reason
    # A large step (a burst is over) goes at once: 9 pods > sqrt(10).
    d = decide(s, obs(t + 30, current=10, pods=_pods(10)), d.memory)
    assert d.desired == 1, d.reason


def _aged(pods: tuple[PodState, ...], age: float) -> tuple[PodState, ...]:
    return tuple(replace(p, job_age_seconds=age) if p.busy else p for p in pods)


def _long_jobs(drain: dict[str, Any], last: tuple[PodState, ...] | None = None,
               gpu: GPUCapacity | None = None, oldest: float = 330.0) -> Decision:
    """Six-minute jobs, one every two minutes, then none waiting and 6 busy
    (`last`: the pods then; `gpu`: what free GPUs allow then; `oldest`: the
    longest a job was seen running)."""
    s = spec({"maxReplicas": 20, "scaleDown": {"stabilizationSeconds": 300}},
             gpu={"capToFreeCapacity": True})
    raw = s.model_dump(by_alias=True, exclude_none=True, mode="json")
    raw["drain"] = drain
    s = parse_spec(raw)
    memory: dict[str, Any] | None = None
    t = 0.0
    while t <= 1800:
        pods = _pods(6, busy=3) if t >= 120 else _pods(5, 1, busy=3)
        pods = _aged(pods, min(t, oldest) if t < 900 else 60.0)
        enq = round(t / 120)
        memory = decide(s, obs(t, in_flight=3, current=6, pods=pods, enqueued=enq,
                               completed=max(0, enq - 3)), memory).memory
        t += 5
    assert memory is not None
    memory.pop("downAt", None)  # the count was held: no scale-down happened
    return decide(s, obs(t, in_flight=6, current=6, pods=last or _aged(_pods(6, busy=6), 60.0),
                         gpu=gpu,
                         enqueued=round(t / 120), completed=max(0, round(t / 120) - 3)), memory)


LONG_DRAIN = {"graceSeconds": 900, "deadlineMarginSeconds": 30}


def test_busy_pods_beyond_the_forecast_drain_ahead_when_jobs_fit_the_deadline() -> None:
    d = _long_jobs(LONG_DRAIN)
    assert d.desired < 6, d.reason
    assert "drain ahead: nothing waits" in d.reason
    assert len(d.remove_first) == 6 - d.desired
    # The default drain deadline (110 s) would cut a six-minute job: no drain.
    d = _long_jobs({})
    assert d.desired == 6, d.reason
    assert "drain ahead" not in d.reason


def test_no_drain_ahead_once_a_job_ran_near_the_deadline() -> None:
    # A job seen running 800 s: the 870 s deadline does not hold it with a
    # quarter to spare, whatever the mean job.
    d = _long_jobs(LONG_DRAIN, oldest=800.0)
    assert "drain ahead" not in d.reason
    assert d.desired == 6, d.reason


def test_no_drain_ahead_with_a_free_slot_on_a_busy_pod() -> None:
    # Pods of two slots, one job each: a draining pod would lose its free slot.
    half = tuple(PodState(f"p{i}", busy=i < 6, in_flight=1, slots=2) for i in range(6))
    d = _long_jobs(LONG_DRAIN, last=half)
    assert "drain ahead" not in d.reason
    assert d.desired == 6, d.reason


def test_no_drain_ahead_when_no_gpu_is_left_for_a_replacement() -> None:
    full = GPUCapacity("nvidia.com/gpu", per_replica=1, max_replicas=6)
    d = _long_jobs(LONG_DRAIN, gpu=full)
    assert "drain ahead" not in d.reason
    assert d.desired == 6, d.reason
    room = GPUCapacity("nvidia.com/gpu", per_replica=1, max_replicas=8, free=2)
    assert "drain ahead" in _long_jobs(LONG_DRAIN, gpu=room).reason


def test_jobs_on_terminating_pods_are_not_demand() -> None:
    s = spec({"scaleDown": {"stabilizationSeconds": 0}, "maxReplicas": 10})
    pods = (PodState("a", busy=True, in_flight=1),
            PodState("t1", busy=True, in_flight=1, terminating=True),
            PodState("t2", busy=True, in_flight=1, terminating=True))
    d = decide(s, obs(0, in_flight=3, current=1, pods=pods), None)
    assert d.desired == 1, d.reason
    assert "(2 in flight on terminating pods not counted)" in d.reason


# ------------------------------------------------------------------------- prefetch


def test_a_pod_holding_prefetched_jobs_is_busy_and_no_one_elses_lag() -> None:
    # In flight 4 for the queue: pod a runs 1 and holds 2 prefetched, d runs 1,
    # b and c are idle. Without knowing the buffer, the 2 would read as jobs
    # that idle-looking pods took since their last beat, and hold b and c.
    s = spec({"targetBacklogPerReplica": 10, "scaleDown": {"stabilizationSeconds": 0}})
    pods = (PodState("a", busy=True, in_flight=1, buffered=2, slots=1),
            PodState("b", busy=False, slots=1), PodState("c", busy=False, slots=1),
            PodState("d", busy=True, in_flight=1, slots=1))
    d = decide(s, obs(0, in_flight=4, current=4, pods=pods), None)
    assert "idle-looking" not in d.reason
    assert d.desired == 2, d.reason  # the two busy pods
    assert set(d.remove_first) == {"b", "c"}


def test_prefetched_jobs_alone_make_a_pod_busy() -> None:
    s = spec({"targetBacklogPerReplica": 10, "scaleDown": {"stabilizationSeconds": 0}})
    pods = (PodState("a", busy=False, buffered=1, slots=1), PodState("b", busy=False))
    d = decide(s, obs(0, in_flight=1, current=2, pods=pods), None)
    assert d.desired == 1, d.reason
    assert d.remove_first == ("b",)


def test_service_time_is_measured_on_running_jobs() -> None:
    # 1 job/s of 2 s: 2 running, and every pod holds 2 more prefetched. Little's
    # law on the leased jobs would read 6 s jobs.
    s = spec({"policy": "waitTime", "maxReplicas": 50})
    memory: dict[str, Any] | None = None
    d = None
    for t in range(0, 600, 5):
        pods = tuple(PodState(f"p{i}", busy=True, in_flight=1, buffered=2, slots=1)
                     for i in range(2))
        d = decide(s, obs(t, in_flight=6, current=2, pods=pods, enqueued=t, completed=t),
                   memory)
        memory = d.memory
    assert d is not None
    assert "service 2.0s" in d.reason, d.reason
