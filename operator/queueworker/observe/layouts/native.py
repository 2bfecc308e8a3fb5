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
from queueworker.operator.api import QueueLayout, QueueSpec, QueueWorkerSpec
from queueworker.worker import keys


def queue_prefix(q: QueueSpec) -> str:
    """The prefix of one native queue's keys."""
    return q.key_prefix or keys.DEFAULT_PREFIX


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
        w, d, i, s = (f(q.name, p) for f in (keys.waiting, keys.delayed, keys.inflight, keys.stats))
        return [
            Command(("LLEN", w), w),
            Command(("ZCARD", i), i),
            # Due delayed jobs are ready now: the workers promote them on their next take.
            Command(("ZCOUNT", d, "-inf", repr(now)), d),
            Command(("ZCARD", d), d),
            # Producers LPUSH and workers take from the right: the oldest is at -1.
            Command(("LINDEX", w, -1), w),
            Command(("HMGET", s, "enqueued", "completed", "failed", "retried"), s),
        ]

    def parse(
        self, q: QueueSpec, cmds: Sequence[Command], replies: Sequence[Any], now: float
    ) -> QueueDepth:
        waiting, in_flight, due, delayed = (
            integer(r, c.key) for r, c in zip(replies[:4], cmds[:4], strict=True)
        )
        oldest = replies[4]
        counters = replies[5] if isinstance(replies[5], list | tuple) else [None] * 4
        # A missing stats hash is a queue nothing was ever enqueued to: all zero.
        enq, done, failed, retried = (integer(v, cmds[5].key) for v in counters)
        return self.depth(
            q,
            waiting + due,
            in_flight,
            delayed=delayed - due,
            oldest_age_seconds=age(now, keys.enqueued_at_from_id(text(oldest) or ""))
            if oldest is not None
            else None,
            # Every attempt ends as completed, failed or retried; a retry comes back
            # as a new arrival. Rates then see each attempt once on both sides.
            enqueued_total=enq + retried,
            completed_total=done + failed + retried,
        )
