"""Run a `Worker` inside the test's event loop, with short leases and intervals."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from queueworker.worker.config import Settings
from queueworker.worker.handlers import HandlerTable
from queueworker.worker.runtime import Worker


def fast_settings(redis_url: str, **overrides: Any) -> Settings:
    s = Settings(redis_url=redis_url, lease=1.0, heartbeat_interval=0.3, reap_interval=0.1,
                 poll_interval=0.1, drain_deadline=5.0, pod="test-pod")
    for k, v in overrides.items():
        setattr(s, k, v)
    return s


async def wait_for(cond: Callable[[], Awaitable[bool]], seconds: float = 15.0,
                   what: str = "condition") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


async def run_until(worker: Worker, cond: Callable[[], Awaitable[bool]], seconds: float = 15.0
                    ) -> int:
    """Run the worker until `cond()` holds, then drain it; returns its exit code."""
    task = asyncio.create_task(worker.run())
    try:
        await wait_for(lambda: _done_or(task, cond), seconds)
    finally:
        if not task.done():
            worker.stop("test")
    return await asyncio.wait_for(task, 20)


async def _done_or(task: asyncio.Task[int], cond: Callable[[], Awaitable[bool]]) -> bool:
    return task.done() or await cond()


def table(default: Callable[..., Any] | None = None, **named: Callable[..., Any]
          ) -> HandlerTable:
    return HandlerTable.from_callables(default, **named)
