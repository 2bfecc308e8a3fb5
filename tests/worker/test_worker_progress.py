"""job.progress (progress.py): stored in the job hash, published, followed to the end."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from queueworker.worker import keys
from queueworker.worker.job import Job
from queueworker.worker.producer import AsyncProducer, Producer
from queueworker.worker.progress import check
from queueworker.worker.runtime import Worker

from support.worker_inproc import fast_settings, table, wait_for


@pytest.fixture
def producer(redis_url: str) -> Producer:
    return Producer(redis.Redis.from_url(redis_url, decode_responses=True), keyring=None)


async def test_progress_is_stored_published_and_followed(
        redis_url: str, producer: Producer, r: aioredis.Redis) -> None:
    go_on = threading.Event()

    def separate(payload: Any, job: Job) -> str:  # a sync handler: reports from its thread
        job.progress(0.25, {"stage": "loading"})
        job.progress(0.5, {"stage": "separating"})
        go_on.wait(10)
        job.progress(1.0)
        return "stems"

    job_id = producer.enqueue("default", {})
    w = Worker(fast_settings(redis_url), table(separate))
    task = asyncio.create_task(w.run())
    seen: list[dict[str, Any]] = []
    following = asyncio.Event()

    async def follow() -> None:
        async for event in AsyncProducer(r, keyring=None).follow(job_id, timeout=20):
            seen.append(event)
            if event["state"] == "running":
                following.set()

    follower = asyncio.create_task(follow())
    await wait_for(lambda: _progress(producer, job_id, 0.5), what="progress 0.5 stored")
    o = producer.outcome(job_id)
    assert o is not None
    assert (o.state, o.progress_detail) == ("running", {"stage": "separating"})
    await asyncio.wait_for(following.wait(), 15)  # the handler waits for go_on meanwhile
    go_on.set()
    await asyncio.wait_for(follower, 20)
    assert seen[-1]["state"] == "done"
    assert seen[-1]["result"] == "stems"
    running = [e for e in seen if e["state"] == "running"]
    assert running
    assert running[-1]["progress"] in (0.5, 1.0)
    info = producer.job(job_id)
    assert info is not None
    assert info["progress"] == 1.0
    w.stop("test")
    await asyncio.wait_for(task, 20)


async def _progress(producer: Producer, job_id: str, want: float) -> bool:
    o = producer.outcome(job_id)
    return o is not None and o.progress == want


async def test_a_late_report_never_touches_a_finished_job(
        redis_url: str, producer: Producer, r: aioredis.Redis) -> None:
    kept: list[Job] = []

    async def h(payload: Any, job: Job) -> None:
        kept.append(job)

    job_id = producer.enqueue("default", {})
    w = Worker(fast_settings(redis_url, result_ttl=0), table(h))
    task = asyncio.create_task(w.run())
    await wait_for(lambda: _gone(r, job_id), what="the finished job's hash deleted")
    kept[0].progress(0.9)
    await asyncio.sleep(0)  # the report reaches the loop (call_soon_threadsafe)
    await w.execution.progress.close()  # its write has run
    assert await r.exists(keys.job(job_id)) == 0  # not re-created without a TTL
    w.stop("test")
    await asyncio.wait_for(task, 20)


async def _gone(r: aioredis.Redis, job_id: str) -> bool:
    return await r.hget(keys.stats("default"), "completed") == "1" and not await r.exists(
        keys.job(job_id))


async def test_follow_of_a_finished_job_ends_at_once(redis_url: str, producer: Producer,
                                                     r: aioredis.Redis) -> None:
    job_id = producer.enqueue("default", 3)
    w = Worker(fast_settings(redis_url), table(lambda p: p + 1))
    task = asyncio.create_task(w.run())
    assert await AsyncProducer(r, keyring=None).wait(job_id, 15) == 4
    events = [e async for e in AsyncProducer(r, keyring=None).follow(job_id, timeout=5)]
    assert [e["state"] for e in events] == ["done"]
    w.stop("test")
    await asyncio.wait_for(task, 20)


def test_bad_progress_is_a_clear_error() -> None:
    assert check(0.5, None) == (0.5, "")
    for bad in (1.5, -0.1, float("nan"), True, "half"):
        with pytest.raises(ValueError, match="progress must be a number from 0 to 1"):
            check(bad, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not JSON"):
        check(0.1, {1, 2})
