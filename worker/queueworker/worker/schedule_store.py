"""Schedules in Redis: the Lua scripts that register and tick them, and the store the CLI uses.

Keys (``schedules.schedule_key``, ``schedules_index``, ``queue_schedules``): one
HASH per schedule and two ZSETs of name -> next due (epoch seconds), one over
all schedules and one per queue (what the operator reads). A paused schedule
stays in both with the score ``+inf``: it is listed but never due.

TICK is the exactly-once rule: it applies only while the schedule's
``next_due`` still equals the tick the caller offers, and moves it on in the
same script; every worker may offer the same tick, one wins, the others see a
changed ``next_due`` and do nothing. The job's id is fixed by the tick
(``schedules.tick_job_id``) and TICK never writes a job hash that exists.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from queueworker.worker import keys
from queueworker.worker.connection import is_cluster
from queueworker.worker.producer import Producer
from queueworker.worker.schedules import (
    CLUSTER_SCHEDULES,
    Schedule,
    ScheduleError,
    schedule_key,
    schedules_index,
)
from queueworker.worker.scripts import PRELUDE

_SCHED = """
local function skey(name) return P .. ':schedule:' .. name end
local function index(name, q, score)
  redis.call('ZADD', P .. ':schedules', score, name)
  redis.call('ZADD', qkey(q, 'schedules'), score, name)
end
"""

# ARGV: prefix, name, queue, spec, digest, next_ms -> 1 (new or changed) | 0 (as stored)
REGISTER = PRELUDE + _SCHED + """
local name, q, nxt = ARGV[2], ARGV[3], ARGV[6]
local sk = skey(name)
local old = redis.call('HMGET', sk, 'digest', 'queue', 'paused')
if old[1] == ARGV[5] then return 0 end
if old[2] and old[2] ~= q then redis.call('ZREM', qkey(old[2], 'schedules'), name) end
redis.call('HSET', sk, 'name', name, 'queue', q, 'spec', ARGV[4], 'digest', ARGV[5],
           'next_due', nxt)
if old[3] == '1' then index(name, q, '+inf') else index(name, q, tonumber(nxt) / 1000) end
return 1
"""

# ARGV: prefix, name, due_ms, next_ms, mode (run | skip), job id, unique_for_ms (0: overlap
# allowed), queue, job field, value, ...
# -> 0: not applied (another worker took this tick, or paused); 1: skipped; 2: not
#    enqueued, the last tick's job still runs (overlap=False); 3: enqueued
TICK = PRELUDE + _SCHED + """
local name, due, nxt, mode, id = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local ufor, q = tonumber(ARGV[7]), ARGV[8]
local sk = skey(name)
local h = redis.call('HMGET', sk, 'next_due', 'paused', 'queue')
if h[1] ~= due or h[2] == '1' or h[3] ~= q then return 0 end
redis.call('HSET', sk, 'next_due', nxt)
index(name, q, tonumber(nxt) / 1000)
if mode ~= 'run' then
  redis.call('HINCRBY', sk, 'skipped', 1)
  return 1
end
if ufor > 0 then
  local uk = qkey(q, 'unique:schedule:' .. name)
  if redis.call('GET', uk) then
    redis.call('HINCRBY', sk, 'overlapped', 1)
    return 2
  end
  redis.call('SET', uk, id, 'PX', ufor)
end
local jk = jkey(id)
if redis.call('EXISTS', jk) == 0 then
  redis.call('HSET', jk, unpack(ARGV, 9))
  redis.call('HSET', jk, 'state', 'waiting')
  redis.call('LPUSH', wkey_of(q, id), id)  -- its priority's list (keys.waiting)
  local nk = qkey(q, 'notify')
  redis.call('LPUSH', nk, '1')
  redis.call('LTRIM', nk, 0, 15)
  redis.call('HINCRBY', qkey(q, 'stats'), 'enqueued', 1)
end
redis.call('HSET', sk, 'last_due', due, 'last_job', id)
redis.call('HINCRBY', sk, 'ticks', 1)
return 3
"""

# ARGV: prefix, name, paused ('1' | ''), next_ms -> 0 (no such schedule) | 1
SET_PAUSED = PRELUDE + _SCHED + """
local name = ARGV[2]
local sk = skey(name)
local q = redis.call('HGET', sk, 'queue')
if not q then return 0 end
if ARGV[3] == '1' then
  redis.call('HSET', sk, 'paused', '1')
  index(name, q, '+inf')
