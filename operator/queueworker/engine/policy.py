"""How many replicas the demand asks for, before bounds and behavior.

Demand is waiting plus in-flight jobs: a busy worker is demand, not spare
capacity (counting only waiting jobs is why KEDA+HPA scales busy pods away).
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


def backlog(scaling: ScalingSpec, d: Demand) -> tuple[int, str]:
    target = scaling.target_backlog_per_replica
    want = math.ceil(d.jobs / target)
    return want, (
        f"backlog {d.jobs} (waiting {d.waiting}, in flight {d.in_flight}) "
        f"/ target {target} per replica -> {want}"
    )


def wait_time(scaling: ScalingSpec, d: Demand, rates: Rates | None) -> tuple[int, str]:
    """Size for the target wait from measured rates (Little's law).

    Steady load needs a = arrival x service busy job slots; square-root staffing
    (a + sqrt(a)) keeps the chance that an arriving job finds no free slot
    small without paying for a fixed utilisation margin. On top, the jobs
    already waiting must be cleared within the target: waiting x service /
    target more slots. Job slots per replica is targetBacklogPerReplica.
    """
    if rates is None or rates.service_seconds <= 0:
        want, why = backlog(scaling, d)
        return want, f"{why} (waitTime: no rates measured yet)"
    target = scaling.target_wait_seconds
    lam, svc = rates.arrival_per_second, rates.service_seconds
    load = lam * svc
    steady = load + math.sqrt(load) if load > 0 else 0.0
    drain = d.waiting * svc / target
    slots = max(steady, float(d.in_flight)) + drain
    per = scaling.target_backlog_per_replica
    # No job anywhere: keep only whole replicas' worth of expected load, so a
    # rate decaying toward zero does not hold one pod up forever.
    want = max(1, math.ceil(slots / per - 1e-9)) if d.jobs > 0 else math.floor(slots / per)
    return want, (
        f"wait target {target:g}s: arrivals {lam:.2f}/s x service {svc:.1f}s = "
        f"{load:.1f} busy (+margin {steady - load:.1f}), in flight {d.in_flight}, "
        f"waiting {d.waiting} drain +{drain:.1f} -> {slots:.1f} slots / {per} per replica "
        f"-> {want}"
    )


def recommend(scaling: ScalingSpec, d: Demand, rates: Rates | None) -> tuple[int, str]:
    if scaling.policy == ScalingPolicy.wait_time:
        return wait_time(scaling, d, rates)
    return backlog(scaling, d)
