"""A queue's admin state as demand (engine/queue_admin.py): a paused queue's waiting jobs
are no demand, a due schedule tick wakes one replica; both named in the reason line."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from queueworker.engine import Decision, Observation, PodState, QueueDepth, decide
from queueworker.engine.forecast import DEFAULT_START_SECONDS

from support.engine_specs import spec

QUEUES = [{"name": "a"}, {"name": "b"}]


def _decide(queues: tuple[QueueDepth, ...], current: int = 0,
            memory: dict[str, Any] | None = None, now: float = 1000.0,
            **scaling: Any) -> Decision:
    pods = tuple(PodState(name=f"p{i}", busy=False) for i in range(current))
    s = spec({"maxReplicas": 10, **scaling}, queues=QUEUES)
    return decide(s, Observation(now=now, queues=queues, current_replicas=current,
                                 ready_replicas=current, pods=pods), memory)


def _q(name: str, waiting: int = 0, in_flight: int = 0, **kw: Any) -> QueueDepth:
    return QueueDepth(name=name, layout="native", waiting=waiting, in_flight=in_flight, **kw)


def test_paused_backlog_is_no_demand_at_zero() -> None:
    d = _decide((_q("a", 40, paused=True), _q("b")))
    assert d.desired == 0
    assert "paused, not demand: a (40 waiting)" in d.reason


def test_paused_backlog_scales_once_resumed() -> None:
    d = _decide((_q("a", 40), _q("b")))
    assert d.desired == 10
    assert "paused" not in d.reason


def test_paused_queue_in_flight_still_holds_its_pods() -> None:
    # 3 pods run the paused queue's jobs; its 50 waiting ones ask for nothing more.
    d = _decide((_q("a", 50, 3, paused=True), _q("b", 2)), current=3)
    assert d.desired == 5  # 3 in flight + b's 2 waiting, one job per replica
    assert "backlog 5 (waiting 2, in flight 3)" in d.reason
    assert "paused, not demand: a (50 waiting)" in d.reason


def test_arrivals_to_a_paused_queue_are_not_arrivals() -> None:
    # The counters of a paused queue grow by what waits: enqueued less waiting stays put,
    # so the wait-time policy sees no load, and no activity resets the idle clock.
    mem: dict[str, Any] | None = None
    d = None
    for i, waiting in enumerate((10, 20, 30, 40, 50, 60)):
        q = _q("a", waiting, paused=True, enqueued_total=100 + waiting, completed_total=100)
        d = _decide((q,), memory=mem, now=1000.0 + 10 * i, policy="waitTime")
        mem = d.memory
    assert d is not None
    assert d.desired == 0
    assert "rates" in d.memory
    assert d.memory["rates"]["enq"] == 100


def test_due_tick_wakes_one_replica_from_zero() -> None:
    d = _decide((_q("a", schedule_due_in=10.0), _q("b")), activationBacklog=5)
    assert d.desired == 1
    assert f"schedule of a due in 10s (<= pod start {DEFAULT_START_SECONDS:.0f}s) -> 1" in d.reason


def test_overdue_tick_wakes_too() -> None:
    d = _decide((_q("a", schedule_due_in=-120.0),))
    assert d.desired == 1
    assert "schedule of a due 120s ago" in d.reason


def test_tick_beyond_a_pod_start_waits() -> None:
    d = _decide((_q("a", schedule_due_in=DEFAULT_START_SECONDS + 5),))
    assert d.desired == 0
    assert "schedule" not in d.reason


def test_measured_pod_start_is_the_lead() -> None:
    # The engine measured a 90 s pod start: a tick 60 s away is due now.
    mem = {"v": 1, "start": {"t": 900.0, "s": 90.0}}
    d = _decide((_q("a", schedule_due_in=60.0),), memory=mem)
    assert d.desired == 1
    assert "(<= pod start 90s)" in d.reason


def test_paused_queue_tick_is_not_due() -> None:
    d = _decide((_q("a", schedule_due_in=0.0, paused=True),))
    assert d.desired == 0
    assert "schedule" not in d.reason


def test_due_tick_keeps_the_last_replica_past_idle() -> None:
    mem = {"v": 1, "active": 0.0}  # idle for 1000 s, far past idleSecondsBeforeZero
    idle = _decide((_q("a"),), current=1, memory=mem)
    assert idle.desired == 0
    d = _decide((_q("a", schedule_due_in=5.0),), current=1, memory=mem)
    assert d.desired == 1
    assert d.memory["active"] == 1000.0  # a due tick is activity


def test_due_tick_adds_nothing_beside_real_demand() -> None:
    d = _decide((_q("a", 3, schedule_due_in=0.0),))
    assert d.desired == 3
    assert "schedule" not in d.reason


def test_queues_without_admin_state_are_untouched() -> None:
    q = _q("a", 4)
    assert replace(q) == q
    assert not q.paused
    assert q.schedule_due_in is None
    assert _decide((q,)).desired == 4
