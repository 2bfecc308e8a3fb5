"""One poll's Observation as the operator would read it, per layout (visibility.py).

Native workers: the in-flight ZSET and their heartbeats (busy as the last
beat said, job starts and buffered jobs included). Other libraries: what
their layout reader and busy adapter give, turned into PodStates by the
operator's own rule (observe/heartbeats.pod_state): a reported pod has no
beat age, an unreported one is unknown (not busy, the oldest age), and no
queue keeps the native counters (enqueued, completed), so the engine sizes
from depths alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from queueworker.engine import PodState, QueueDepth
from queueworker.observe.heartbeats import PodBeat, pod_state
from queueworker.simulate.model import DRAINING, READY, Model, Pod
from queueworker.simulate.visibility import BEATS, BLOCKED, EXACT, HIDDEN, Visibility

Names = Callable[[Pod], str]


def queues(m: Model, v: Visibility, now: float) -> tuple[QueueDepth, ...]:
    counts = dict.fromkeys(m.queues, 0)
    for p in m.pods.values():
        if v.running == EXACT:
            for j in (*p.jobs, *p.buffer):
                counts[j.queue] += 1
        elif v.running == BEATS:
            seen = m.seen_busy(p, now)
            held = [j.queue for j in p.jobs[:seen]]
            for q in held + [p.queues[0]] * (seen - len(held)):
                counts[q] += 1
    if v.running == HIDDEN:
        counts = dict.fromkeys(m.queues, 0)
    native = v.native
    return tuple(
        # Each queue's counters would be separate; summed here they give the
        # same rates to the engine.
        QueueDepth(q, v.layout.value, len(m.waiting.get(q, ())), counts[q],
                   enqueued_total=(m.enqueued if i == 0 else 0) if native else None,
                   completed_total=(m.finished if i == 0 else 0) if native else None)
        for i, q in enumerate(m.queues)
    )


def native_pods(m: Model, now: float, told_buffered: bool) -> tuple[PodState, ...]:
    # Busy as the last heartbeat said: a pod that took a job since looks idle.
    # Draining pods are listed too (terminating), as the operator lists them.
    seen = {p.name: m.seen_busy(p, now) for p in m.pods.values()}
    return tuple(
        PodState(p.name, busy=seen[p.name] > 0, in_flight=seen[p.name],
                 ready=p.state == READY, terminating=p.state == DRAINING,
                 slots=p.concurrency, buffered=len(p.buffer) if told_buffered else 0,
                 beat_age_seconds=m.beat_age(p, now),
                 job_age_seconds=m.job_age(p, now) if seen[p.name] else None)
        for p in m.pods.values()
    )


def _beat(m: Model, v: Visibility, p: Pod, now: float, exact: bool) -> PodBeat | None:
    """What the library's registry (or CLIENT LIST) says of one pod; None: nothing."""
    if p.ready_at is None:  # its worker has not started: nothing registered yet
        return None
    if v.busy == EXACT or (v.busy == BEATS and exact):
        running = len(p.jobs)
    elif v.busy == BEATS:
        running = m.seen_busy(p, now)
    elif v.busy == BLOCKED and p.state == READY and len(p.jobs) < p.concurrency:
        running = 0  # blocked waiting for work: a free slot
    else:
        return None
    # A registry written at each beat carries its time (Sidekiq's `beat`), as the
    # operator's adapter passes it on: the freshest idle pod goes first.
    age = m.beat_age(p, now) if v.busy == BEATS and not exact else None
    return PodBeat(p.name, "busy" if running else "idle", running,
                   now - age if age is not None else 0.0)


def foreign_pods(m: Model, v: Visibility, now: float, names: Names,
                 exact: bool = False) -> tuple[PodState, ...]:
    """`exact`: the registry asked again right before a scale-down (Celery's
    inspect active): pods found running a job become busy (controller/observe.confirm_busy)."""
    out = []
    for p in m.pods.values():
        state = pod_state(names(p), _beat(m, v, p, now, False), ready=p.state == READY,
                          terminating=p.state == DRAINING, now=now)
        if exact and p.jobs and not state.busy:
            state = replace(state, busy=True, in_flight=max(state.in_flight, len(p.jobs)))
        out.append(state)
    return tuple(out)
