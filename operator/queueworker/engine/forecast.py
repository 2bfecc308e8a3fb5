"""What the next minutes need, and what a pod costs to start again. Pure.

A pod removed now and wanted again costs a pod start: the start's
worker-seconds, a scale event and the wait of the jobs that arrive meanwhile.
So the engine looks ahead one *restart horizon*: the time a new pod takes to
become ready (measured here from the pods themselves) plus a poll. A pod the
forecast for that horizon needs is kept, and a scale-up starts only pods that
will find a job when they are ready (churn.py).

The forecast comes from the rates the counters give (rates.py): a = arrival
rate x mean service time job slots are busy on average. Two readings of it:

- seconds of work (both policies): a + sqrt(a) slots, square-root staffing,
  the same margin as `policy.work_slots`;
- job count (backlog policy): jobs in the system are about Poisson(a) while the
  fleet keeps up, and over a horizon of H seconds there are about 1 + H/S
  independent draws of that count; their highest is about
  a + sqrt(2 a ln(1 + H/S)). Divided by targetBacklogPerReplica.

The backlog policy asks for the lower of its two readings at every poll
(policy.backlog), so its forecast is the lower of the two as well. The
arrival rate is the lower of the smoothed one and an upper bound on the
arrivals counted over the last minute (`recent`): a burst that is over stops
counting at once. Until the counters cover that minute there is no forecast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from queueworker.engine.rates import TAU_SECONDS, Rates
from queueworker.engine.types import PodState
from queueworker.operator.api import ScalingPolicy, ScalingSpec

# Until one pod has been seen going from not ready to ready: a container image
# pulled and started on a warm node (the simulator's CPU traces use 20 s).
DEFAULT_START_SECONDS = 30.0
START_WEIGHT = 0.3  # each measured start moves the estimate this far toward itself
MAX_TRACKED = 16  # pods whose start is being timed at once (memory stays small)
MAX_START_SECONDS = 3600.0
# Arrivals counted over at least this long: the rates' own time constant. Until
# the counters cover it there is no forecast (the first minute's rates are a
# handful of jobs, and a floor from them would hold pods for nothing).
MIN_RECENT_SECONDS = TAU_SECONDS
RING_SPACING = 8  # counter samples kept per recent span (memory stays small)


@dataclass(frozen=True)
class Horizon:
    start_seconds: float  # measured (or default) time from a new pod to a ready one
    measured: bool
    seconds: float  # start + poll: how far ahead a removal must look


def starts(raw: Any, now: float, pods: Sequence[PodState], poll: float
           ) -> tuple[dict[str, Any], Horizon]:
    """Time pods from first seen not ready to ready; return memory and the horizon."""
    prev = raw if isinstance(raw, dict) else {}
    est = prev.get("s")
    if not isinstance(est, int | float) or isinstance(est, bool) or not (
        0 <= est <= MAX_START_SECONDS
    ):
        est = None
    seen = prev.get("new")
    seen = seen if isinstance(seen, dict) else {}
    # A pod not timed at the last poll (all slots taken) may be older than
    # this poll: time new pods only when none was left untimed last time.
    fresh = prev.get("untimed", 0) == 0
    # A pod first seen now was created since the last poll, most often by
    # that poll's own scale-up: time it from there (from now it reads short
    # by up to a poll).
    born = prev.get("t")
    born = float(born) if isinstance(born, int | float) and not isinstance(born, bool) and (
        now - MAX_START_SECONDS <= born <= now) else now
    tracked: dict[str, float] = {}
    untimed = 0
    # Most polls time nothing: no pod starting and none being timed.
    timing = pods if seen else [p for p in pods if not p.ready]
    for p in timing:
        if p.terminating:
            continue
        t0 = seen.get(p.name)
        t0 = float(t0) if isinstance(t0, int | float) and not isinstance(t0, bool) else None
        if t0 is not None and t0 > now:
            t0 = None  # a clock that went back: time this pod afresh
        if not p.ready:
            if t0 is not None or (fresh and len(tracked) < MAX_TRACKED):
                tracked[p.name] = born if t0 is None else t0
            else:
                untimed += 1
        elif t0 is not None:
            sample = min(now - t0, MAX_START_SECONDS)
            est = sample if est is None else est + START_WEIGHT * (sample - est)
    mem: dict[str, Any] = {"t": now}
    if est is not None:
        mem["s"] = round(float(est), 3)
    if tracked:
        mem["new"] = tracked
    if untimed:
        mem["untimed"] = untimed
    start = DEFAULT_START_SECONDS if est is None else float(est)
    return mem, Horizon(start, est is not None, start + poll)


LONGEST_FORGET_SECONDS = 6 * 3600.0  # a longest job not matched for this long is forgotten


def longest(raw: Any, now: float, pods: Sequence[PodState]
            ) -> tuple[dict[str, Any], float | None, float]:
    """The longest a job was seen running (from the beats' job starts), and for
    how long the ages have been watched: (memory, longest or None, seconds).

    A job's remaining run is at most the longest job seen minus its age; a
    drain deadline that holds the longest job seen holds the rest.
    """
    prev = raw if isinstance(raw, dict) else {}
    ages = [p.job_age_seconds for p in pods if p.job_age_seconds is not None]
    now_max = max(ages, default=None)
    seen, at, since = prev.get("l"), prev.get("at"), prev.get("since")
    if not (isinstance(seen, int | float) and isinstance(at, int | float)
            and isinstance(since, int | float)) or not (since <= at <= now) \
            or now - at > LONGEST_FORGET_SECONDS:
        if now_max is None:
            return {}, None, 0.0
        seen, at, since = now_max, now, now
    elif now_max is not None and now_max >= seen:
        seen, at = now_max, now
    return ({"l": round(float(seen), 3), "at": float(at), "since": float(since)},
            float(seen), now - float(since))


def recent(raw: Any, now: float, enqueued: int | None, span: float
           ) -> tuple[list[list[float]], float | None]:
    """Arrivals over the last `span` seconds (at least MIN_RECENT_SECONDS), from
    a few enqueued-counter samples: (memory, upper bound on the rate, or None
    until the samples cover the span).

    The smoothed rate (a minute's average) says a burst goes on for minutes
    after its last job; the count of the last span says it is over. The bound
    is n + 2 sqrt(n) + 2 arrivals (a Poisson count's upper bound), so a steady
    load's own noise does not read as a drop.
    """
    if enqueued is None:
        return [], None
    span = max(span, MIN_RECENT_SECONDS)
    ring: list[list[float]] = []
    if isinstance(raw, list):
        for item in raw:  # our own memory: cheap checks, anything odd is dropped
            try:
                t, e = float(item[0]), float(item[1])
            except (TypeError, ValueError, IndexError, KeyError):
                continue
            if -1e18 < t <= now and -1e18 < e <= enqueued:
                ring.append([t, e])
    if not ring or now - ring[-1][0] >= span / RING_SPACING:
        ring.append([now, float(enqueued)])
    while len(ring) > 1 and ring[1][0] <= now - span:
        ring.pop(0)
    ring = ring[-(RING_SPACING + 2):]
    t0, e0 = ring[0]
    if now - t0 < span * 0.9:
        return ring, None
    n = enqueued - e0
    return ring, (n + 2 * math.sqrt(n) + 2) / (now - t0)


def need(scaling: ScalingSpec, rates: Rates | None, slots: int, horizon: Horizon,
         recent_upper: float | None = None) -> tuple[int, str]:
    """Replicas the next horizon is expected to need (0 and "" with no rates,
    or before the counters cover a recent span: `recent_upper` None)."""
    if (rates is None or recent_upper is None or rates.service_seconds <= 0
            or rates.arrival_per_second <= 0):
        return 0, ""
    lam, svc = min(rates.arrival_per_second, recent_upper), rates.service_seconds
    a = lam * svc
    work = (a + math.sqrt(a)) / slots
    start = f"pod start {horizon.start_seconds:.0f}s" + ("" if horizon.measured else " (default)")
    if scaling.policy == ScalingPolicy.backlog:
        peak = a + math.sqrt(2 * a * math.log1p(horizon.seconds / svc))
        jobs = peak / scaling.target_backlog_per_replica
        if jobs < work:
            n = math.ceil(jobs - 1e-9)
            return n, (
                f"forecast over {horizon.seconds:.0f}s ({start} + poll): {a:.1f} busy, "
                f"peak {peak:.1f} jobs / target {scaling.target_backlog_per_replica} -> {n}"
            )
    n = math.ceil(work - 1e-9)
    return n, (
        f"forecast over {horizon.seconds:.0f}s ({start} + poll): {a:.1f} busy "
        f"+ margin {math.sqrt(a):.1f} / {slots} per replica -> {n}"
    )
