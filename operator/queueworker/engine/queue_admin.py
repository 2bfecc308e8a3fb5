"""A queue's admin state as demand: paused queues and due schedule ticks. Pure.

Two rules (issue 16), both named in the reason line:

- a paused queue's waiting jobs are no demand: its workers take none of them.
  Its jobs in flight still hold their pods. Its arrivals are counted only when
  a worker takes them (enqueued less waiting), so a pause re-baselines the
  rates once and a resume counts the held jobs as they start to arrive;
- a due schedule tick of a queue that is not paused is demand for at least one
  replica, even at zero: with no worker nothing turns the tick into a job
  (worker/scheduler.py). "Due" is within one pod start of now, the start time
  the engine measured (forecast.starts) or its default, so the pod is ready
  when the tick comes.
"""

from __future__ import annotations

from dataclasses import replace

from queueworker.engine.types import QueueDepth


def for_demand(queues: tuple[QueueDepth, ...]) -> tuple[tuple[QueueDepth, ...], str]:
    """The queues as demand sees them: a paused queue's waiting jobs left out."""
    if not any(q.paused for q in queues):  # the common case: no copy
        return queues, ""
    out, held = [], []
    for q in queues:
        if q.paused:
            if q.waiting:
                held.append(f"{q.name} ({q.waiting} waiting)")
            else:
                held.append(q.name)
            enq = q.enqueued_total
            q = replace(q, waiting=0, waiting_by_priority=(),
                        enqueued_total=None if enq is None else max(0, enq - q.waiting))
        out.append(q)
    return tuple(out), f"; paused, not demand: {', '.join(held)}"


def due(queues: tuple[QueueDepth, ...], start_seconds: float) -> tuple[str, float] | None:
    """(queue, seconds to its tick) of the soonest tick due within a pod start; None: none."""
    soon: tuple[str, float] | None = None
    for q in queues:
        t = q.schedule_due_in
        if t is None or q.paused or t > start_seconds:
            continue
        if soon is None or t < soon[1]:
            soon = (q.name, t)
    return soon


def wake(tick: tuple[str, float] | None, start_seconds: float, want: int, to_zero: bool
         ) -> tuple[int, bool, str]:
    """At least one replica for a due tick: (want, going to zero, reason part)."""
    if tick is None or want >= 1:
        return want, to_zero, ""
    name, t = tick
    when = f"in {t:.0f}s" if t > 0 else f"{-t:.0f}s ago"
    return 1, False, (f"; schedule of {name} due {when} (<= pod start {start_seconds:.0f}s) "
                      "-> 1")
