"""Exception throttling per key (Laravel's ``ThrottlesExceptions``): after ``limit``
exceptions in ``window`` seconds for one key, jobs of that key are released for
``backoff`` seconds instead of burning their tries.

    from queueworker.worker.throttle import throttle_exceptions

    @throttle_exceptions(limit=5, window=60, backoff=120, key="tenant")
    def call_partner_api(payload, job):
        ...

- ``key``: what failures are counted per. ``None`` (the default): the handler
  name, one counter for all its jobs. A string: that payload field (a job whose
  payload has no such field counts under ``-``). A callable ``key(payload, job)``
  returning a string (if it raises, the attempt fails like a handler exception).
- ``exceptions``: the exception types that count (default ``Exception``).
  ``Fail``, ``Release`` and timeouts never count: they are not exceptions of the
  service being called.
- While a key is open (throttled), a job of that key is released before its
  handler runs, until the back-off ends (plus a little jitter, so the released
  jobs do not all come back in the same millisecond). The exception that opens
  it, and any counted exception raised while it is open (a worker that had not
  seen it open yet), release the job too. Release keeps ``tries`` (control.py).
- The exceptions below the limit are ordinary failed attempts (retried per the
  job's backoff, counted in ``tries``). A success does not reset the count: it
  is "``limit`` exceptions in ``window`` seconds", fixed windows.

State: one Redis HASH per key, ``{p}:throttle:{handler}:{key}`` (fields ``n``,
``window_end``, ``open_until``, ``opened``), changed only by the Lua below, on
Redis ``TIME``, so every worker shares it and skewed clocks agree. A key is
checked in Redis at most every ``CHECK_INTERVAL`` seconds per worker while it
is closed; an open key is known locally until it ends. Handlers without the
decorator pay one ``getattr`` per job (execute.py).

Metrics: ``queueworker_worker_jobs_throttled_total{queue}`` (jobs released by a
throttle) and ``queueworker_worker_throttle_opened_total{handler}``.
"""

from __future__ import annotations

import logging
import random
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter

from queueworker.worker.broker import REDIS_ERRORS
from queueworker.worker.control import Release
from queueworker.worker.job import Job
from queueworker.worker.log import event
from queueworker.worker.metrics import WorkerMetrics

RULE_ATTR = "__queueworker_throttle__"
CHECK_INTERVAL = 0.5
MAX_CACHED_KEYS = 10_000
NO_FIELD = "-"

F = TypeVar("F", bound=Callable[..., Any])
KeyFn = Callable[[Any, Job], str]

# KEYS[1] the key's hash. Returns {state, seconds}: 0 closed (seconds unused),
# 1 open for that many more seconds.
CHECK = """#!lua
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local open = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0') or 0
if open > now then return {1, tostring(open - now)} end
return {0, '0'}
"""

# KEYS[1] the key's hash; ARGV: limit, window, backoff (seconds). Returns
# {state, text}: 0 counted (text = count in this window), 1 already open
# (text = seconds left), 2 this exception opened it (text = backoff).
HIT = """#!lua
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local limit, window, backoff = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'open_until', 'n', 'window_end')
local open = tonumber(h[1] or '0') or 0
if open > now then return {1, tostring(open - now)} end
local n, wend = tonumber(h[2] or '0') or 0, tonumber(h[3] or '0') or 0
if wend <= now then n = 0; wend = now + window end
n = n + 1
if n >= limit then
  redis.call('HSET', KEYS[1], 'open_until', tostring(now + backoff), 'n', 0, 'window_end', 0)
  redis.call('HINCRBY', KEYS[1], 'opened', 1)
  redis.call('PEXPIRE', KEYS[1], math.ceil((backoff + window) * 1000))
  return {2, tostring(backoff)}
end
redis.call('HSET', KEYS[1], 'n', n, 'window_end', tostring(wend))
redis.call('PEXPIRE', KEYS[1], math.ceil(math.max(wend - now, backoff) * 1000) + 1000)
return {0, tostring(n)}
"""


@dataclass(frozen=True)
class Rule:
    """One handler's throttle (set by ``throttle_exceptions``)."""

    limit: int
    window: float
    backoff: float
    key: str | KeyFn | None = None
    exceptions: tuple[type[BaseException], ...] = (Exception,)

    def key_of(self, handler: str, job: Job, payload: Any) -> str:
        if self.key is None:
            return handler
        if callable(self.key):
            value = self.key(payload, job)
            if not isinstance(value, str):
                raise TypeError(f"throttle key function returned {value!r}, not a string")
            return f"{handler}:{value}"
        field = payload.get(self.key, NO_FIELD) if isinstance(payload, dict) else NO_FIELD
        return f"{handler}:{field}"


