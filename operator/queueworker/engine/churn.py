"""The steps that weigh what a pod costs to start again. Pure.

Each returns (replicas, reason part); decide.py runs them after the
stabilization windows, in this order:

- `worth_starting`: a scale-up starts only as many pods as will find a job
  waiting when they are ready;
- `keep`: never below what the restart horizon's forecast needs
  (forecast.need): a pod removed now would be started again, paying its
  start and a scale event, and its jobs would wait for it;
- `drain_ahead`: with nothing waiting, busy pods the forecast does not need
  get SIGTERM now and leave as their job ends, instead of idling through the
  scale-down window afterwards. Only when the jobs run at least two restart
  horizons (a job in progress has about half a mean job left, so a
  replacement would be ready before the drained pod was free anyway and no
  job waits longer for it) and the drain deadline holds twice the mean job
  and the longest job seen running (the job finishes; it is not cut);
  elsewhere `busy_floor` holds;
- `spacing`: small scale-downs at least one restart horizon apart, so a
  fleet draining a burst takes a few larger steps instead of one per poll; a
  pod kept that long costs at most what starting it again would.

`leaving` takes the jobs of terminating pods out of the demand first.
"""

from __future__ import annotations

import math
from typing import Any

from queueworker.engine.forecast import Horizon
from queueworker.engine.policy import Demand
from queueworker.engine.rates import Rates
from queueworker.engine.types import PodState
from queueworker.operator.api import QueueWorkerSpec, ScalingSpec

DRAIN_FACTOR = 2.0  # the drain deadline must hold this many mean jobs
LONGEST_MARGIN = 1.25  # and the longest job seen with this much to spare


def worth_starting(demand: Demand, rates: Rates | None, horizon: Horizon, current: int,
                   desired: int, slots: int) -> tuple[int, str]:
    """Start only as many pods as will find a job waiting when they are ready.

    Within a pod start of T seconds the replicas there start about
    current x slots x T / S jobs (a busy slot frees once per mean job S), while
    waiting + arrivals x T jobs need one. What is left (less its noise), at
    least one job per new pod, is what new pods would run; a job the replicas
    there start before a new pod is ready does not need one. Replicas that
    cannot carry the measured load (arrivals x S busy slots or more) are scaled
    as asked: the queue would only grow.
    """
    if desired <= current or current == 0 or rates is None or rates.service_seconds <= 0:
        return desired, ""
    svc, start = rates.service_seconds, horizon.start_seconds
    if rates.arrival_per_second * svc >= current * slots:
        return desired, ""
    arriving = rates.arrival_per_second * start
    started = current * slots * start / svc
    left = demand.waiting + arriving - started
    # Less one standard deviation of that count (arrivals and completions are
    # Poisson-like): a pod started for a job that turns out not to wait runs nothing.
    sure = left - math.sqrt(max(left, 0.0))
    new = math.floor(sure / slots + 1e-9) if sure >= 1 else 0
    if current + new >= desired:
        return desired, ""
    return current + new, (
        f"; start {new}: of waiting {demand.waiting} + {arriving:.1f} arriving in a pod start "
        f"({start:.0f}s), {current} replicas start {started:.1f} before a new one is ready "
        f"-> {current + new}"
    )


def keep(current: int, desired: int, ahead: int, why: str) -> tuple[int, str]:
    """A scale-down never goes below the forecast's need (nor adds pods for it)."""
    if desired >= current or ahead <= desired:
        return desired, ""
    return min(ahead, current), f"; kept: {why}"


def drain_ahead(
    spec: QueueWorkerSpec,
    demand: Demand,
    rates: Rates | None,
    horizon: Horizon,
    current: int,
    desired: int,
    ahead: int,
    busy: int,
    slots: int,
    room: int | None,
    longest: tuple[float | None, float] = (None, 0.0),
) -> tuple[int, str] | None:
    """The count with busy pods beyond the forecast draining, or None where the
    rule does not apply (then no scale-down goes below the busy pods).

    The drain deadline must hold the longest job seen running with a quarter
    to spare (`longest`: that age, and how long ages have been watched, at
    least one deadline), and twice the mean job. Not while a busy pod has a
    free job slot (a draining pod takes no more
    jobs: that slot would be lost), nor when no replacement could be scheduled
    (`room`: replicas the free GPUs allow beyond the current ones; a
    replacement that waits for a GPU the drained pod holds is no replacement).
    Idle pods beyond the forecast go first, as in every scale-down.
    """
    if rates is None or demand.waiting > 0 or current == 0:
        return None
    if demand.in_flight < busy * slots or (room is not None and room < 1):
        return None
    svc, deadline = rates.service_seconds, spec.drain.worker_deadline_seconds
    if svc < 2 * horizon.seconds or DRAIN_FACTOR * svc > deadline:
        return None
    seen, watched = longest
    if seen is None or watched < deadline or LONGEST_MARGIN * seen > deadline:
        return None
    s = spec.scaling
    target = min(max(ahead, 1, s.min_replicas), s.max_replicas)
    if target >= desired:
        return None
    return target, (
        f"; drain ahead: nothing waits, jobs of {svc:.0f}s run 2x the restart horizon "
        f"{horizon.seconds:.0f}s or more, {DRAIN_FACTOR:g}x and the longest seen "
        f"({seen:.0f}s) fit the drain deadline {deadline:g}s: busy pods beyond the "
        f"forecast's {ahead} finish their job and leave -> {target}"
    )


def spacing(last: Any, now: float, current: int, desired: int, horizon: float
            ) -> tuple[int, str]:
    """Hold a small scale-down that comes less than a restart horizon after the
    last one. A large step (more than sqrt(current) pods: a burst is over, not
    the load's own noise) goes at once: holding it would cost more pod time
    than the event it saves."""
    if desired >= current or not isinstance(last, int | float) or isinstance(last, bool):
        return desired, ""
    since = now - float(last)
    small = current - desired <= math.ceil(math.sqrt(current))
    if small and 0 <= since < horizon:
        return current, (
            f"; last scale-down {since:.0f}s ago < restart horizon {horizon:.0f}s and "
            f"{current - desired} pods <= sqrt({current}) rounded up: hold"
        )
    return desired, ""


def leaving(pods: tuple[PodState, ...], demand: Demand) -> tuple[Demand, str]:
    """Jobs in flight on terminating pods are theirs to finish: not demand for
    the replicas that stay (counting them would start a pod to replace each
    pod that drains)."""
    leaving = sum(p.in_flight for p in pods if p.terminating)
    if not leaving or not demand.in_flight:
        return demand, ""
    gone = min(leaving, demand.in_flight)
    return Demand(demand.waiting, demand.in_flight - gone), (
        f" ({gone} in flight on terminating pods not counted)"
    )


def busy_floor(
    s: ScalingSpec, current: int, desired: int, busy: int, lag_why: str = ""
) -> tuple[int, str]:
    """Never scale down below the pods running a job (nor above maxReplicas for them)."""
    if desired >= current:
        return desired, ""
    floor = min(busy, s.max_replicas)
    if desired < floor:
        return floor, f"; {busy} pods busy{lag_why}: not below {floor}"
    return desired, ""
