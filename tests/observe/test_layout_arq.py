"""The arq layout, against what arq's client and a real arq Worker write."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pydantic
import pytest
import redis

from queueworker.engine.types import QueueDepth
from queueworker.observe.layouts import read_depths_sync

from support.engine_layouts import only, qspec


async def block(ctx: dict[str, Any]) -> None:  # runs until the worker is closed
    ctx["started"].set()
    await asyncio.sleep(3600)


async def scenario(redis_url: str, queue: str) -> tuple[float, QueueDepth, QueueDepth]:
    """Enqueue through arq, let a real Worker (max_jobs=1) take the first job,
    and read while it runs: now, and as if 60 s later."""
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.worker import Worker, func

    pool = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=queue)
    t0 = time.time()
    await pool.enqueue_job("block", _job_id="running")
    for _ in range(3):
        await asyncio.sleep(0.005)  # distinct scores: the worker takes the lowest
        await pool.enqueue_job("block")
    await pool.enqueue_job("block", _defer_by=10)
    for _ in range(2):
        await pool.enqueue_job("block", _defer_by=3600)
    worker = Worker(functions=[func(block, name="block")], redis_pool=pool, queue_name=queue,
                    max_jobs=1, poll_delay=0.05, handle_signals=False,
                    ctx={"started": asyncio.Event()})
    task = asyncio.create_task(worker.main())
    r = redis.Redis.from_url(redis_url)
    q = qspec(queue, "arq")
    try:
        await asyncio.wait_for(worker.ctx["started"].wait(), 10)
        assert r.exists("arq:in-progress:running")
        now = only(await asyncio.to_thread(read_depths_sync, r, [q], time.time()))
        later = only(await asyncio.to_thread(read_depths_sync, r, [q], t0 + 60))
    finally:
        task.cancel()
        await worker.close()
    return t0, now, later


@pytest.mark.parametrize("queue", ["arq:queue", "arq:reports"])
def test_arq_due_deferred_in_progress(redis_url: str, queue: str) -> None:
    t0, now, later = asyncio.run(scenario(redis_url, queue))
    # 4 due (one running), the 10 s and the two 1 h ones deferred.
    assert (now.waiting, now.in_flight, now.delayed) == (3, 1, 3)
    assert now.oldest_age_seconds is not None
    assert now.oldest_age_seconds < time.time() - t0 + 1
    # 60 s on, the 10 s one is due too; the oldest waiting job is the second enqueued.
    assert (later.waiting, later.in_flight, later.delayed) == (4, 1, 2)
    assert later.oldest_age_seconds is not None
    assert 55 < later.oldest_age_seconds <= 60
    # arq puts a cancelled job back with its try counted; nothing runs now.
    r = redis.Redis.from_url(redis_url)
    after = only(read_depths_sync(r, [qspec(queue, "arq")], time.time()))
    assert (after.waiting, after.in_flight, after.delayed) == (4, 0, 3)


def test_arq_empty_and_wrong_type(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    d = only(read_depths_sync(r, [qspec("arq:queue", "arq")], time.time()))
    assert (d.waiting, d.in_flight, d.delayed, d.oldest_age_seconds) == (0, 0, 0, None)
    r.rpush("arq:queue", "x")  # a list where arq keeps a ZSET: a clear error, not a raise
    (err,) = read_depths_sync(r, [qspec("arq:queue", "arq")], time.time())
    assert not isinstance(err, QueueDepth)
    assert "wrong kind of value" in str(err)
    assert "'arq'" in str(err)


def test_arq_rejects_key_prefix() -> None:
    with pytest.raises(pydantic.ValidationError, match="keyPrefix is not for layout 'arq'"):
        qspec("arq:queue", "arq", keyPrefix="x:")
