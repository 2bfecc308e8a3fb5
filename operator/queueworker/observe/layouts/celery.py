"""Celery on the Redis broker (kombu/transport/redis.py).

A queue is up to four LISTs, one per priority step (PRIORITY_STEPS [0, 3, 6,
9]): `q`, `q\\x06\\x163`, `q\\x06\\x166`, `q\\x06\\x169` (`Channel._q_for_pri`,
sep '\\x06\\x16'). Messages a worker took but has not acked sit in the global
`unacked` HASH as JSON `[message, exchange, routing_key]` (`QoS.append`); with
the default routing the routing key is the queue name. `global_keyprefix`
prefixes every key (queue spec keyPrefix).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from queueworker.engine.types import QueueDepth
from queueworker.observe.layouts.base import Command, Reader, integer
from queueworker.operator.api import QueueLayout, QueueSpec

SEP = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)

# Count unacked messages routed to this queue without shipping their bodies.
UNACKED_LUA = """
local n = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  local ok, m = pcall(cjson.decode, v)
  if ok and type(m) == 'table' and m[3] == ARGV[1] then n = n + 1 end
end
return n
"""


def list_keys(q: QueueSpec) -> list[str]:
    base = (q.key_prefix or "") + q.name
    return [base if p == 0 else f"{base}{SEP}{p}" for p in PRIORITY_STEPS]


class CeleryReader(Reader):
    layout = QueueLayout.celery

    def commands(self, q: QueueSpec, now: float) -> list[Command]:
        unacked = (q.key_prefix or "") + "unacked"
        cmds = [Command(("LLEN", k), k) for k in list_keys(q)]
        cmds.append(Command(("EVAL", UNACKED_LUA, 1, unacked, q.name), unacked))
        return cmds

    def parse(
        self, q: QueueSpec, cmds: Sequence[Command], replies: Sequence[Any], now: float
    ) -> QueueDepth:
        counts = [integer(r, c.key) for r, c in zip(replies, cmds, strict=True)]
        return self.depth(q, sum(counts[:-1]), counts[-1])
