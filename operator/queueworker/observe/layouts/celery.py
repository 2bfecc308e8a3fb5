"""Celery on the Redis broker (kombu/transport/redis.py, celery/app/amqp.py).

A queue is up to four LISTs, one per priority step (PRIORITY_STEPS [0, 3, 6,
9]): `q`, `q\\x06\\x163`, `q\\x06\\x166`, `q\\x06\\x169` (`Channel._q_for_pri`,
sep '\\x06\\x16'); producers LPUSH JSON messages and workers BRPOP them.
Messages a worker took but has not acked sit in the global `unacked` HASH as
JSON `[message, exchange, routing_key]` (`QoS.append`); with the default
routing the routing key is the queue name. `global_keyprefix` prefixes every
key (queue spec keyPrefix).

A task sent with `eta=` or `countdown=` carries `headers.eta` as an ISO 8601
time (`as_task_v2`, protocol 2). A worker takes it at once and holds it,
unacked, until then; when a worker stops it is restored to the list
(`restore_at_shutdown`, RPUSH: next in line). So an eta in the future is
delayed wherever the message sits; a due one is waiting in a list or in
flight in `unacked`. With the default early ack a running task has already
left `unacked`: Redis has no trace of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from queueworker.engine.types import QueueDepth
from queueworker.observe.layouts.base import Command, LayoutError, Reader, integer, text
from queueworker.operator.api import QueueLayout, QueueSpec

SEP = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
# Messages looked at per list and poll, from the end workers take next, where
# a stopping worker puts back the eta tasks it held. Beyond that, a list's
# messages count as waiting unlooked: a backlog that long is demand anyway,
# and each message looked at costs the server a copy (about 3 us per KiB).
SCAN = 2000

# The etas of this queue's messages, in the lists (KEYS[1..n-1]) and unacked
# (KEYS[n]), without shipping bodies: a plain string search picks the few
# messages worth decoding (kombu's json writes `"eta": "..."`, compact encoders
# `"eta":"..."`; no eta is `"eta": null`).
# Reply: {unacked without eta, {list etas}, {unacked etas}}.
ETA_LUA = """
local function eta_of(m)
  local h = type(m) == 'table' and m.headers
  if type(h) == 'table' and type(h.eta) == 'string' then return h.eta end
  return nil
end
local listed, held, plain = {}, {}, 0
for k = 1, #KEYS - 1 do
  for _, v in ipairs(redis.call('LRANGE', KEYS[k], -tonumber(ARGV[2]), -1)) do
    if string.find(v, '"eta": "', 1, true) or string.find(v, '"eta":"', 1, true) then
      local ok, m = pcall(cjson.decode, v)
      local eta = ok and eta_of(m)
      if eta then listed[#listed + 1] = eta end
    end
  end
end
for _, v in ipairs(redis.call('HVALS', KEYS[#KEYS])) do
  local ok, e = pcall(cjson.decode, v)
  if ok and type(e) == 'table' and e[3] == ARGV[1] then
    local eta = eta_of(e[1])
    if eta then held[#held + 1] = eta else plain = plain + 1 end
  end
end
return {plain, listed, held}
"""


def list_keys(q: QueueSpec) -> list[str]:
    base = (q.key_prefix or "") + q.name
    return [base if p == 0 else f"{base}{SEP}{p}" for p in PRIORITY_STEPS]


def eta_seconds(value: Any, key: str) -> float:
    """Epoch seconds of a `headers.eta` (naive times are UTC, as Celery's default is)."""
    raw = text(value) or ""
    try:
        t = datetime.fromisoformat(raw)
    except ValueError:
        raise LayoutError(key, f"expected an ISO 8601 eta, got {raw!r:.60}") from None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def split(etas: Any, key: str, now: float) -> tuple[int, int]:
    """(due, later) among a list of etas."""
    if not isinstance(etas, list | tuple):
        raise LayoutError(key, f"expected a list of etas, got {etas!r:.60}")
    later = sum(1 for e in etas if eta_seconds(e, key) > now)
    return len(etas) - later, later


class CeleryReader(Reader):
    layout = QueueLayout.celery

    def commands(self, q: QueueSpec, now: float) -> list[Command]:
        unacked = (q.key_prefix or "") + "unacked"
        keys = list_keys(q)
        cmds = [Command(("LLEN", k), k) for k in keys]
        cmds.append(
            Command(("EVAL", ETA_LUA, len(keys) + 1, *keys, unacked, q.name, SCAN), unacked)
        )
        return cmds

    def parse(
        self, q: QueueSpec, cmds: Sequence[Command], replies: Sequence[Any], now: float
    ) -> QueueDepth:
        listed = sum(integer(r, c.key) for r, c in zip(replies[:-1], cmds[:-1], strict=True))
        key, reply = cmds[-1].key, replies[-1]
        if not isinstance(reply, list | tuple) or len(reply) != 3:
            raise LayoutError(key, f"expected [plain, list etas, unacked etas], got {reply!r:.60}")
        plain = integer(reply[0], key)
        _, listed_later = split(reply[1], key, now)
        held_due, held_later = split(reply[2], key, now)
        return self.depth(
            q, listed - listed_later, plain + held_due, delayed=listed_later + held_later
        )
