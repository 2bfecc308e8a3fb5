"""arq (arq/connections.py enqueue_job, arq/worker.py, arq/constants.py).

A queue is one ZSET whose key is arq's `queue_name` (default `arq:queue`; the
spec's name is that key, and arq has no prefix to set): member the job id,
score the epoch ms at which it may run (`_defer_until`/`_defer_by`, a
`Retry(defer=)` adds to it). A job stays in the ZSET while it runs; a worker
that takes it sets `arq:in-progress:<id>` (`start_jobs`), and finishing
removes both. So, at `now`: members due and with an in-progress key are in
flight, the other due members wait (their score is when they became
runnable: the oldest age), and members scored later are delayed.
`arq:in-progress:` is a constant in arq, not per queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from queueworker.engine.types import QueueDepth
from queueworker.observe.layouts.base import Command, LayoutError, Reader, age, integer
from queueworker.operator.api import QueueLayout, QueueSpec

IN_PROGRESS = "arq:in-progress:"
# Workers start the lowest scores first (`_poll_iteration`), so the running
# jobs are among the first due ones: look for in-progress keys among the
# first SCAN due members only, which bounds the work of one poll.
SCAN = 10000
# {due, in flight among them, score of the oldest due job not in flight or false}
DUE_LUA = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[3])
local busy, oldest = 0, false
for i = 1, #ids, 2 do
  if redis.call('EXISTS', ARGV[2] .. ids[i]) == 1 then
    busy = busy + 1
  elseif not oldest then
    oldest = ids[i + 1]
  end
end
return {redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[1]), busy, oldest}
"""


class ArqReader(Reader):
    layout = QueueLayout.arq

    def commands(self, q: QueueSpec, now: float) -> list[Command]:
        now_ms = int(now * 1000)
        return [
            Command(("EVAL", DUE_LUA, 1, q.name, now_ms, IN_PROGRESS, SCAN), q.name),
            Command(("ZCARD", q.name), q.name),
        ]

    def parse(
        self, q: QueueSpec, cmds: Sequence[Command], replies: Sequence[Any], now: float
    ) -> QueueDepth:
        key = cmds[0].key
        due_reply, total = replies[0], integer(replies[1], cmds[1].key)
        if due_reply is None:  # no such key: an empty queue
            due_reply = [0, 0, None]
        if not isinstance(due_reply, list | tuple) or len(due_reply) != 3:
            raise LayoutError(key, f"expected [due, busy, oldest], got {due_reply!r:.60}")
        due, busy = integer(due_reply[0], key), integer(due_reply[1], key)
        oldest = due_reply[2]
        try:
            oldest_s = float(oldest) / 1000.0 if oldest else None
        except (TypeError, ValueError):
            raise LayoutError(key, f"expected a score, got {oldest!r:.60}") from None
        return self.depth(
            q,
            due - busy,
            busy,
            delayed=total - due,
            oldest_age_seconds=age(now, oldest_s),
        )
