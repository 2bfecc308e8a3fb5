"""`scaling.minReplicasSchedules` at one instant: the floor now, and when it
next changes. Pure: cron ticks from cronsim, zones from zoneinfo.

A window is open from its last `start` tick up to its next `end` tick (both in
its time zone): open when the latest `start` at or before now is later than
the latest `end`. A tick at exactly now counts as passed, so a window opens at
its start minute. The answer is kept in the memory until the next tick of any
window (or a change of the windows), so most polls compute nothing.
"""

from __future__ import annotations

import math
import zlib
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from cronsim import CronSim

from queueworker.operator.api import MinReplicasSchedule, ScalingSpec


def _key(windows: list[MinReplicasSchedule]) -> int:
    text = "|".join(f"{w.start};{w.end};{w.timezone};{w.min_replicas};{w.name}" for w in windows)
    return zlib.crc32(text.encode())


def _state(w: MinReplicasSchedule, now: float) -> tuple[bool, float]:
    """(open now, epoch seconds of its next tick that changes that)."""
    at = datetime.fromtimestamp(now + 1, ZoneInfo(w.timezone))  # a tick at now has passed
    last_start = next(CronSim(w.start, at, reverse=True), None)
    last_end = next(CronSim(w.end, at, reverse=True), None)
    is_open = last_start is not None and (last_end is None or last_start > last_end)
    upcoming = next(CronSim(w.end if is_open else w.start, at), None)
    return is_open, (math.inf if upcoming is None else upcoming.timestamp())


def floor(scaling: ScalingSpec, now: float, raw: Any) -> tuple[int, str, dict[str, Any]]:
    """(minReplicas now, reason part, memory to keep); `now` in epoch seconds."""
    windows = scaling.min_replicas_schedules
    if not windows:
        return scaling.min_replicas, "", {}
    mem = raw if isinstance(raw, dict) else {}
    key = _key(windows)
    u, t, names = mem.get("u"), mem.get("t"), mem.get("o")
    until = float(u) if isinstance(u, int | float) else -math.inf
    at = float(t) if isinstance(t, int | float) else math.inf
    if not (mem.get("k") == key and at <= now < until and isinstance(names, list)):
        names, until, at = [], math.inf, now
        for i, w in enumerate(windows):
            is_open, change = _state(w, now)
            until = min(until, change)
            if is_open:
                names.append(i)
    open_ = [windows[i] for i in names if isinstance(i, int) and 0 <= i < len(windows)]
    out: dict[str, Any] = {"k": key, "t": at, "o": [windows.index(w) for w in open_]}
    if math.isfinite(until):
        out["u"] = until
    best = max(open_, key=lambda w: w.min_replicas, default=None)
    if best is None or best.min_replicas <= scaling.min_replicas:
        return scaling.min_replicas, "", out
    label = f"{best.name!r} " if best.name else ""
    return best.min_replicas, (
        f"; schedule {label}({best.start} to {best.end}, {best.timezone}) open: "
        f"minReplicas {best.min_replicas}"
    ), out
