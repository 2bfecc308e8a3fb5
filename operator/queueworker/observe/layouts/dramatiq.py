"""Dramatiq on its Redis broker (dramatiq/brokers/redis.py, brokers/redis/dispatch.lua).

Keys under the broker's `namespace` (default `dramatiq`; queue spec keyPrefix):
`ns:Q` LIST of message ids (enqueue RPUSHes, fetch LPOPs: the oldest is at
0) and `ns:Q.msgs` HASH id -> encoded message; a fetch moves ids into the
consumer's `ns:__acks__.<worker id>.Q` SET until the message is acked (running
or prefetched into the worker's memory), and every dispatch puts the worker
id in the `ns:__heartbeats__` ZSET. Delayed messages (`send_with_options(delay=)`,
retry backoffs) go to the delay queue `ns:Q.DQ` with `ns:Q.DQ.msgs`; the message
carries `options.eta` (epoch ms). Workers prefetch delay-queue messages into
memory and `ns:__acks__.<worker>.Q.DQ` until their eta, so `Q.DQ.msgs` (not
the `Q.DQ` list) holds every delayed message: those due are ready now (a
worker moves them to `ns:Q` at once), the rest are delayed. `ns:Q.XQ` ZSET
holds dead letters (`other`).

The default encoder is JSON (dramatiq/encoder.py) with `message_timestamp`
in epoch ms: the oldest waiting message's age is measured from it, so for a
message that was delayed or retried it includes the delay. With another
encoder the delayed messages count as delayed and the age is unknown. At most
SCAN delay-queue messages are decoded per poll; beyond them, delayed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from queueworker.engine.types import QueueDepth
from queueworker.observe.layouts.base import Command, LayoutError, Reader, age, integer
from queueworker.operator.api import QueueLayout, QueueSpec

# Messages consumers hold: the ack sets of every worker that has dispatched.
ACKS_LUA = """
local n = 0
for _, w in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  n = n + redis.call('SCARD', ARGV[1] .. ':__acks__.' .. w .. '.' .. ARGV[2])
end
return n
"""
# Delay-queue messages due by ARGV[1] (epoch ms) and the rest: {due, later}.
# At most ARGV[2] messages are decoded per poll (HSCAN); the rest count as later.
DELAYED_LUA = """
local due, seen, cursor = 0, 0, '0'
repeat
  local page = redis.call('HSCAN', KEYS[1], cursor, 'COUNT', 500)
  cursor = page[1]
  for i = 2, #page[2], 2 do
    local ok, m = pcall(cjson.decode, page[2][i])
    local eta = ok and type(m) == 'table' and type(m.options) == 'table' and m.options.eta
    if type(eta) == 'number' and eta <= tonumber(ARGV[1]) then due = due + 1 end
    seen = seen + 1
  end
until cursor == '0' or seen >= tonumber(ARGV[2])
return {due, redis.call('HLEN', KEYS[1]) - due}
"""
SCAN = 10000
# `message_timestamp` of the oldest waiting message, without shipping its body.
OLDEST_LUA = """
local id = redis.call('LINDEX', KEYS[1], 0)
if not id then return false end
local ok, m = pcall(cjson.decode, redis.call('HGET', KEYS[2], id) or '')
if ok and type(m) == 'table' and type(m.message_timestamp) == 'number' then
  return m.message_timestamp
end
return false
"""


class DramatiqReader(Reader):
    layout = QueueLayout.dramatiq

    def commands(self, q: QueueSpec, now: float) -> list[Command]:
        ns = q.key_prefix or "dramatiq"
        queue, beats = f"{ns}:{q.name}", f"{ns}:__heartbeats__"
        delay_msgs, dead = f"{queue}.DQ.msgs", f"{queue}.XQ"
        return [
            Command(("LLEN", queue), queue),
            Command(("EVAL", ACKS_LUA, 1, beats, ns, q.name), beats),
            Command(("EVAL", DELAYED_LUA, 1, delay_msgs, int(now * 1000), SCAN), delay_msgs),
            Command(("ZCARD", dead), dead),
            Command(("EVAL", OLDEST_LUA, 2, queue, f"{queue}.msgs"), f"{queue}.msgs"),
        ]

    def parse(
        self, q: QueueSpec, cmds: Sequence[Command], replies: Sequence[Any], now: float
    ) -> QueueDepth:
        waiting, acked, dead = (integer(replies[i], cmds[i].key) for i in (0, 1, 3))
        pair = replies[2]
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise LayoutError(cmds[2].key, f"expected [due, later], got {pair!r:.60}")
        due, later = (integer(v, cmds[2].key) for v in pair)
        stamp = integer(replies[4], cmds[4].key) if replies[4] is not None else None
        return self.depth(
            q,
            waiting + due,
            acked,
            delayed=later,
            other=dead,
            oldest_age_seconds=age(now, stamp / 1000.0) if stamp else None,
        )
