"""Layouts that are one plain Redis structure: `list` and `stream`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from queueworker.engine.types import QueueDepth
from queueworker.observe.layouts.base import Command, LayoutError, Reader, age, integer, text
from queueworker.operator.api import QueueLayout, QueueSpec


def _key(q: QueueSpec) -> str:
    return (q.key_prefix or "") + q.name


class ListReader(Reader):
    """Any LIST of jobs: waiting only (in flight is invisible in a bare list)."""

    layout = QueueLayout.list

    def commands(self, q: QueueSpec, now: float) -> list[Command]:
        return [Command(("LLEN", _key(q)), _key(q))]

    def parse(
        self, q: QueueSpec, cmds: Sequence[Command], replies: Sequence[Any], now: float
    ) -> QueueDepth:
        return self.depth(q, integer(replies[0], _key(q)), 0)


def _groups(reply: Any, key: str) -> list[dict[str, Any]]:
    """XINFO GROUPS as a list of dicts, whether or not the client parsed it."""
    if reply is None:
        return []
    if not isinstance(reply, list | tuple):
        raise LayoutError(key, f"XINFO GROUPS: unexpected reply {reply!r:.60}")
    out = []
    for g in reply:
        if isinstance(g, dict):
            out.append({str(text(k)): v for k, v in g.items()})
        elif isinstance(g, list | tuple):
            out.append({str(text(g[i])): g[i + 1] for i in range(0, len(g) - 1, 2)})
    return out


# The first entry the group has not been handed yet: its id starts with the
# time it was added (ms), which gives the oldest waiting entry's age without a
# second round trip. No group: the stream's first entry.
OLDEST_UNREAD_LUA = """
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if not ok then return false end
local start = '-'
for _, g in ipairs(groups) do
  local name, last
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] end
    if g[i] == 'last-delivered-id' then last = g[i + 1] end
  end
  if name == ARGV[1] and last then start = '(' .. last end
end
local e = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', 1)
if #e == 0 then return false end
return e[1][1]
"""


class StreamReader(Reader):
    """A Redis stream read by a consumer group: lag is waiting, pending is in flight."""

    layout = QueueLayout.stream

    def commands(self, q: QueueSpec, now: float) -> list[Command]:
        k = _key(q)
        return [
            Command(("XINFO", "GROUPS", k), k, empty_on=("no such key",)),
            Command(("XLEN", k), k),
            Command(("EVAL", OLDEST_UNREAD_LUA, 1, k, q.consumer_group or ""), k),
        ]

    def parse(
        self, q: QueueSpec, cmds: Sequence[Command], replies: Sequence[Any], now: float
    ) -> QueueDepth:
        k = _key(q)
        length = integer(replies[1], k)
        oldest = text(replies[2])
        added = int(oldest.split("-")[0]) / 1000.0 if oldest and oldest[0].isdigit() else None
        for g in _groups(replies[0], k):
            if text(g.get("name")) == q.consumer_group:
                lag = g.get("lag")
                # Lag is nil when Redis cannot tell (entries deleted mid-stream):
                # every entry may still be unread, so count the whole stream.
                waiting = length if lag is None else integer(lag, k)
                return self.depth(q, waiting, integer(g.get("pending"), k),
                                  oldest_age_seconds=age(now, added) if waiting else None)
        # No group yet: nobody has read anything, every entry waits (as KEDA does).
        return self.depth(q, length, 0, oldest_age_seconds=age(now, added) if length else None)
