"""Arrival rate and mean service time, measured from the queues' counters.

The layouts that keep monotonic counters (native: enqueued, completed) give
deltas between two polls. Arrival rate is enqueued/second; mean service time
comes from Little's law applied to the jobs in service: in_flight = throughput
x service time, so S = mean in_flight / completed per second. Both are
smoothed with an exponential moving average whose time constant is a minute,
so a single odd poll does not move the fleet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

TAU_SECONDS = 60.0


@dataclass(frozen=True)
class Rates:
    arrival_per_second: float
    service_seconds: float


def _num(raw: dict[str, Any], key: str) -> float | None:
    v = raw.get(key)
    if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


def update(
    raw: Any,
    now: float,
    enqueued: int | None,
    completed: int | None,
    in_flight: int,
) -> tuple[dict[str, Any], Rates | None]:
    """Fold one reading into the memory `raw`; return the new memory and rates if known."""
    prev = raw if isinstance(raw, dict) else {}
    if enqueued is None or completed is None:
        return {}, None
    mem: dict[str, Any] = {"t": now, "enq": enqueued, "done": completed, "inf": in_flight}
    t0, e0, c0, i0 = (_num(prev, k) for k in ("t", "enq", "done", "inf"))
    lam, svc = _num(prev, "lam"), _num(prev, "svc")
    if t0 is None or e0 is None or c0 is None or i0 is None:
        return mem, None
    dt = now - t0
    de, dc = enqueued - e0, completed - c0
    if dt <= 0 or de < 0 or dc < 0:
        # Same instant, clock went back, or counters reset (Redis flushed): re-baseline.
        return mem, None
    w = 1.0 - math.exp(-dt / TAU_SECONDS)
    lam_now = de / dt
    lam = lam_now if lam is None else lam + w * (lam_now - lam)
    if dc > 0:
        svc_now = ((i0 + in_flight) / 2.0) * dt / dc
        svc = svc_now if svc is None else svc + w * (svc_now - svc)
    mem["lam"] = round(lam, 6)
    if svc is not None:
        mem["svc"] = round(svc, 6)
        return mem, Rates(lam, svc)
    return mem, None
