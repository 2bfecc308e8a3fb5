"""Properties of the admin rules (engine/queue_admin.py) over random specs and readings:
pausing a queue never asks for more replicas, and a due tick always wakes one."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from queueworker.engine import Observation, PodState, QueueDepth, decide
from queueworker.operator.api import QueueWorkerSpec

from support.engine_specs import spec

SETTINGS = settings(max_examples=200, deadline=None)


@st.composite
def specs(draw: st.DrawFn) -> QueueWorkerSpec:
    hi = draw(st.integers(1, 20))
    limit: dict[str, Any] | None = draw(st.one_of(
        st.none(),
        st.fixed_dictionaries({"pods": st.integers(1, 5), "periodSeconds": st.integers(1, 60)}),
        st.fixed_dictionaries({"percent": st.integers(1, 200),
                               "periodSeconds": st.integers(1, 60)})))
    up: dict[str, Any] = {"stabilizationSeconds": draw(st.integers(0, 60))}
    if limit is not None:
        up["rateLimit"] = limit
    return spec({
        "minReplicas": draw(st.integers(0, min(hi, 3))), "maxReplicas": hi,
        "policy": draw(st.sampled_from(["backlog", "waitTime"])),
        "targetBacklogPerReplica": draw(st.integers(1, 10)),
        "activationBacklog": draw(st.integers(0, 5)),
        "idleSecondsBeforeZero": draw(st.integers(0, 120)),
        "scaleUp": up,
        "scaleDown": {"stabilizationSeconds": draw(st.integers(0, 120))},
    }, queues=[{"name": "a"}, {"name": "b"}])


@st.composite
def readings(draw: st.DrawFn) -> Observation:
    current = draw(st.integers(0, 20))
    busy = draw(st.lists(st.booleans(), min_size=current, max_size=current))
    pods = tuple(PodState(f"p{i}", busy=b, in_flight=int(b)) for i, b in enumerate(busy))
    split = draw(st.integers(0, sum(busy)))
    queues = (QueueDepth("a", "native", waiting=draw(st.integers(0, 300)), in_flight=split),
              QueueDepth("b", "native", waiting=draw(st.integers(0, 300)),
                         in_flight=sum(busy) - split))
    return Observation(now=1000.0, queues=queues, current_replicas=current,
                       ready_replicas=current, pods=pods)


def _with(o: Observation, **kw: Any) -> Observation:
    assert o.queues is not None
    return replace(o, queues=(replace(o.queues[0], **kw), *o.queues[1:]))


@SETTINGS
@given(specs(), readings())
def test_pausing_a_queue_never_asks_for_more(s: QueueWorkerSpec, o: Observation) -> None:
    running = decide(s, o, None)
    paused = decide(s, _with(o, paused=True), None)
    assert paused.desired <= running.desired
    assert s.scaling.min_replicas <= paused.desired
    if o.queues is not None and o.queues[0].waiting:
        assert "paused, not demand: a (" in paused.reason


@SETTINGS
@given(specs(), readings(), st.floats(-600, 30))
def test_a_due_tick_always_wakes_one(s: QueueWorkerSpec, o: Observation, due_in: float) -> None:
    d = decide(s, _with(o, schedule_due_in=due_in), None)
    assert d.desired >= 1
    assert d.desired >= decide(s, o, None).desired  # never fewer than without it
    # Paused, the queue's tick is nobody's demand: as if there were none.
    assert decide(s, _with(o, schedule_due_in=due_in, paused=True), None).desired == decide(
        s, _with(o, paused=True), None).desired