else
  redis.call('HDEL', sk, 'paused')
  redis.call('HSET', sk, 'next_due', ARGV[4])
  index(name, q, tonumber(ARGV[4]) / 1000)
end
return 1
"""

# ARGV: prefix, name -> 0 | 1
REMOVE = PRELUDE + _SCHED + """
local name = ARGV[2]
local sk = skey(name)
local q = redis.call('HGET', sk, 'queue')
if not q then return 0 end
redis.call('DEL', sk)
redis.call('ZREM', P .. ':schedules', name)
redis.call('ZREM', qkey(q, 'schedules'), name)
return 1
"""


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def _ms(x: Any) -> int | None:
    try:
        return int(_text(x))
    except (TypeError, ValueError):
        return None


def server_ms(client: redis.Redis) -> int:
    sec, usec = client.time()
    return int(sec) * 1000 + int(usec) // 1000


def describe(h: dict[str, str]) -> dict[str, Any]:
    """A schedule's hash as the CLI shows it (times in epoch seconds)."""
    out: dict[str, Any] = {"name": h.get("name", ""), "queue": h.get("queue", ""),
                           "paused": h.get("paused") == "1"}
    try:
        s = Schedule.from_json(h.get("spec", ""))
        out["when"] = s.describe()
        out["missed"] = s.missed
    except ScheduleError as exc:
        out["when"] = f"(unreadable: {exc})"
    for f in ("next_due", "last_due"):
        ms = _ms(h.get(f))
        out[f] = None if ms is None else ms / 1000
    out["last_job"] = h.get("last_job") or None
    for f in ("ticks", "skipped", "overlapped"):
        out[f] = _ms(h.get(f)) or 0
    return out


class ScheduleStore:
    """The CLI's view (redis-py, sync): list, show, pause, resume, trigger, remove."""

    def __init__(self, client: redis.Redis, prefix: str = keys.DEFAULT_PREFIX) -> None:
        if is_cluster(client):
            raise ScheduleError(CLUSTER_SCHEDULES)
        self.redis = client
        self.prefix = prefix
        self._set_paused = client.register_script(SET_PAUSED)
        self._remove = client.register_script(REMOVE)
        self._register = client.register_script(REGISTER)

    def register(self, schedules: list[Schedule], now_ms: int | None = None) -> int:
        """Store definitions (a changed one starts again from now); returns how many changed."""
        now = server_ms(self.redis) if now_ms is None else now_ms
        changed = 0
        for s in schedules:
            changed += int(self._register(args=[self.prefix, s.name, s.queue, s.to_json(),
                                                s.digest(), s.next_after(now)]))
        return changed

    def names(self) -> list[str]:
        return [_text(n) for n in self.redis.zrange(schedules_index(self.prefix), 0, -1)]

    def raw(self, name: str) -> dict[str, str]:
        h = self.redis.hgetall(schedule_key(name, self.prefix))
        return {_text(k): _text(v) for k, v in h.items()}

    def show(self, name: str) -> dict[str, Any] | None:
        h = self.raw(name)
        return describe(h) if h else None

    def list(self) -> list[dict[str, Any]]:
        return [d for d in (self.show(n) for n in self.names()) if d is not None]

    def schedule(self, name: str) -> Schedule:
        h = self.raw(name)
        if not h:
            raise ScheduleError(f"no schedule {name!r} (see `queueworker schedule list`)")
        return Schedule.from_json(h.get("spec", ""))

    def pause(self, name: str) -> bool:
        return bool(self._set_paused(args=[self.prefix, name, "1", 0]))

    def resume(self, name: str) -> bool:
        """Missed ticks while paused are not made up: the next tick is the first after now."""
        s = self.schedule(name)
        nxt = s.next_after(server_ms(self.redis))
        return bool(self._set_paused(args=[self.prefix, name, "", nxt]))

    def trigger(self, name: str) -> str:
        """Enqueue the schedule's job now, outside its ticks (its next tick is unchanged)."""
        s = self.schedule(name)
        options = dict(s.options)
        job_id = Producer(self.redis, self.prefix).enqueue(s.queue, s.payload, **options)
        self.redis.hincrby(schedule_key(name, self.prefix), "triggered", 1)
        return job_id

    def remove(self, name: str) -> bool:
        return bool(self._remove(args=[self.prefix, name]))


def now_ms() -> int:
    return int(time.time() * 1000)
