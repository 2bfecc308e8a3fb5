"""The worker's scheduler loop: register this worker's schedules, then offer due ticks.

Every worker runs it (there is no beat process to keep alive): each pass reads
the schedules whose ``next_due`` has come (one ZRANGEBYSCORE), and for each
offers its ticks to the TICK script (schedule_store.py), which applies only
the first offer of a tick. A worker killed at any point leaves either the
tick not taken (another worker or its successor takes it) or taken and
enqueued in one script: never half, never twice.

The clock is Redis's (``TIME``) unless one is passed (tests drive simulated
time through it), so workers with skewed clocks agree on what is due.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis

from queueworker.worker import keys
from queueworker.worker.broker import REDIS_ERRORS
from queueworker.worker.connection import is_cluster
from queueworker.worker.job import encode_payload, new_job_fields
from queueworker.worker.log import event
from queueworker.worker.producer import make_options
from queueworker.worker.schedule_store import REGISTER, TICK
from queueworker.worker.schedules import (
    CLUSTER_SCHEDULES,
    MAX_CATCH_UP,
    Schedule,
    ScheduleError,
    schedule_key,
    schedules_index,
    tick_job_id,
)

Clock = Callable[[], Awaitable[int]]  # epoch milliseconds
RAN, OVERLAPPED, SKIPPED, TAKEN = 3, 2, 1, 0  # TICK's answers


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


class Scheduler:
    def __init__(self, client: aioredis.Redis, schedules: Sequence[Schedule] = (),
                 prefix: str = keys.DEFAULT_PREFIX, *, clock: Clock | None = None,
                 interval: float = 1.0) -> None:
        if schedules and is_cluster(client):
            raise ScheduleError(CLUSTER_SCHEDULES)
        self.redis = client
        self.prefix = prefix
        self.schedules = list(schedules)
        self.clock = clock
        self.interval = interval
        self.enqueued = 0
        self.skipped = 0
        self._tick = client.register_script(TICK)
        self._register = client.register_script(REGISTER)
        self._bad: set[str] = set()

    async def now(self) -> int:
        if self.clock is not None:
            return await self.clock()
        sec, usec = await self.redis.time()
        return int(sec) * 1000 + int(usec) // 1000

    async def register(self) -> int:
        """Store this worker's definitions; a changed one starts again from now."""
        now = await self.now()
        changed = 0
        for s in self.schedules:
            changed += int(await self._register(args=[
                self.prefix, s.name, s.queue, s.to_json(), s.digest(), s.next_after(now)]))
        if self.schedules:
            event("schedules.registered", count=len(self.schedules), changed=changed)
        return changed

    async def run_once(self) -> int:
        """One pass over the due schedules; returns the jobs this worker enqueued."""
        now = await self.now()
        names = await self.redis.zrangebyscore(schedules_index(self.prefix), "-inf",
                                               repr(now / 1000), start=0, num=100)
        before = self.enqueued
        for name in names:
            await self._advance(_text(name), now)
        return self.enqueued - before

    async def _advance(self, name: str, now: int) -> None:
        h = {_text(k): _text(v)
             for k, v in (await self.redis.hgetall(schedule_key(name, self.prefix))).items()}
        if not h or h.get("paused") == "1":
            return
        try:
            s = Schedule.from_json(h.get("spec", ""))
            due = int(h["next_due"])
        except (ScheduleError, KeyError, ValueError) as exc:
            if name not in self._bad:  # once per process: a loop would flood the log
                self._bad.add(name)
                event("schedule.unreadable", logging.ERROR, schedule=name, error=str(exc))
            return
        for _ in range(MAX_CATCH_UP):
            if due > now:
                return
            nxt, mode = s.next_after(due), "run"
            if now - due > s.grace * 1000 and s.missed != "all":
                if s.missed == "skip":  # from the first tick still within grace
                    nxt, mode = s.next_after(now - round(s.grace * 1000) - 1), "skip"
                else:  # once: this job stands for every missed tick
                    nxt = s.next_after(now)
            res = int(await self._tick(args=self._tick_args(s, due, nxt, mode, now)))
            if res == TAKEN:
                return  # another worker took it first (or it was paused meanwhile)
            if res == RAN:
                self.enqueued += 1
                event("schedule.tick", schedule=name, queue=s.queue,
                      job=tick_job_id(name, due, s.queue), late_ms=now - due)
            elif res == SKIPPED:
                self.skipped += 1
                event("schedule.skipped", logging.WARNING, schedule=name,
                      missed_from=due / 1000, next_due=nxt / 1000)
            due = nxt

    def _tick_args(self, s: Schedule, due: int, nxt: int, mode: str, now: int) -> list[Any]:
        job_id = tick_job_id(s.name, due, s.queue)
        opts = dict(s.options)
        unique_for = 0
        if not s.overlap:
            opts["unique_key"] = f"schedule:{s.name}"
            unique_for = round(float(opts.get("unique_for") or 3600) * 1000)
        fields = new_job_fields(s.queue, encode_payload(s.payload), make_options(**opts),
                                now / 1000)
        fields["schedule"] = s.name
        args: list[Any] = [self.prefix, s.name, str(due), str(nxt), mode, job_id, unique_for,
                           s.queue]
        for k, v in fields.items():
            args += [k, v]
        return args

    async def run(self, stopping: Callable[[], bool]) -> None:
        """Register, then a pass every ``interval`` until ``stopping()``; Redis errors are
        logged and the loop goes on."""
        registered = not self.schedules
        while not stopping():
            started = time.monotonic()
            try:
                if not registered:
                    await self.register()
                    registered = True
                await self.run_once()
            except REDIS_ERRORS as exc:
                event("redis.error", logging.WARNING, where="scheduler",
                      error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))
