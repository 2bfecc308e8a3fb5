"""Arrival rate and mean service time, measured from the queues' counters.

The layouts that keep monotonic counters (native: enqueued, completed) give
deltas between two polls. Arrival rate is enqueued/second; mean service time
comes from Little's law applied to the jobs in service: in_flight = throughput
x service time, so S = mean in_flight / completed per second. Each is smoothed
with an exponential moving average whose time constant is a minute, so a
single odd poll does not move the fleet, and S is the ratio of the two
averages, both updated at every poll, over a span of at least five service
times. (Averaging per-poll ratios only over the
polls that saw a completion, as this module once did, reads 4-minute jobs as
20-second ones: 4 in flight and one completion in a 5 s poll give 4 x 5 / 1.)
The ratio also survives an idle spell: both averages decay by the same factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

TAU_SECONDS = 60.0
SERVICE_WINDOWS = 5.0
# A week: longer "service times" come only from averages decayed to nothing
# (or memory edited by hand); they must not overflow the sizing.
MAX_SERVICE_SECONDS = 7 * 86400.0
MAX_ARRIVALS_PER_SECOND = 1e6


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
    lam, busy, thr = _num(prev, "lam"), _num(prev, "busy"), _num(prev, "thr")
    if t0 is None or e0 is None or c0 is None or i0 is None:
        return mem, None
    dt = now - t0
    de, dc = enqueued - e0, completed - c0
    if dt <= 0 or de < 0 or dc < 0:
        # Same instant, clock went back, or counters reset (Redis flushed): re-baseline.
        return mem, None
    w = 1.0 - math.exp(-dt / TAU_SECONDS)
    # Bounded: a rate from hand-edited or foreign memory must not overflow the sizing.
    lam = min(max(_ema(lam, de / dt, w), 0.0), MAX_ARRIVALS_PER_SECOND)
    # The service time averages over at least SERVICE_WINDOWS service times: over
    # a shorter span the jobs completing in it ran mostly before it (a fleet
    # draining 6-minute jobs reads as 8-second ones with a one-minute average).
    svc_prev = _service(busy, thr) or 0.0
    w_svc = 1.0 - math.exp(-dt / max(TAU_SECONDS, SERVICE_WINDOWS * svc_prev))
    busy = _ema(busy, (i0 + in_flight) / 2.0, w_svc)
    thr = _ema(thr, dc / dt, w_svc)
    mem.update(lam=round(lam, 9), busy=round(busy, 9), thr=round(thr, 9))
    svc = _service(busy, thr)
    return mem, (None if svc is None else Rates(lam, svc))


def _service(busy: float | None, thr: float | None) -> float | None:
    """Mean service time from the two averages, when both are positive."""
    if not busy or not thr or busy <= 0 or thr <= 0:
        return None
    return min(busy / thr, MAX_SERVICE_SECONDS)


def _ema(old: float | None, sample: float, weight: float) -> float:
    return sample if old is None else old + weight * (sample - old)


def moved(raw: Any, enqueued: int | None, completed: int | None) -> bool:
    """Whether the counters show a job enqueued or completed since the last reading.

    Jobs that arrive and finish between two polls are never seen waiting or in
    flight; the counters still show them.
    """
    prev = raw if isinstance(raw, dict) else {}
    e0, c0 = _num(prev, "enq"), _num(prev, "done")
    if enqueued is None or completed is None or e0 is None or c0 is None:
        return False
    return enqueued > e0 or completed > c0