def throttle_exceptions(*, limit: int, window: float, backoff: float,
                        key: str | KeyFn | None = None,
                        exceptions: tuple[type[BaseException], ...] = (Exception,),
                        ) -> Callable[[F], F]:
    """Throttle a handler's exceptions per key (see the module docstring)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"throttle limit must be a whole number of at least 1, not {limit!r}")
    for name, value in (("window", window), ("backoff", backoff)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
            raise ValueError(f"throttle {name} must be a number of seconds above 0, "
                             f"not {value!r}")
    if key is not None and not isinstance(key, str) and not callable(key):
        raise TypeError(f"throttle key must be a payload field name or a function, not {key!r}")
    if not exceptions or not all(isinstance(e, type) and issubclass(e, BaseException)
                                 for e in exceptions):
        raise TypeError(f"throttle exceptions must be exception types, not {exceptions!r}")
    rule = Rule(limit, float(window), float(backoff), key, tuple(exceptions))

    def mark(fn: F) -> F:
        setattr(fn, RULE_ATTR, rule)
        return fn

    return mark


def rule_of(fn: Callable[..., Any]) -> Rule | None:
    rule = getattr(fn, RULE_ATTR, None)
    return rule if isinstance(rule, Rule) else None


class _Counters:
    def __init__(self, registry: CollectorRegistry) -> None:
        p = "queueworker_worker_"
        self.throttled = Counter(p + "jobs_throttled", "Jobs released because their throttle "
                                 "key was open (throttle.py), not counted as a failed try.",
                                 ["queue"], registry=registry)
        self.opened = Counter(p + "throttle_opened", "Throttle keys this worker opened "
                              "(limit exceptions in the window).", ["handler"],
                              registry=registry)


_COUNTERS: weakref.WeakKeyDictionary[CollectorRegistry, _Counters] = (
    weakref.WeakKeyDictionary())


def counters(metrics: WorkerMetrics) -> _Counters:
    c = _COUNTERS.get(metrics.registry)
    if c is None:
        c = _COUNTERS[metrics.registry] = _Counters(metrics.registry)
    return c


class Throttles:
    """The Redis side of every throttled handler of one worker (execute.py)."""

    def __init__(self, client: aioredis.Redis, prefix: str, metrics: WorkerMetrics) -> None:
        self.redis = client
        self.prefix = prefix
        self.metrics = metrics
        self._check = client.register_script(CHECK)
        self._hit = client.register_script(HIT)
        # key -> monotonic time until which it is known open / known closed.
        self._open: dict[str, float] = {}
        self._closed: dict[str, float] = {}

    def hash_key(self, key: str) -> str:
        return f"{self.prefix}:throttle:{key}"

    async def check(self, rule: Rule, handler: str, job: Job, payload: Any) -> str:
        """The job's throttle key; raises Release while that key is open."""
        key = rule.key_of(handler, job, payload)
        now = time.monotonic()
        until = self._open.get(key, 0.0)
        if until > now:
            self._throttled(job, key, until - now, rule)
        if self._closed.get(key, 0.0) > now:
            return key
        try:
            state, left = await self._check(keys=[self.hash_key(key)])
        except REDIS_ERRORS as exc:
            # Fail open: the handler runs; settling it will meet the same Redis.
            event("throttle.unread", logging.WARNING, key=key, error=str(exc))
            return key
        if int(state) == 1:
            self._remember(self._open, key, now + float(left))
            self._throttled(job, key, float(left), rule)
        self._remember(self._closed, key, now + CHECK_INTERVAL)
        return key

    async def hit(self, rule: Rule, key: str, job: Job, exc: BaseException) -> Release | None:
        """Count a handler exception; a Release when the key is (now) open, else None."""
        if not isinstance(exc, rule.exceptions):
            return None
        try:
            state, text = await self._hit(keys=[self.hash_key(key)],
                                          args=[rule.limit, rule.window, rule.backoff])
        except REDIS_ERRORS as exc:
            event("throttle.unread", logging.WARNING, key=key, error=str(exc))
            return None
        if int(state) == 0:
            return None
        left = float(text)
        self._closed.pop(key, None)
        self._remember(self._open, key, time.monotonic() + left)
        if int(state) == 2:
            counters(self.metrics).opened.labels(key.partition(":")[0]).inc()
            event("throttle.opened", key=key, queue=job.queue, backoff_s=rule.backoff,
                  limit=rule.limit, window_s=rule.window,
                  error=f"{type(exc).__name__}: {exc}")
        return self._release(job, key, left, rule)

    def _throttled(self, job: Job, key: str, left: float, rule: Rule) -> None:
        raise self._release(job, key, left, rule)

    def _release(self, job: Job, key: str, left: float, rule: Rule) -> Release:
        counters(self.metrics).throttled.labels(job.queue).inc()
        # Jitter: the jobs released by one open key come back spread over 10 % of it.
        delay = left + random.uniform(0.0, rule.backoff * 0.1)
        return Release(delay, f"throttled: {key} open for {left:.1f}s")

    @staticmethod
    def _remember(cache: dict[str, float], key: str, until: float) -> None:
        if len(cache) >= MAX_CACHED_KEYS:
            cache.clear()
        cache[key] = until
