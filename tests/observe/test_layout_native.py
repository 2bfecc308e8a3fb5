"""The native layout (queueworker.worker.keys), as the Producer and the worker write it."""

from __future__ import annotations

import time

import redis
import redis.asyncio

from queueworker.observe.layouts import read_depths, read_depths_sync
from queueworker.worker import keys
from queueworker.worker.producer import Producer

from support.engine_layouts import only, qspec


def test_native_from_producer(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    p = Producer(r)
    for i in range(3):
        p.enqueue("emails", {"i": i})
    p.enqueue("emails", {"later": True}, delay=3600)
    # A job a worker holds: the in-flight ZSET, as the worker's take script writes it.
    r.zadd(keys.inflight("emails"), {"0000000000001-x": time.time() + 30})
    d = only(read_depths_sync(r, [qspec("emails", "native")], time.time() + 1))
    assert (d.waiting, d.in_flight, d.delayed) == (3, 1, 1)
    assert d.enqueued_total == 4
    assert d.oldest_age_seconds is not None
    assert 0 <= d.oldest_age_seconds < 60


async def test_native_async_and_due_delayed(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    Producer(r).enqueue("q", {"x": 1}, delay=5)
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        now = time.time()
        d = only(await read_depths(client, [qspec("q", "native")], now))
        assert (d.waiting, d.delayed) == (0, 1)
        d = only(await read_depths(client, [qspec("q", "native")], now + 10))
        assert (d.waiting, d.delayed) == (1, 0)  # due: ready now
    finally:
        await client.aclose()
