"""Sidekiq (sidekiq/sidekiq lib/sidekiq/client.rb, fetch.rb, api.rb, scheduled.rb).

`queue:Q` LIST of JSON jobs (client LPUSH, server BRPOP: the oldest is at -1;
`Queue#latency` reads `enqueued_at` of LINDEX -1). `enqueued_at` is epoch
seconds (float) up to Sidekiq 7 and epoch milliseconds (integer) from 8.
`schedule` and `retry` are global ZSETs of JSON jobs scored by the time they
are due; the poller moves due ones to their queue, so they count as waiting.
Jobs running now are in `<identity>:work` HASHes (tid -> JSON with `queue`)
for every identity in the `processes` SET. keyPrefix is a redis-namespace
namespace (`ns:` before every key).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from queueworker.engine.types import QueueDepth
from queueworker.observe.layouts.base import Command, Reader, age, integer, text
from queueworker.operator.api import QueueLayout, QueueSpec

# Due jobs of one queue in a global ZSET, and running jobs of one queue across
# all processes: both need the JSON, so filter in the server.
DUE_LUA = """
local n = 0
for _, v in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, 10000)) do
  local ok, j = pcall(cjson.decode, v)
  if ok and type(j) == 'table' and j['queue'] == ARGV[1] then n = n + 1 end
end
return n
"""
BUSY_LUA = """
local n = 0
for _, p in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  for _, v in ipairs(redis.call('HVALS', ARGV[2] .. p .. ':work')) do
    local ok, w = pcall(cjson.decode, v)
    if ok and type(w) == 'table' and w['queue'] == ARGV[1] then n = n + 1 end
  end
end
return n
"""


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
            Command(("EVAL", DUE_LUA, 1, sched, q.name, repr(now)), sched),
            Command(("EVAL", DUE_LUA, 1, retry, q.name, repr(now)), retry),
            Command(("EVAL", BUSY_LUA, 1, procs, q.name, ns), procs),
            Command(("LINDEX", queue, -1), queue),
        ]

    def parse(
        self, q: QueueSpec, cmds: Sequence[Command], replies: Sequence[Any], now: float
    ) -> QueueDepth:
        waiting, sched, retry, busy = (
            integer(r, c.key) for r, c in zip(replies[:4], cmds[:4], strict=True)
        )
        return self.depth(
            q,
            waiting + sched + retry,
            busy,
            oldest_age_seconds=age(now, enqueued_at(text(replies[4]))),
        )
