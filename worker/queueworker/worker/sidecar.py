"""What runs beside a worker's job loop: the scheduler and the admin watch (pause, restart).

``run_worker`` is what ``queueworker worker`` runs: the ``Worker`` plus both
loops, on a client of their own, ended when the worker stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import Sequence
from typing import Any

from queueworker.worker.admin import AdminWatch
from queueworker.worker.broker import REDIS_ERRORS
from queueworker.worker.connection import async_client
from queueworker.worker.runtime import Worker
from queueworker.worker.scheduler import Clock, Scheduler
from queueworker.worker.schedules import Schedule, ScheduleError, as_schedules

ENV_SCHEDULES = "QUEUEWORKER_SCHEDULES"


def _import(spec: str) -> Any:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ScheduleError(f"bad --schedules {spec!r}: use package.module:NAME")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ScheduleError(f"cannot import schedules module {module_name!r}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ScheduleError(f"module {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    return obj


def load_schedules(specs: Sequence[str]) -> list[Schedule]:
    """``package.module:NAME`` -> the list of ``Schedule`` it holds (or a function returning
    one). Raises ScheduleError with what is wrong."""
    out: list[Schedule] = []
    for spec in specs:
        obj = _import(spec)
        if callable(obj):
            obj = obj()
        out += as_schedules(obj, spec)
    as_schedules(out, "--schedules")  # names unique across all of them
    return out


async def run_worker(worker: Worker, schedules: Sequence[Schedule] = (), *,
                     clock: Clock | None = None, interval: float | None = None) -> int:
    """Run ``worker`` with the scheduler and the admin watch; returns its exit code.

    ``interval``: seconds between the loops' passes (default: the worker's
    poll interval, at most 1 s)."""
    s = worker.s
    every = interval if interval is not None else min(1.0, s.poll_interval)
    client = async_client(s.redis_url, decode_responses=True)
    scheduler = Scheduler(client, schedules, s.prefix, clock=clock, interval=every)
    watch = AdminWatch(client, worker, s.prefix, interval=every)

    def stopping() -> bool:
        return worker.stopping

    # Paused queues and the restart mark are known before the first fetch. A Redis that
    # cannot be reached is the worker's to report (it raises at its start: one line).
    try:
        await watch.check()
    except REDIS_ERRORS:
        with contextlib.suppress(Exception):
            await client.aclose()
        return await worker.run()
    tasks = [asyncio.create_task(scheduler.run(stopping), name="scheduler"),
             asyncio.create_task(watch.run(stopping), name="admin-watch")]
    try:
        return await worker.run()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await client.aclose()
