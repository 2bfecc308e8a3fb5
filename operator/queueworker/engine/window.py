"""Sliding-window extremes of past recommendations, stored small.

The HPA keeps every recommendation of its stabilization windows. We only need
the highest (scale-down window) and the lowest (scale-up window) of each, so
each window is a monotonic queue: an entry that is dominated by a newer one
can never be the extreme again and is dropped. Persisted in the QueueWorker's
status, so it must stay short and JSON-safe: lists of [time, value].
"""

from __future__ import annotations

from typing import Any

# More entries than this only happen with a long window and a load that keeps
# rising (or falling) a little at every poll; the oldest is then dropped, which
# shortens the window slightly but never lets the extreme flap.
MAX_ENTRIES = 32

Window = list[list[float]]


def load(raw: Any) -> Window:
    """A window from memory, tolerating anything malformed (start empty)."""
    return pairs(raw)


def pairs(raw: Any) -> list[list[float]]:
    """[[number, number], ...] from JSON memory; malformed items are dropped."""
    out: list[list[float]] = []
    if not isinstance(raw, list):
        return out
    for item in raw:
        try:
            a, b = item
            out.append([float(a), float(b)])
        except (TypeError, ValueError):
            continue
    return out


def push(win: Window, now: float, value: int, seconds: float, keep_max: bool) -> int:
    """Add `value` at `now`, drop what fell out of the window, return the extreme.

    keep_max: the window answers its highest value (scale-down), else its lowest.
    """
    # A clock that went back (operator restarted with another clock): start over.
    if win and win[-1][0] > now:
        win.clear()
    cutoff = now - seconds
    while win and win[0][0] <= cutoff:
        win.pop(0)
    if keep_max:
        while win and win[-1][1] <= value:
            win.pop()
    else:
        while win and win[-1][1] >= value:
            win.pop()
    win.append([now, float(value)])
    if len(win) > MAX_ENTRIES:
        del win[0 : len(win) - MAX_ENTRIES]
    return int(win[0][1])
