"""Prefetch that never starves a new replica (fetcher.py): adaptive by default, a fresh
worker takes what a busy one left, buffered jobs go back when they wait too long."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from queueworker.worker import keys
from queueworker.worker.fetcher import HAND_BACK_AFTER, SHORT_JOBS_PREFETCH, Buffer, Prefetch
from queueworker.worker.job import Job
from queueworker.worker.producer import Producer
from queueworker.worker.runtime import Worker

from support.worker_inproc import fast_settings, table, wait_for


@pytest.fixture
def producer(redis_url: str) -> Producer:
    return Producer(redis.Redis.from_url(redis_url, decode_responses=True))


def test_adaptive_prefetch_only_for_jobs_of_a_few_ms() -> None:
    p = Prefetch(concurrency=10)
    assert p.allowance() == 0  # nothing measured: take only what free slots start
    p.observe(0.00005)  # a no-op job: a batch of SHORT_JOBS_PREFETCH ahead
    assert p.allowance() == SHORT_JOBS_PREFETCH
    assert p.allowance(oldest_running=0.0001) == SHORT_JOBS_PREFETCH
    assert p.allowance(oldest_running=0.001) == 50
    assert p.allowance(oldest_running=2.0) == 0  # a running job is already long
    p.observe(3.0)  # a long job counts at once
    assert p.allowance() == 0
    for _ in range(200):  # short ones again: it comes back, slowly
        p.observe(0.0001)
    assert p.allowance() == SHORT_JOBS_PREFETCH
    assert Prefetch(concurrency=10, fixed=3).allowance(oldest_running=60) == 3


def test_the_buffer_runs_queue_order_then_priority_then_arrival() -> None:
    b = Buffer(["high", "low"])
    jobs = [Job(id=name, queue=q, payload_text="1", priority=p)
            for name, q, p in (("low-p10", "low", 10), ("high-p1", "high", 1),
                               ("high-p5-a", "high", 5), ("high-p9", "high", 9),
                               ("high-p5-b", "high", 5))]
    b.extend(jobs[:3], now=0.0)
    b.extend(jobs[3:], now=1.0)
    assert len(b) == 5
    assert [b.popleft().id for _ in range(5)] == ["high-p9", "high-p5-a", "high-p5-b",
                                                  "high-p1", "low-p10"]
    b.extend(jobs[:2], now=0.0)
    b.extend(jobs[2:3], now=5.0)
    assert sorted(j.id for j in b.take_older_than(1.0)) == ["high-p1", "low-p10"]
    assert [j.id for j in b] == ["high-p5-a"]


async def _blocked(w: Worker, n: int) -> None:
    await wait_for(lambda: _true(len(w.running) == n), what=f"{n} jobs running")


async def _true(x: bool) -> bool:
    return x


async def test_a_fresh_worker_takes_work_within_one_fetch_while_the_first_is_busy(
        redis_url: str, producer: Producer, r: aioredis.Redis) -> None:
    release = asyncio.Event()

    async def handler(payload: Any) -> None:
        await release.wait()

    ids = producer.enqueue_many("default", [{"n": i} for i in range(4)])
    first = Worker(fast_settings(redis_url, concurrency=2), table(handler))
    t1 = asyncio.create_task(first.run())
    second = None
    try:
        await _blocked(first, 2)
        assert (first.taken, len(first.buffer)) == (2, 0)  # no hoarding by default
        assert await r.llen(keys.waiting("default")) == 2
        # the worker's gauge of waiting jobs per priority, from its last beat
        gauge = 'queueworker_worker_queue_waiting_jobs{priority="5",queue="default"} 2.0'
        await wait_for(lambda: _true(gauge in first.metrics.render().decode()),
                       what="the waiting gauge")
        second = Worker(fast_settings(redis_url, concurrency=2), table(handler))
        t2 = asyncio.create_task(second.run())
        await _blocked(second, 2)
        assert second.fetcher.fetches == 1
        assert {j.id for j, _ in first.running.values()} | {
            j.id for j, _ in second.running.values()} == set(ids)
        release.set()
        done = second
        await wait_for(lambda: _true(first.processed + done.processed == 4),
                       what="all four done")
    finally:
        release.set()
        first.stop("test")
        if second is not None:
            second.stop("test")
            assert await asyncio.wait_for(t2, 20) == 0
        assert await asyncio.wait_for(t1, 20) == 0


async def test_a_fixed_prefetch_still_hoards_as_asked(redis_url: str, producer: Producer
                                                      ) -> None:
    release = asyncio.Event()

    async def handler(payload: Any) -> None:
        await release.wait()

    producer.enqueue_many("default", [{"n": i} for i in range(4)])
    w = Worker(fast_settings(redis_url, concurrency=2, prefetch=2), table(handler))
    task = asyncio.create_task(w.run())
    try:
        await _blocked(w, 2)
        await wait_for(lambda: _true(w.taken == 4), what="the buffer filled")
        assert len(w.buffer) == 2
    finally:
        release.set()
        w.stop("test")
        assert await asyncio.wait_for(task, 20) == 0


async def test_a_job_buffered_behind_a_long_one_goes_back_for_others(
        redis_url: str, producer: Producer, r: aioredis.Redis) -> None:
    release = asyncio.Event()

    async def handler(payload: Any) -> None:
        await release.wait()

    long_id = producer.enqueue("default", "long")
    short_id = producer.enqueue("default", "short")
    w = Worker(fast_settings(redis_url, concurrency=1), table(handler))
    w.fetcher.prefetch.observe(0.0001)  # it has seen short jobs: it prefetches one
    task = asyncio.create_task(w.run())
    try:
        await _blocked(w, 1)
        # the short one was buffered behind the long one (w may also have sent an empty
        # FETCH while the long job was young enough to look short: SHORT_JOBS_PREFETCH)
        assert w.taken == 2
        await wait_for(lambda: _in_waiting(r, short_id), what="the short job handed back")
        info = producer.job(short_id)
        assert info is not None
        assert (info["state"], info["deliveries"]) == ("waiting", 0)
        assert len(w.buffer) == 0
        assert await r.llen(keys.notify("default")) >= 1  # idle workers are woken
        other = Worker(fast_settings(redis_url, concurrency=1), table(handler))
        t2 = asyncio.create_task(other.run())
        await _blocked(other, 1)
        assert other.fetcher.fetches == 1
        assert [j.id for j, _ in other.running.values()] == [short_id]
        release.set()
        await wait_for(lambda: _true(other.processed == 1 and w.processed == 1),
                       what="both done")
        other.stop("test")
        assert await asyncio.wait_for(t2, 20) == 0
        assert HAND_BACK_AFTER < 1
    finally:
        release.set()
        w.stop("test")
        assert await asyncio.wait_for(task, 20) == 0
    assert producer.job(long_id)["state"] == "done"  # type: ignore[index]


async def _in_waiting(r: aioredis.Redis, job_id: str) -> bool:
    return job_id in await r.lrange(keys.waiting("default"), 0, -1)
