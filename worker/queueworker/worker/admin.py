"""Admin verbs on the native layout: clear a queue, pause / resume one, restart the workers.

Keys (beside ``keys.py``'s):

- ``{p}:paused``   SET of queue names workers do not take jobs from (Laravel's
  ``queue:pause``, BullMQ's ``queue.pause()``). Jobs are still enqueued, leases
  still renewed and reaped; only taking new jobs stops.
- ``{p}:restart``  STRING, the Redis time of the last ``queueworker restart``.
  A worker reads it when it starts and stops (a drain, exit 0) when it changes,
  like Laravel's ``queue:restart``: the supervisor (local mode, Kubernetes, systemd)
  starts a fresh process with the new code.

``AdminWatch`` is the worker's side of both: one pipelined round trip every
``interval`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import redis
import redis.asyncio as aioredis

from queueworker.worker import keys
from queueworker.worker.broker import REDIS_ERRORS
from queueworker.worker.connection import is_cluster
from queueworker.worker.flows_lua import HOOKS
from queueworker.worker.log import event
from queueworker.worker.scripts import PRELUDE


def paused_key(prefix: str = keys.DEFAULT_PREFIX) -> str:
    return f"{prefix}:paused"


def restart_key(prefix: str = keys.DEFAULT_PREFIX) -> str:
    return f"{prefix}:restart"


# ARGV: prefix, queue, batch -> jobs removed this call (waiting, then delayed). Running
# jobs are left alone: they finish and settle as usual.
CLEAR = PRELUDE + HOOKS + """
local q, batch = ARGV[2], tonumber(ARGV[3])
local ids = {}
for lvl = 10, 1, -1 do  -- every priority level (keys.waiting)
  if #ids >= batch then break end
  local got = redis.call('LPOP', wkey(q, lvl), batch - #ids) or {}
  for _, id in ipairs(got) do ids[#ids + 1] = id end
end
if #ids < batch then
  local d = redis.call('ZPOPMIN', qkey(q, 'delayed'), batch - #ids)
  for i = 1, #d, 2 do ids[#ids + 1] = d[i] end
end
local now = now_s()
for _, id in ipairs(ids) do
  local jk = jkey(id)
  flow_dropped(jk, id, now)  -- a batch counts it skipped; a chain stops (flows_lua.py)
  release_unique(q, redis.call('HGET', jk, 'unique_key'), id)
  redis.call('DEL', jk)
end
if #ids > 0 then redis.call('HINCRBY', qkey(q, 'stats'), 'cleared', #ids) end
if #ids < batch then redis.call('DEL', qkey(q, 'notify')) end
return #ids
"""


def _check_queue(queue: str) -> None:
    if not queue or any(c in queue for c in "{}"):
        raise ValueError(f"bad queue name {queue!r}")


def pending(client: redis.Redis, queue: str, prefix: str = keys.DEFAULT_PREFIX) -> int:
    """Jobs ``clear`` would remove: waiting + delayed (running ones are not counted)."""
    _check_queue(queue)
    with client.pipeline(transaction=False) as pipe:
        for _, key in keys.waiting_levels(queue, prefix):
            pipe.llen(key)
        pipe.zcard(keys.delayed(queue, prefix))
        return sum(int(x) for x in pipe.execute())


def clear_queue(client: redis.Redis, queue: str, prefix: str = keys.DEFAULT_PREFIX,
                batch: int = 1000) -> int:
    """Delete the queue's waiting and delayed jobs, ``batch`` per script (Redis is not
    blocked for long); returns how many."""
    _check_queue(queue)
    script = client.register_script(CLEAR)
    route = keys.script_keys(queue, is_cluster(client), prefix)
    total = 0
    while True:
        n = int(script(keys=route, args=[prefix, queue, batch]))
        total += n
        if n < batch:
            return total


def pause_queue(client: redis.Redis, queue: str, prefix: str = keys.DEFAULT_PREFIX) -> bool:
    """True if it was not paused before."""
    _check_queue(queue)
    return bool(client.sadd(paused_key(prefix), queue))


def resume_queue(client: redis.Redis, queue: str, prefix: str = keys.DEFAULT_PREFIX) -> bool:
    """True if it was paused."""
    _check_queue(queue)
    changed = bool(client.srem(paused_key(prefix), queue))
    # Wake workers blocked on the queue's notify list now rather than at their next poll.
    client.lpush(keys.notify(queue, prefix), "1")
    client.ltrim(keys.notify(queue, prefix), 0, 15)
    return changed


def paused_queues(client: redis.Redis, prefix: str = keys.DEFAULT_PREFIX) -> set[str]:
    return {x.decode() if isinstance(x, bytes) else str(x)
            for x in client.smembers(paused_key(prefix))}


def request_restart(client: redis.Redis, prefix: str = keys.DEFAULT_PREFIX) -> float:
    """Ask every native worker on this prefix to finish its jobs and exit; returns the mark."""
    sec, usec = client.time()
    mark = int(sec) + int(usec) / 1e6
    client.set(restart_key(prefix), repr(mark))
    return mark


class Stoppable(Protocol):
    paused: frozenset[str]

    def stop(self, reason: str, hand_back_buffer: bool = True) -> None: ...


class AdminWatch:
    """Keeps ``worker.paused`` up to date and stops the worker on a restart request."""

    def __init__(self, client: aioredis.Redis, worker: Stoppable,
                 prefix: str = keys.DEFAULT_PREFIX, interval: float = 1.0) -> None:
        self.redis = client
        self.worker = worker
        self.prefix = prefix
        self.interval = interval
        self.baseline: str | None = None
        self._started = False

    async def check(self) -> bool:
        """One read; True when a restart was requested since this worker started."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(restart_key(self.prefix))
            pipe.smembers(paused_key(self.prefix))
            mark, paused = await pipe.execute()
        mark_text: Any = mark.decode() if isinstance(mark, bytes) else mark
        now_paused = frozenset(x.decode() if isinstance(x, bytes) else str(x) for x in paused)
        if now_paused != self.worker.paused:
            event("queues.paused", queues=",".join(sorted(now_paused)) or "(none)")
            self.worker.paused = now_paused
        if not self._started:
            self._started = True
            self.baseline = mark_text
            return False
        return bool(mark_text != self.baseline)

    async def run(self, stopping: Callable[[], bool]) -> None:
        while not stopping():
            started = time.monotonic()
            try:
                if await self.check():
                    event("worker.restart_requested", logging.WARNING)
                    self.worker.stop("restart requested")
                    return
            except REDIS_ERRORS as exc:
                event("redis.error", logging.WARNING, where="admin-watch",
                      error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))
