"""Properties of `decide` that must hold for every spec and observation."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from queueworker.engine import GPUCapacity, Observation, PodState, QueueDepth, decide
from queueworker.operator.api import QueueWorkerSpec

from support.engine_specs import spec

SETTINGS = settings(max_examples=150, deadline=None)


@st.composite
def specs(draw: st.DrawFn) -> QueueWorkerSpec:
    lo = draw(st.integers(0, 5))
    hi = draw(st.integers(max(lo, 1), 30))
    limit = st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {"pods": st.integers(1, 5), "periodSeconds": st.integers(1, 120)}
        ),
        st.fixed_dictionaries(
            {"percent": st.integers(1, 200), "periodSeconds": st.integers(1, 120)}
        ),
    )
    up: dict[str, Any] = {"stabilizationSeconds": draw(st.integers(0, 120))}
    down: dict[str, Any] = {"stabilizationSeconds": draw(st.integers(0, 300))}
    if (ul := draw(limit)) is not None:
        up["rateLimit"] = ul
    if (dl := draw(limit)) is not None:
        down["rateLimit"] = dl
    scaling = {
        "minReplicas": lo,
        "maxReplicas": hi,
        "policy": draw(st.sampled_from(["backlog", "waitTime"])),
        "targetBacklogPerReplica": draw(st.integers(1, 10)),
        "targetWaitSeconds": draw(st.floats(1, 120)),
        "activationBacklog": draw(st.integers(0, 5)),
        "idleSecondsBeforeZero": draw(st.integers(0, 120)),
        "scaleUp": up,
        "scaleDown": down,
        # Windows open on even minutes, closed on odd ones.
        "minReplicasSchedules": draw(st.sampled_from([[], [
            {"start": "*/2 * * * *", "end": "1-59/2 * * * *", "minReplicas": min(hi, 3)}]])),
    }
    return spec(scaling, gpu={"capToFreeCapacity": draw(st.booleans())})


@st.composite
def observations(draw: st.DrawFn, now: float = 1000.0) -> Observation:
    current = draw(st.integers(0, 30))
    busy = draw(st.lists(st.booleans(), min_size=current, max_size=current))
    ready = draw(st.lists(st.booleans(), min_size=current, max_size=current))
    buffered = draw(st.lists(st.integers(0, 2), min_size=current, max_size=current))
    pods = tuple(
        PodState(f"p{i}", busy=b, in_flight=int(b), ready=r or b, buffered=f if b else 0)
        for i, (b, r, f) in enumerate(zip(busy, ready, buffered, strict=True))
    )
    gpu = draw(
        st.one_of(
            st.none(),
            st.builds(
                GPUCapacity,
                resource_name=st.just("nvidia.com/gpu"),
                per_replica=st.integers(1, 4),
                max_replicas=st.integers(0, 30),
                free=st.integers(0, 16),
            ),
        )
    )
    waiting = draw(st.integers(0, 400))
    depth = QueueDepth("q", "native", waiting=waiting, in_flight=sum(busy) + sum(
                           p.buffered for p in pods),
                       enqueued_total=draw(st.none() | st.integers(0, 10**6)),
                       completed_total=draw(st.integers(0, 10**6)))
    return Observation(now=now, queues=(depth,), current_replicas=current,
                       ready_replicas=current, pods=pods, gpu=gpu)


memories = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "v": st.just(1),
            "active": st.floats(0, 1000),
            "up": st.lists(st.tuples(st.floats(0, 1000), st.integers(0, 30)).map(list),
                           max_size=5).map(sorted),
            "down": st.lists(st.tuples(st.floats(0, 1000), st.integers(0, 30)).map(list),
                             max_size=5).map(sorted),
            "ev": st.lists(st.tuples(st.floats(900, 1000), st.integers(-5, 5)).map(list),
                           max_size=4),
            "rates": st.fixed_dictionaries({"t": st.floats(900, 999), "enq": st.integers(0, 9),
                                            "done": st.integers(0, 9), "inf": st.integers(0, 9),
                                            "busy": st.floats(0, 1e308), "thr": st.floats(0, 10),
                                            "lam": st.floats(-1e308, 1e308)}),
            "start": st.fixed_dictionaries({"t": st.floats(-1e9, 1e9),
                                            "s": st.floats(-10, 1e6) | st.text(max_size=2),
                                            "untimed": st.integers(0, 3),
                                            "new": st.dictionaries(
                                                st.sampled_from(["p0", "p1", "x"]),
                                                st.floats(-1e9, 2000))}),
            "arr": st.lists(st.lists(st.floats(-1e9, 2000) | st.none(), min_size=1,
                                     max_size=3), max_size=20),
            "downAt": st.floats(-1e9, 2000) | st.booleans(),
            "sched": st.fixed_dictionaries({"k": st.integers(0, 2**32), "t": st.floats(-1e9, 2000),
                                            "u": st.floats(-1e9, 1e12) | st.none(),
                                            "o": st.lists(st.integers(-2, 3) | st.text(max_size=1),
                                                          max_size=3)}),
        }
    ),
)


@SETTINGS
@given(specs(), observations(), memories)
def test_within_bounds_and_gpu(s: QueueWorkerSpec, o: Observation, m: Any) -> None:
    d = decide(s, o, m)
    assert s.scaling.min_replicas <= d.desired <= s.scaling.max_replicas
    if s.gpu.cap_to_free_capacity and o.gpu is not None:
        assert d.desired <= max(o.gpu.max_replicas, s.scaling.min_replicas)
    assert d.direction == ("up" if d.desired > o.current_replicas
                           else "down" if d.desired < o.current_replicas else "none")


@SETTINGS
@given(specs(), observations(), memories)
def test_never_removes_busy_pod_while_idle_exists(
    s: QueueWorkerSpec, o: Observation, m: Any
) -> None:
    d = decide(s, o, m)
    removed = {p.name: p for p in o.pods if p.name in d.remove_first}
    kept = [p for p in o.pods if p.name not in removed]
    if any(p.busy for p in removed.values()):
        assert not any(not p.busy for p in kept)
    assert len(d.remove_first) == max(0, o.current_replicas - d.desired)
    # Busy pods drain anyway: never below them unless maxReplicas or GPUs cap it.
    busy = sum(p.busy for p in o.pods)
    capped = s.scaling.max_replicas < busy or (
        s.gpu.cap_to_free_capacity and o.gpu is not None and o.gpu.max_replicas < busy
    )
    # Or the drain-ahead rule says so (engine/churn.py): busy pods finish their job.
    if d.desired < o.current_replicas and not capped and "drain ahead" not in d.reason:
        assert d.desired >= busy


@SETTINGS
@given(specs(), observations(), memories, st.integers(1, 200))
def test_monotone_in_backlog(s: QueueWorkerSpec, o: Observation, m: Any, more: int) -> None:
    assert o.queues is not None
    q = o.queues[0]
    bigger = QueueDepth(q.name, q.layout, q.waiting + more, q.in_flight,
                        enqueued_total=q.enqueued_total, completed_total=q.completed_total)
    o2 = Observation(now=o.now, queues=(bigger,), current_replicas=o.current_replicas,
                     ready_replicas=o.ready_replicas, pods=o.pods, gpu=o.gpu)
    assert decide(s, o2, m).desired >= decide(s, o, m).desired


@SETTINGS
@given(specs(), st.integers(0, 300), st.integers(0, 30), st.floats(1, 30))
def test_no_flapping_under_constant_load(
    s: QueueWorkerSpec, waiting: int, start: int, step: float
) -> None:
    """Same queue at every poll: once the count settles it stays settled."""
    # A schedule's windows open and close: that is the spec moving, not flapping.
    assume(not s.scaling.min_replicas_schedules)
    memory: dict[str, Any] | None = None
    current = start
    history = []
    for i in range(120):
        now = i * step
        in_flight = min(current, waiting)
        pods = tuple(PodState(f"p{j}", busy=j < in_flight, in_flight=int(j < in_flight))
                     for j in range(current))
        depth = QueueDepth("q", "native", waiting=waiting, in_flight=in_flight,
                           enqueued_total=int(now * 2), completed_total=int(now * 2))
        d = decide(s, Observation(now, (depth,), current, current, pods), memory)
        memory = d.memory
        current = d.desired
        history.append(current)
    # Rates are smoothed, so the count may still creep toward its level late
    # in the run; it must never turn back (that is flapping).
    tail = history[40:]
    ups = any(b > a for a, b in itertools.pairwise(tail))
    downs = any(b < a for a, b in itertools.pairwise(tail))
    assert not (ups and downs), history


@SETTINGS
@given(
    st.integers(1, 5), st.integers(5, 60), st.integers(1, 5), st.integers(5, 60),
    st.lists(st.integers(0, 60), min_size=5, max_size=60), st.floats(1, 20),
)
def test_rate_limits_hold_over_any_period(
    up_pods: int, up_period: int, down_pods: int, down_period: int, loads: list[int],
    step: float,
) -> None:
    s = spec({
        "maxReplicas": 60,
        "idleSecondsBeforeZero": 0,
        "scaleUp": {"rateLimit": {"pods": up_pods, "periodSeconds": up_period}},
        "scaleDown": {"stabilizationSeconds": 0,
                      "rateLimit": {"pods": down_pods, "periodSeconds": down_period}},
    })
    memory: dict[str, Any] | None = None
    current = 0
    changes: list[tuple[float, int]] = []
    for i, waiting in enumerate(loads):
        now = i * step
        depth = QueueDepth("q", "native", waiting=waiting, in_flight=0)
        d = decide(s, Observation(now, (depth,), current, current, tuple(
            PodState(f"p{j}", busy=False) for j in range(current))), memory)
        memory = d.memory
        change = d.desired - current
        if change:
            changes.append((now, change))
        current = d.desired
        # At every scale-up (down), the count is at most `pods` above (below) what
        # it was when the trailing period started, as the HPA's policies count.
        if change > 0:
            assert sum(c for t, c in changes if t > now - up_period) <= up_pods, changes
        if change < 0:
            assert sum(c for t, c in changes if t > now - down_period) >= -down_pods, changes
