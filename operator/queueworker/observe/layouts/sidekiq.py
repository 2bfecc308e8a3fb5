"""Sidekiq (sidekiq/sidekiq lib/sidekiq/client.rb, fetch.rb, api.rb, scheduled.rb).

`queue:Q` LIST of JSON jobs (client LPUSH, server BRPOP: the oldest is at -1;
`Queue#latency` reads `enqueued_at` of LINDEX -1). `enqueued_at` is epoch
seconds (float) up to Sidekiq 7 and epoch milliseconds (integer) from 8.
`schedule` and `retry` are global ZSETs of JSON jobs scored by the epoch
seconds at which they are due (client.rb `atomic_push`, job_retry.rb); the
poller moves due ones to their queue, so due ones count as waiting and later
ones as delayed. Jobs running now are in the `<identity>:work` HASH (6.5+;
`<identity>:workers` up to 6.4, launcher.rb `❤`) of every identity in the
`processes` SET, tid -> JSON with `queue`. keyPrefix is a redis-namespace
namespace (`ns:` before every key).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from queueworker.engine.types import QueueDepth
from queueworker.observe.layouts.base import Command, LayoutError, Reader, age, integer, text
from queueworker.operator.api import QueueLayout, QueueSpec

# Jobs of one queue in a global ZSET, due and later, and running jobs of one
# queue across all processes: all need the JSON, so filter in the server. At
# most SCAN entries of a ZSET are looked at per poll, the soonest first.
SCAN = 10000
SCHEDULED_LUA = """
local due, later = 0, 0
local now = tonumber(ARGV[2])
local entries = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1, 'WITHSCORES')
for i = 1, #entries, 2 do
  local ok, j = pcall(cjson.decode, entries[i])
  if ok and type(j) == 'table' and j['queue'] == ARGV[1] then
    if tonumber(entries[i + 1]) <= now then due = due + 1 else later = later + 1 end
  end
end
return {due, later}
"""
BUSY_LUA = """
local n = 0
for _, p in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  for _, suffix in ipairs({':work', ':workers'}) do
    for _, v in ipairs(redis.call('HVALS', ARGV[2] .. p .. suffix)) do
      local ok, w = pcall(cjson.decode, v)
      if ok and type(w) == 'table' and w['queue'] == ARGV[1] then n = n + 1 end
    end
  end
end
return n
"""


def due_later(reply: Any, key: str) -> tuple[int, int]:
    if not isinstance(reply, list | tuple) or len(reply) != 2:
        raise LayoutError(key, f"expected [due, later], got {reply!r:.60}")
    return integer(reply[0], key), integer(reply[1], key)


def enqueued_at(job: str | None) -> float | None:
    if not job:
        return None
    try:
        doc = json.loads(job)
    except ValueError:
        return None
    value = doc.get("enqueued_at") if isinstance(doc, dict) else None
    if not isinstance(value, int | float):
        return None
    # Sidekiq 8 writes milliseconds; seconds since 1970 stay below 1e11 until 5138.
    return value / 1000.0 if value > 1e11 else float(value)


class SidekiqReader(Reader):
    layout = QueueLayout.sidekiq

    def commands(self, q: QueueSpec, now: float) -> list[Command]:
        ns = f"{q.key_prefix}:" if q.key_prefix else ""
        queue, sched, retry, procs = (
            f"{ns}queue:{q.name}", f"{ns}schedule", f"{ns}retry", f"{ns}processes",
        )
        return [
            Command(("LLEN", queue), queue),
            Command(("EVAL", SCHEDULED_LUA, 1, sched, q.name, repr(now), SCAN), sched),
            Command(("EVAL", SCHEDULED_LUA, 1, retry, q.name, repr(now), SCAN), retry),
            Command(("EVAL", BUSY_LUA, 1, procs, q.name, ns), procs),
            Command(("LINDEX", queue, -1), queue),
        ]

    def parse(
        self, q: QueueSpec, cmds: Sequence[Command], replies: Sequence[Any], now: float
    ) -> QueueDepth:
        waiting, busy = integer(replies[0], cmds[0].key), integer(replies[3], cmds[3].key)
        sched_due, sched_later = due_later(replies[1], cmds[1].key)
        retry_due, retry_later = due_later(replies[2], cmds[2].key)
        return self.depth(
            q,
            waiting + sched_due + retry_due,
            busy,
            delayed=sched_later + retry_later,
            oldest_age_seconds=age(now, enqueued_at(text(replies[4]))),
        )
