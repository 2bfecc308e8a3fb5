"""The native queueworker layout (worker/queueworker/worker/keys.py).

A native worker keeps every key (queues, heartbeats, counters) under one
prefix, ``QUEUEWORKER_PREFIX``. `worker_prefix` is the one rule for which
prefix that is for a spec: the Deployment builder and local mode tell the
workers, and the heartbeat and counter readers read there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from queueworker.engine.types import QueueDepth
from queueworker.observe.layouts.base import Command, Reader, age, integer, text
from queueworker.observe.layouts.native_schedules import admin_commands, parse_admin
from queueworker.observe.layouts.native_schedules import queue_prefix as queue_prefix
from queueworker.operator.api import QueueLayout, QueueSpec, QueueWorkerSpec
from queueworker.worker import keys

ADMIN_COMMANDS = 2  # native_schedules.admin_commands: the schedules' first tick, paused

def worker_prefix(spec: QueueWorkerSpec) -> str | None:
    """The prefix the spec's native workers keep their keys under; None: the default.

    A worker has one prefix for all its queues, so the first native queue
    that sets a ``keyPrefix`` names it.
    """
    for q in spec.queues:
        if q.layout == QueueLayout.native and q.key_prefix:
            return q.key_prefix
    return None


def heartbeat_prefix(spec: QueueWorkerSpec) -> str:
    """Where the spec's native workers beat and count (`worker_prefix` or the default)."""
    return worker_prefix(spec) or keys.DEFAULT_PREFIX


class NativeReader(Reader):
    layout = QueueLayout.native

    def commands(self, q: QueueSpec, now: float) -> list[Command]:
        p = queue_prefix(q)
        d, i, s = (f(q.name, p) for f in (keys.delayed, keys.inflight, keys.stats))
        levels = keys.waiting_levels(q.name, p)
        return [
            Command(("ZCARD", i), i),
            # Due delayed jobs are ready now: the workers promote them on their next take.
            Command(("ZCOUNT", d, "-inf", repr(now)), d),
            Command(("ZCARD", d), d),
            Command(("HMGET", s, "enqueued", "completed", "failed", "retried"), s),
            # One list per priority level (keys.waiting), all in this one pipeline: its
            # length, and its oldest id (producers LPUSH, workers take from the right).
            *(Command(("LLEN", w), w) for _, w in levels),
            *(Command(("LINDEX", w, -1), w) for _, w in levels),
            # Last: its schedules' earliest tick and whether it is paused (native_schedules).
            *admin_commands(q, now),
        ]

    def parse(
        self, q: QueueSpec, cmds: Sequence[Command], replies: Sequence[Any], now: float
    ) -> QueueDepth:
        in_flight, due, delayed = (
            integer(r, c.key) for r, c in zip(replies[:3], cmds[:3], strict=True)
        )
        counters = replies[3] if isinstance(replies[3], list | tuple) else [None] * 4
        # A missing stats hash is a queue nothing was ever enqueued to: all zero.
        enq, done, failed, retried = (integer(v, cmds[3].key) for v in counters)
        n = len(keys.PRIORITIES)
        lengths = [integer(r, c.key) for r, c in zip(replies[4:4 + n], cmds[4:4 + n],
                                                     strict=True)]
        enqueued_at = [keys.enqueued_at_from_id(text(r) or "") for r in replies[4 + n:4 + 2 * n]
                       if r is not None]
        ages = [a for a in (age(now, t) for t in enqueued_at) if a is not None]
        # Due relative to the reading; the engine adds its own lead (a pod start).
        admin = parse_admin(q, cmds[-ADMIN_COMMANDS:], replies[-ADMIN_COMMANDS:], now)
        return self.depth(
            q,
            sum(lengths) + due,
            in_flight,
            delayed=delayed - due,
            oldest_age_seconds=max(ages) if ages else None,
            waiting_by_priority=tuple(zip(keys.PRIORITIES, lengths, strict=True)),
            # Every attempt ends as completed, failed or retried; a retry comes back
            # as a new arrival. Rates then see each attempt once on both sides.
            enqueued_total=enq + retried,
            completed_total=done + failed + retried,
            paused=admin.paused,
            schedule_due_in=None if admin.next_due is None else admin.next_due - now,
        )
