"""BullMQ (taskforcesh/bullmq src/classes/queue-keys.ts, src/commands/*.lua).

`bull:Q:wait` LIST (addStandardJob LPUSHes, moveToActive RPOPLPUSHes: the
oldest is at -1), `bull:Q:paused` LIST (pre-v6 pause), `bull:Q:prioritized`
ZSET, `bull:Q:active` LIST (in flight), `bull:Q:delayed` ZSET with score
timestamp_ms * 0x1000 + counter (due when timestamp <= now). Job hash
`bull:Q:ID` has `timestamp` (ms) of creation. keyPrefix replaces `bull`.
Every key read is `<prefix>:Q:*`: on a Redis Cluster, with the hash tag BullMQ
needs there (`{bull}`), one slot, so the oldest job's script runs on one node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from queueworker.engine.types import QueueDepth
from queueworker.observe.layouts.base import Command, Reader, age, integer, oldest_field, text
from queueworker.operator.api import QueueLayout, QueueSpec


class BullMQReader(Reader):
    layout = QueueLayout.bullmq

    def commands(self, q: QueueSpec, now: float) -> list[Command]:
        base = f"{q.key_prefix or 'bull'}:{q.name}"
        wait, paused, prio = f"{base}:wait", f"{base}:paused", f"{base}:prioritized"
        active, delayed = f"{base}:active", f"{base}:delayed"
        due_max = (int(now * 1000) + 1) * 0x1000 - 1
        return [
            Command(("LLEN", wait), wait),
            Command(("LLEN", paused), paused),
            Command(("ZCARD", prio), prio),
            Command(("LLEN", active), active),
            Command(("ZCOUNT", delayed, "-inf", due_max), delayed),
            Command(("ZCARD", delayed), delayed),
            oldest_field(wait, -1, f"{base}:", "timestamp"),
        ]

    def parse(
        self, q: QueueSpec, cmds: Sequence[Command], replies: Sequence[Any], now: float
    ) -> QueueDepth:
        wait, paused, prio, active, due, delayed = (
            integer(r, c.key) for r, c in zip(replies[:6], cmds[:6], strict=True)
        )
        ts = text(replies[6])
        created = int(ts) / 1000.0 if ts and ts.isdigit() else None
        return self.depth(
            q,
            wait + paused + prio + due,
            active,
            delayed=delayed - due,
            oldest_age_seconds=age(now, created),
        )
