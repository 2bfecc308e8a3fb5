"""Largest change allowed per period, the way the HPA's behavior policies work.

The limit is taken from the replica count at the start of the period: the
current count minus the net change made in the last `periodSeconds`. `pods` and
`percent` both given: the one allowing more wins (HPA selectPolicy Max).
"""

from __future__ import annotations

import math
from typing import Any

from queueworker.engine import window
from queueworker.operator.api import RateLimit

Events = list[list[float]]  # [time, signed change]


def load(raw: Any) -> Events:
    return window.pairs(raw)


def prune(events: Events, now: float, keep_seconds: float) -> Events:
    return [e for e in events if now - keep_seconds < e[0] <= now]


def _net(events: Events, now: float, period: float) -> int:
    """Replicas added minus removed in the period (as the HPA counts both since 1.27)."""
    return int(sum(d for t, d in events if t > now - period))


def up_limit(limit: RateLimit | None, current: int, events: Events, now: float) -> int | None:
    """Highest count allowed now, or None for no limit."""
    if limit is None:
        return None
    start = max(0, current - _net(events, now, limit.period_seconds))
    allowed: list[int] = []
    if limit.pods is not None:
        allowed.append(start + limit.pods)
    if limit.percent is not None:
        # A percent of zero replicas is zero: allow one pod so 0 -> N can start.
        allowed.append(max(start + 1, math.ceil(start * (1 + limit.percent / 100))))
    return max(allowed) if allowed else None


def down_limit(limit: RateLimit | None, current: int, events: Events, now: float) -> int | None:
    """Lowest count allowed now, or None for no limit."""
    if limit is None:
        return None
    start = current - _net(events, now, limit.period_seconds)
    allowed: list[int] = []
    if limit.pods is not None:
        allowed.append(start - limit.pods)
    if limit.percent is not None:
        allowed.append(math.floor(start * (1 - limit.percent / 100)))
    return max(0, min(allowed)) if allowed else None
