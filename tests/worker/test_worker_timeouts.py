"""The watchdog (timeouts.py) on its own: no Redis, no Worker, only handlers and deadlines."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from queueworker.worker.handlers import Handler
from queueworker.worker.job import Job
from queueworker.worker.timeouts import JobTimeoutError, Watchdog


@pytest.fixture
async def watchdog() -> AsyncIterator[Watchdog]:
    dog = Watchdog(concurrency=2)
    dog.start()
    yield dog
    await dog.stop()
    dog.close()


def job(job_id: str = "j1") -> Job:
    return Job(id=job_id, queue="default", payload_text="null")


async def test_a_handler_within_its_limit_returns_and_one_past_it_raises(
        watchdog: Watchdog) -> None:
    seen: list[Any] = []

    async def handler(payload: Any, job: Job) -> None:
        seen.append((payload, job.id))
        await asyncio.sleep(payload)

    h = Handler.of("h", handler)
    await watchdog.call(h, job("quick"), 0.01, limit=1.0)
    await watchdog.call(h, job("no-limit"), 0.2, limit=None)
    with pytest.raises(JobTimeoutError, match=r"^job exceeded its timeout of 0.1s$"):
        await watchdog.call(h, job("slow"), 5, limit=0.1)
    assert seen == [(0.01, "quick"), (0.2, "no-limit"), (5, "slow")]
    assert watchdog.abandoned == 0


async def test_a_handler_that_swallows_the_cancel_still_times_out(watchdog: Watchdog) -> None:
    async def stubborn(payload: Any) -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            pass  # carry on as if nothing happened

    with pytest.raises(JobTimeoutError):
        await watchdog.call(Handler.of("h", stubborn), job(), None, limit=0.1)
    # The slot's task is usable afterwards: the watchdog's cancel was taken back.
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0


async def test_a_drain_cancel_is_not_reported_as_a_timeout(watchdog: Watchdog) -> None:
    async def slow(payload: Any) -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            await asyncio.sleep(5)  # still busy when the drain's cancel comes

    call = asyncio.create_task(watchdog.call(Handler.of("h", slow), job(), None, limit=0.1))
    await asyncio.sleep(0.3)  # the watchdog has cancelled it once already
    call.cancel()  # what a drain hand-back does to a slot: it wins over the timeout
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_a_sync_handler_past_its_limit_is_abandoned_until_its_thread_ends(
        watchdog: Watchdog) -> None:
    release = threading.Event()

    def blocking(payload: Any) -> None:
        release.wait(10)

    with pytest.raises(JobTimeoutError, match=r"\(its thread was abandoned\)$"):
        await watchdog.call(Handler.of("h", blocking), job(), None, limit=0.1)
    assert watchdog.abandoned == 1
    release.set()
    for _ in range(100):
        if watchdog.abandoned == 0:
            break
        await asyncio.sleep(0.02)
    assert watchdog.abandoned == 0
