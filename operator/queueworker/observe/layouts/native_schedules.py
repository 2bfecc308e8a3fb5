"""Beside a native queue's depth: its schedules' next tick and whether it is paused.

A QueueWorker at zero replicas has no worker to turn a due schedule into a
job, so the queue looks empty exactly when work is due: the operator should
count a due tick as demand (one replica) and the woken worker's scheduler
enqueues it (worker/scheduler.py). A paused queue (``queueworker queue
pause``) takes no jobs, so it should not count as demand at all.

Like the layout readers these only build commands and parse replies: the
native reader (native.py) appends them to its commands, so they go into the
same pipeline as the depths (observe/layouts/read.py, coalesced per Redis by
observe/batch.py), and its QueueDepth carries ``paused`` and
``schedule_due_in``; the engine decides (engine/queue_admin.py), waking a
pod one measured pod start ahead of the tick.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from queueworker.observe.layouts.base import Command, LayoutError, text
from queueworker.operator.api import QueueSpec
from queueworker.worker import keys
from queueworker.worker.admin import paused_key
from queueworker.worker.schedules import queue_schedules


def queue_prefix(q: QueueSpec) -> str:
    """The prefix of one native queue's keys (native.py re-exports it)."""
    return q.key_prefix or keys.DEFAULT_PREFIX


@dataclass(frozen=True)
class QueueAdminState:
    paused: bool
    next_due: float | None  # epoch seconds of the queue's earliest tick; None: no active one
    due_now: bool  # a tick is due (within ``wake_before`` seconds): wake a worker for it


def admin_commands(q: QueueSpec, now: float) -> list[Command]:
    p = queue_prefix(q)
    zs, pk = queue_schedules(q.name, p), paused_key(p)
    return [
        # The earliest tick; a paused schedule has the score +inf (never due).
        Command(("ZRANGE", zs, 0, 0, "WITHSCORES"), zs),
        Command(("SISMEMBER", pk, q.name), pk),
    ]


def _first_score(reply: Any, key: str) -> float | None:
    if not reply:
        return None
    if not isinstance(reply, list | tuple):
        raise LayoutError(key, f"expected a ZRANGE reply, got {type(reply).__name__}")
    first = reply[0]
    raw = first[1] if isinstance(first, list | tuple) else (reply[1] if len(reply) > 1 else None)
    try:
        score = float(text(raw) or "nan") if not isinstance(raw, int | float) else float(raw)
    except ValueError:
        raise LayoutError(key, f"not a score: {raw!r}") from None
    if math.isnan(score):
        raise LayoutError(key, f"not a score: {raw!r}")
    return None if math.isinf(score) else score


def parse_admin(q: QueueSpec, cmds: Sequence[Command], replies: Sequence[Any], now: float,
                wake_before: float = 0.0) -> QueueAdminState:
    """``wake_before``: seconds ahead of a tick that count as due (a pod's start time)."""
    next_due = _first_score(replies[0], cmds[0].key)
    paused = bool(int(replies[1] or 0))
    due = next_due is not None and next_due <= now + wake_before
    return QueueAdminState(paused=paused, next_due=next_due, due_now=due)
