"""RQ (rq/queue.py, rq/registry.py, rq/intermediate_queue.py).

`rq:queue:Q` LIST of ids (RPUSH, taken from the left: the oldest is at 0);
`rq:queue:Q:intermediate` ids taken but not yet registered as started;
`rq:wip:Q` ZSET StartedJobRegistry; `rq:scheduled:Q` ZSET of scheduled ids
(score: epoch seconds when to enqueue). `rq:job:ID` HASH holds `enqueued_at` as
'%Y-%m-%dT%H:%M:%S.%fZ' (rq/utils.py utcformat). keyPrefix replaces `rq`
(RQ_KEY_PREFIX).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from queueworker.engine.types import QueueDepth
from queueworker.observe.layouts.base import Command, Reader, age, integer, oldest_field, text
from queueworker.operator.api import QueueLayout, QueueSpec


def parse_rq_time(value: str | None) -> float | None:
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    return None


class RQReader(Reader):
    layout = QueueLayout.rq

    def commands(self, q: QueueSpec, now: float) -> list[Command]:
        p = q.key_prefix or "rq"
        queue = f"{p}:queue:{q.name}"
        inter, wip, sched = f"{queue}:intermediate", f"{p}:wip:{q.name}", f"{p}:scheduled:{q.name}"
        return [
            Command(("LLEN", queue), queue),
            Command(("LLEN", inter), inter),
            Command(("ZCARD", wip), wip),
            Command(("ZCARD", sched), sched),
            # Due scheduled jobs are ready now: the scheduler enqueues them on its next pass.
            Command(("ZCOUNT", sched, "-inf", repr(now)), sched),
            oldest_field(queue, 0, f"{p}:job:", "enqueued_at"),
        ]

    def parse(
        self, q: QueueSpec, cmds: Sequence[Command], replies: Sequence[Any], now: float
    ) -> QueueDepth:
        waiting, inter, wip, sched, due = (
            integer(r, c.key) for r, c in zip(replies[:5], cmds[:5], strict=True)
        )
        return self.depth(
            q,
            waiting + due,
            inter + wip,
            delayed=sched - due,
            oldest_age_seconds=age(now, parse_rq_time(text(replies[5]))),
        )
