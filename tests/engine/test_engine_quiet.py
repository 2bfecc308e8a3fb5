"""Quiet first (engine/quiet.py): which victims to quiet, which may go, which are waited for."""

from __future__ import annotations

from queueworker.engine.quiet import RELEASE_SECONDS, SIGNAL_SECONDS, Memory, Quietable, plan

IDLE = Quietable(quiet=False, busy=False)
BUSY = Quietable(quiet=False, busy=True)
QUIET_BUSY = Quietable(quiet=True, busy=True)
QUIET_IDLE = Quietable(quiet=True, busy=False)
LIVE = ("a", "b", "c")


def test_victims_are_quieted_first_and_nothing_goes_yet() -> None:
    p = plan(desired=1, current=3, victims=("a", "b"), live=LIVE,
             workers={"a": IDLE, "b": IDLE, "c": BUSY}, memory=Memory({}), now=100.0, limit=60)
    assert (p.quiet, p.ready, p.replicas) == (("a", "b"), (), 3)
    assert p.memory.quieted == {"a": 100.0, "b": 100.0}


def test_a_drained_victim_goes_a_busy_one_is_waited_for() -> None:
    p = plan(desired=1, current=3, victims=("a", "b"), live=LIVE,
             workers={"a": QUIET_IDLE, "b": QUIET_BUSY, "c": IDLE},
             memory=Memory({"a": 90.0, "b": 90.0}), now=100.0, limit=60)
    assert (p.quiet, p.ready, p.waiting, p.replicas) == ((), ("a",), ("b",), 2)
    assert p.memory.quieted == {"b": 90.0}


def test_a_quiet_beat_must_come_before_a_victim_goes() -> None:
    # Quieted, but its last beat was written before the quiet took hold.
    p = plan(desired=2, current=3, victims=("a",), live=LIVE,
             workers={"a": IDLE, "b": IDLE, "c": IDLE}, memory=Memory({"a": 90.0}), now=100.0,
             limit=60)
    assert (p.ready, p.waiting, p.replicas) == ((), ("a",), 3)


def test_quieted_pods_count_first_among_the_victims() -> None:
    # The engine now names another pod; the one quieted earlier is the victim.
    p = plan(desired=2, current=3, victims=("c",), live=LIVE,
             workers={"a": QUIET_BUSY, "b": IDLE, "c": IDLE}, memory=Memory({"a": 95.0}),
             now=100.0, limit=60)
    assert (p.quiet, p.waiting, p.replicas) == ((), ("a",), 3)


def test_a_quieted_pod_leaves_once_idle_even_when_demand_came_back() -> None:
    p = plan(desired=3, current=3, victims=(), live=LIVE,
             workers={"a": QUIET_IDLE, "b": BUSY, "c": BUSY}, memory=Memory({"a": 95.0}),
             now=100.0, limit=60)
    assert (p.ready, p.replicas) == (("a",), 2)


def test_a_scale_up_removes_nothing_and_keeps_the_quieted_in_memory() -> None:
    p = plan(desired=5, current=3, victims=(), live=LIVE,
             workers={"a": QUIET_IDLE, "b": BUSY, "c": BUSY}, memory=Memory({"a": 95.0}),
             now=100.0, limit=60)
    assert (p.quiet, p.ready, p.replicas, p.memory.quieted) == ((), (), 5, {"a": 95.0})


def test_a_quiet_busy_pod_is_waited_for_a_quiet_not_taken_is_not() -> None:
    # Quiet and busy: it takes nothing new, so it drains; waited for as any busy pod.
    p = plan(desired=1, current=3, victims=("a", "b"), live=LIVE,
             workers={"a": QUIET_BUSY, "b": IDLE, "c": IDLE},
             memory=Memory({"a": 0.0, "b": 100.0 - SIGNAL_SECONDS}), now=100.0)
    # b never said quiet within SIGNAL_SECONDS: it goes as it would have without quiet.
    assert (p.ready, p.waiting, p.replicas, p.memory.quieted) == (("b",), ("a",), 2, {"a": 0.0})


def test_pods_nothing_reports_on_go_at_once_and_gone_ones_are_forgotten() -> None:
    p = plan(desired=1, current=3, victims=("c", "b"), live=("b", "c"),
             workers={"b": IDLE}, memory=Memory({"a": 90.0}), now=100.0, limit=60)
    assert (p.quiet, p.ready, p.replicas) == (("b",), ("c",), 2)
    assert p.memory.quieted == {"b": 100.0}


def test_a_pod_quiet_by_someone_else_is_known_quieted() -> None:
    p = plan(desired=3, current=3, victims=(), live=LIVE,
             workers={"a": QUIET_BUSY, "b": IDLE, "c": IDLE}, memory=Memory({}), now=100.0,
             limit=60)
    assert (p.waiting, p.memory.quieted) == (("a",), {"a": 100.0})


def test_a_released_pod_is_not_counted_again_while_the_index_still_shows_it() -> None:
    # a went at 100 (replicas 3 -> 2); at 100.5 the index still lists it, quiet and idle.
    first = plan(desired=2, current=3, victims=("a",), live=LIVE,
                 workers={"a": QUIET_IDLE, "b": IDLE, "c": IDLE}, memory=Memory({"a": 90.0}),
                 now=100.0)
    assert (first.ready, first.replicas, first.memory.released) == (("a",), 2, {"a": 100.0})
    again = plan(desired=2, current=2, victims=(), live=LIVE,
                 workers={"a": QUIET_IDLE, "b": IDLE, "c": IDLE}, memory=first.memory,
                 now=100.5)
    assert (again.ready, again.quiet, again.replicas) == ((), (), 2)
    # Still listed long after (the ReplicaSet took another pod): it goes again.
    late = plan(desired=2, current=2, victims=(), live=LIVE,
                workers={"a": QUIET_IDLE, "b": IDLE, "c": IDLE}, memory=again.memory,
                now=100.0 + RELEASE_SECONDS)
    assert (late.ready, late.replicas) == (("a",), 1)
