"""How many replicas the demand asks for, before bounds and behavior.

Demand is waiting plus in-flight jobs: a busy worker is demand, not spare
capacity (counting only waiting jobs is why KEDA+HPA scales busy pods away).

Job counts do not say how much work there is: four waiting 0.2 s e-mails are
not four pods' worth. Where the counters give arrival and service rates, the
backlog policy also sizes the demand in seconds of work (`work_slots`) and
asks for no more replicas than that work needs to clear within
targetWaitSeconds; the job-count target stays the ceiling. A replica's job
slots are what its workers run at once (measured, `slots`), never
targetBacklogPerReplica, which is a target and only that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from queueworker.engine.rates import Rates
from queueworker.operator.api import ScalingPolicy, ScalingSpec


@dataclass(frozen=True)
class Demand:
    waiting: int
    in_flight: int

    @property
    def jobs(self) -> int:
        return self.waiting + self.in_flight


def backlog(
    scaling: ScalingSpec, d: Demand, rates: Rates | None = None, slots: int = 1
) -> tuple[int, str]:
    """ceil(jobs / targetBacklogPerReplica), lowered to what the work needs when
    the jobs are short enough to clear within targetWaitSeconds."""
    target = scaling.target_backlog_per_replica
    want = math.ceil(d.jobs / target)
    why = (
        f"backlog {d.jobs} (waiting {d.waiting}, in flight {d.in_flight}) "
        f"/ target {target} per replica -> {want}"
    )
    if rates is None or rates.service_seconds <= 0 or d.jobs == 0:
        return want, why
    work, work_why = work_slots(scaling.target_wait_seconds, d, rates)
    by_work = max(1, math.ceil(work / slots - 1e-9))
    if by_work < want:
        return by_work, f"{why}; as work: {work_why} / {slots} per replica -> {by_work}"
    return want, why


def work_slots(horizon: float, d: Demand, rates: Rates) -> tuple[float, str]:
    """Job slots the work needs: the steady load with a square-root margin (or
    the jobs in flight, if more), plus the waiting work cleared within `horizon`."""
    lam, svc = rates.arrival_per_second, rates.service_seconds
    load = lam * svc
    steady = load + math.sqrt(load) if load > 0 else 0.0
    drain = d.waiting * svc / horizon
    slots = max(steady, float(d.in_flight)) + drain
    return slots, (
        f"arrivals {lam:.2f}/s x service {svc:.1f}s = {load:.1f} busy "
        f"(+margin {steady - load:.1f}), in flight {d.in_flight}, waiting {d.waiting} "
        f"x {svc:.1f}s / {horizon:g}s = +{drain:.1f} -> {slots:.1f} slots"
    )


def wait_time(
    scaling: ScalingSpec, d: Demand, rates: Rates | None, slots: int = 1
) -> tuple[int, str]:
    """Size for the target wait from measured rates (Little's law).

    Steady load needs a = arrival x service busy job slots; square-root staffing
    (a + sqrt(a)) keeps the chance that an arriving job finds no free slot
    small without paying for a fixed utilisation margin. On top, the jobs
    already waiting must be cleared within the target: waiting x service /
    target more slots. Job slots per replica are the workers' own (`slots`,
    measured); targetBacklogPerReplica plays no part here.
    """
    if rates is None or rates.service_seconds <= 0:
        want, why = backlog(scaling, d)
        return want, f"{why} (waitTime: no rates measured yet)"
    target = scaling.target_wait_seconds
    need, why = work_slots(target, d, rates)
    # No job anywhere: keep only whole replicas' worth of expected load, so a
    # rate decaying toward zero does not hold one pod up forever.
    want = max(1, math.ceil(need / slots - 1e-9)) if d.jobs > 0 else math.floor(need / slots)
    return want, f"wait target {target:g}s: {why} / {slots} per replica -> {want}"


def recommend(
    scaling: ScalingSpec, d: Demand, rates: Rates | None, slots: int = 1
) -> tuple[int, str]:
    if scaling.policy == ScalingPolicy.wait_time:
        return wait_time(scaling, d, rates, slots)
    return backlog(scaling, d, rates, slots)
