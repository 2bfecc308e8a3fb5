"""Dramatiq workers on the Redis broker (dramatiq/brokers/redis.py, brokers/redis/dispatch.lua).

Every broker dispatch (fetch, ack, requeue, ...) runs one Lua script with the
broker's `broker_id`, which `ZADD`s it with the dispatch time (epoch ms) to
ZSET `<ns>:__heartbeats__`; a fetch `SADD`s the message ids it takes to SET
`<ns>:__acks__.<broker_id>.<queue>` in the same script, and an ack, nack or
requeue removes them. So that set holds, exactly, the messages the broker's
process has taken and not finished: running, or prefetched and held in its
memory (up to twice its threads). A worker keeps polling while idle (and its
delay-queue consumer while it is busy), so its beat stays fresh; Dramatiq
itself counts a broker dead once its beat is older than `heartbeat_timeout`
(60 s by default) and hands its messages back, so only brokers beating within
that window are read.

`broker_id` is `str(uuid4())` and nothing of the host appears in any key, so
a pod cannot be told unless the app names its broker after it: the
`do_<command>` closures read `self.broker_id` at every call, so setting
`broker.broker_id = f"{socket.gethostname()}-{uuid4().hex}"` right after the
broker is made is used by every script call, heartbeats included
(docs/workers/dramatiq.md). A broker id of that form (`<pod>-<32 hex>`: one
id per worker process, several processes per pod) maps to pod `<pod>`;
any other id (an unnamed broker) maps to no pod, which stays unknown. Only
the queue's own acks count (`<q>`, not `<q>.DQ`: delayed messages a worker
holds until their eta are not work it runs).
"""

from __future__ import annotations

import re
from typing import Any

from queueworker.observe.busy.base import Adapter, WorkerReport, number, rows
from queueworker.observe.layouts.base import Command
from queueworker.operator.api import QueueLayout, QueueSpec

# Dramatiq's DEFAULT_HEARTBEAT_TIMEOUT (ms): older brokers are dead to Dramatiq itself.
HEARTBEAT_TIMEOUT_MS = 60000
NAMED = re.compile(r"^(?P<pod>.+)-[0-9a-f]{32}$")

# {broker id, beat (epoch ms), messages it holds of ARGV[2]} per broker beating since
# Redis's TIME - ARGV[3] ms.
BROKERS_LUA = """
local t = redis.call('TIME')
local since = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[3])
local out = {}
local beats = redis.call('ZRANGEBYSCORE', KEYS[1], since, '+inf', 'WITHSCORES')
for i = 1, #beats, 2 do
  local n = redis.call('SCARD', ARGV[1] .. ':__acks__.' .. beats[i] .. '.' .. ARGV[2])
  out[#out + 1] = beats[i]
  out[#out + 1] = beats[i + 1]
  out[#out + 1] = tostring(n)
end
return out
"""


def pod_of(broker_id: str) -> str | None:
    """The pod a named broker runs in (`<pod>-<32 hex>`); None for any other id."""
    m = NAMED.match(broker_id)
    return m["pod"] if m else None


class DramatiqAdapter(Adapter):
    layout = QueueLayout.dramatiq

    def _ns(self, q: QueueSpec) -> str:
        return q.key_prefix or "dramatiq"

    def registry(self, q: QueueSpec) -> str:
        # One command per queue: a broker's acks are per queue.
        return f"{self._ns(q)}:__acks__.*.{q.name}"

    def command(self, q: QueueSpec) -> Command:
        beats = f"{self._ns(q)}:__heartbeats__"
        return Command(("EVAL", BROKERS_LUA, 1, beats, self._ns(q), q.name,
                        HEARTBEAT_TIMEOUT_MS), self.registry(q))

    def parse(self, reply: Any, key: str) -> list[WorkerReport]:
        out: list[WorkerReport] = []
        for broker, beat, held in rows(reply, key, 3):
            running = number(held) or 0
            ms = number(beat)
            out.append(WorkerReport(worker=f"dramatiq {broker}", hostname=pod_of(broker or ""),
                                    pid=None, busy=running > 0, running=running,
                                    beat_at=ms / 1000 if ms else None, registry=key))
        return out
