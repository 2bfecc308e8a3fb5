"""The status write of one QueueWorker, and what of a status is worth one (report.py).

A person reads conditions, replicas and the scale reason: those are written at
once. The numbers that move (backlog, ages, busy pods) at most every
``status_refresh_seconds``, and only when they changed; the engine's memory
alone at most every ``memory_refresh_seconds``, and only when more than its
clock moved (``memory_key``): it is read back only when a loop starts (an
operator restart, a QueueWorker moving to another shard), and the engine ages
what it reads by its own timestamps, so a minute-old memory decides as the
current one would. Idle QueueWorkers then write nothing
(benchmarks/operator_scale/RESULTS.md).
"""

from __future__ import annotations

import time
from typing import Any

from queueworker.operator.cluster import client as kube
from queueworker.operator.cluster import status as st
from queueworker.operator.controller.context import Shared


def shape(value: Any) -> Any:
    """A value with its timestamps blanked: what is worth a status write.

    The engine's memory stamps its entries with the poll time; an idle
    QueueWorker's memory differs at every poll only in those stamps, and
    writing them would cost 1,000 QueueWorkers hundreds of writes a minute.
    A series of timestamped samples (``[[epoch, value], ...]``: the engine's
    arrival ring, its stabilization windows) is its run of values: an idle
    QueueWorker's ring gains and drops a sample of the same value poll after
    poll (7, 8, 7 entries), which is no change either.
    """
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if value and all(_sample(v) for v in value):
            runs: list[Any] = []
            for v in value:
                sample = shape(v[1])
                if not runs or runs[-1] != sample:
                    runs.append(sample)
            return ["samples", *runs]
        return [shape(v) for v in value]
    if isinstance(value, float) and value > 1e9:  # epoch seconds
        return 0.0
    return value


def _sample(value: Any) -> bool:
    return (isinstance(value, list | tuple) and len(value) == 2
            and isinstance(value[0], float | int) and value[0] > 1e9)


def memory_key(memory: Any) -> Any:
    """The engine memory as worth a write of its own: ``shape``, with its smoothed
    rates to two significant digits (a rate decaying after a burst moves at every
    poll for an hour; the engine reads back a rate, not its last digits)."""
    return _rounded(shape(memory))


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, float) and abs(value) >= 1e-3:
        return float(f"{value:.2g}")
    if isinstance(value, float):
        return 0.0
    return value


class StatusWriter:
    """Writes the status when something a person acts on changed; the numbers a person
    reads at most every ``status_refresh_seconds`` and the engine memory alone at most
    every ``memory_refresh_seconds``, each only when it changed."""

    def __init__(self, shared: Shared, namespace: str, name: str) -> None:
        self.shared, self.path = shared, kube.queueworker_status_path(namespace, name)
        self.last_written: dict[str, Any] | None = None
        self.last_written_at = 0.0
        self.last_backlog = 0
        self.last_visible: Any = None  # shape() of the volatile numbers last written
        self.last_memory: Any = None  # memory_key() of the engine memory last written

    async def write(self, important: dict[str, Any], *,
                    volatile: dict[str, Any] | None = None, memory: dict[str, Any] | None = None,
                    force: bool = False) -> bool:
        """Write if due; False when a change waits for its refresh (call again later)."""
        comparable = {**important, "conditions": st.comparable(important.get("conditions", []))}
        visible = shape(volatile) if volatile is not None else self.last_visible
        kept = memory_key(memory) if memory is not None else self.last_memory
        since = time.monotonic() - self.last_written_at
        config = self.shared.config
        waiting = ((visible != self.last_visible, config.status_refresh_seconds),
                   (kept != self.last_memory, config.memory_refresh_seconds))
        due = any(changed and since >= refresh for changed, refresh in waiting)
        if self.last_written == comparable and not force and not due:
            return not any(changed for changed, _ in waiting)
        body = {**important, **(volatile or {})}
        if memory is not None:
            body["engineMemory"] = memory
        await self.shared.kube.patch(self.path, {"status": body}, operation="patch_status")
        self.last_written = comparable
        self.last_visible, self.last_memory = visible, kept
        self.last_backlog = int((volatile or {}).get("backlog") or 0)
        self.last_written_at = time.monotonic()
        return True
