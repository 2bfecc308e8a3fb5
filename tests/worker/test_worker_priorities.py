"""Priorities 1..10 inside a queue (keys.waiting): 10 first, FIFO within a level, the
order of queues first; every way back to waiting keeps a job's level."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio as aioredis
from redis.crc import key_slot

from queueworker.worker import admin, keys
from queueworker.worker.broker import Broker, Settlement
from queueworker.worker.depths import awaiting_by_priority, waiting_by_priority
from queueworker.worker.failed import FailedStore
from queueworker.worker.producer import AsyncProducer, Producer


@pytest.fixture
def producer(redis_url: str) -> Producer:
    return Producer(redis.Redis.from_url(redis_url, decode_responses=True))


@pytest.mark.parametrize("bad", [0, 11, -1, "high", 5.5, True, None])
def test_a_bad_priority_is_refused_with_a_clear_error(producer: Producer, bad: object) -> None:
    with pytest.raises(ValueError, match=r"bad priority .*from 1 \(lowest\) to 10 \(highest\)"):
        producer.enqueue("q", {}, priority=bad)
    assert producer.redis.dbsize() == 0  # nothing written


async def test_async_producer_validates_too(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        with pytest.raises(ValueError, match="bad priority 42"):
            await AsyncProducer(client).enqueue("q", {}, priority=42)
        job_id = await AsyncProducer(client).enqueue("q", {}, priority=10)
        assert await client.lrange(keys.waiting("q", priority=10), 0, -1) == [job_id]
    finally:
        await client.aclose()


def test_each_level_is_a_list_in_the_queues_hash_slot(producer: Producer) -> None:
    default = producer.enqueue("q", "d")
    eight = producer.enqueue("q", "e", priority=8)
    r = producer.redis
    assert r.lrange("qw:{q}:waiting", 0, -1) == [default]  # the default keeps the old key
    assert r.lrange("qw:{q}:waiting:p8", 0, -1) == [eight]
    assert producer.job(eight)["priority"] == 8  # type: ignore[index]
    assert producer.job(default)["priority"] == 5  # type: ignore[index]
    slots = {key_slot(k.encode()) for _, k in keys.waiting_levels("q")}
    slots |= {key_slot(keys.delayed("q").encode()), key_slot(keys.inflight("q").encode())}
    assert len(slots) == 1


async def test_ten_first_fifo_within_a_level(r: aioredis.Redis, producer: Producer) -> None:
    order = [("a", 5), ("b", 10), ("c", 1), ("d", 10), ("e", 5), ("f", 7), ("g", 1)]
    ids = {name: producer.enqueue("q", name, priority=p) for name, p in order}
    b = Broker(r)
    one_by_one = [(await b.fetch(["q"], 1, 30, "w"))[0].payload() for _ in range(3)]
    rest = [j.payload() for j in await b.fetch(["q"], 10, 30, "w")]
    assert one_by_one + rest == ["b", "d", "f", "a", "e", "c", "g"]
    assert await b.fetch(["q"], 10, 30, "w") == []
    assert all(producer.job(i)["state"] == "running" for i in ids.values())  # type: ignore[index]


async def test_the_order_of_queues_comes_before_priority(r: aioredis.Redis,
                                                         producer: Producer) -> None:
    producer.enqueue("low", "urgent-but-low-queue", priority=10)
    producer.enqueue("high", "high-queue-p1", priority=1)
    producer.enqueue("high", "high-queue-p5")
    jobs = await Broker(r).fetch(["high", "low"], 10, 30, "w")
    assert [j.payload() for j in jobs] == ["high-queue-p5", "high-queue-p1",
                                           "urgent-but-low-queue"]
    assert [j.priority for j in jobs] == [5, 1, 10]


async def test_delayed_handed_back_recovered_and_retried_jobs_keep_their_level(
        r: aioredis.Redis, producer: Producer) -> None:
    b = Broker(r)
    producer.enqueue("q", "filler")
    late = producer.enqueue("q", "late", priority=9, delay=0.05)
    await asyncio.sleep(0.1)
    [job] = await b.fetch(["q"], 1, 30, "w")  # promoted into its level: before the filler
    assert (job.id, job.priority) == (late, 9)
    assert await b.settle([Settlement("back", job, job.tries, "1")], 60) == [True]
    assert await r.lrange(keys.waiting("q", priority=9), 0, -1) == [late]
    [job] = await b.fetch(["q"], 1, 0.05, "dies")
    await asyncio.sleep(0.1)
    await r.delete(keys.reaper_lock("q"))
    res = await b.reap(["q"], "t", 0.001, max_lost=5, failed_max_age=0, failed_max_count=0,
                       worker_stale=60)
    assert res is not None
    assert res[0] == 1
    assert await r.lrange(keys.waiting("q", priority=9), 0, -1) == [late]
    [job] = await b.fetch(["q"], 1, 30, "w")
    assert await b.settle([Settlement("fail", job, 1, "E: no", "")], 60) == [True]
    assert FailedStore(producer.redis).retry([late]) == 1
    assert await r.lrange(keys.waiting("q", priority=9), 0, -1) == [late]


async def test_a_foreign_priority_field_is_read_as_a_level(r: aioredis.Redis,
                                                           producer: Producer) -> None:
    # written by another program: not a number -> 5, out of range -> clamped
    for name, value in (("junk", "high"), ("big", "99"), ("small", "-3"), ("nan", "nan")):
        await r.hset(keys.job(name), mapping={"queue": "q", "payload": '"x"', "priority": value})
        await r.zadd(keys.delayed("q"), {name: 0})
    jobs = await Broker(r).fetch(["q"], 10, 30, "w")
    assert [(j.id, j.priority) for j in jobs] == [("big", 10), ("junk", 5), ("nan", 5),
                                                  ("small", 1)]
    assert keys.priority_level("high") == 5
    assert keys.priority_level("99") == 10
    assert keys.priority_level(b"7") == 7


async def test_depth_per_priority_for_the_cli_the_api_and_the_worker_metrics(
        r: aioredis.Redis, producer: Producer) -> None:
    producer.enqueue("q", 1, priority=10)
    producer.enqueue("q", 2)
    producer.enqueue("q", 3)
    producer.enqueue("q", 4, priority=1)
    want = {p: 0 for p in keys.PRIORITIES} | {10: 1, 5: 2, 1: 1}
    empty = {p: 0 for p in keys.PRIORITIES}
    assert waiting_by_priority(producer.redis, ["q", "none"]) == {"q": want, "none": empty}
    assert await awaiting_by_priority(r, ["q"]) == {"q": want}
    gone, depths = await Broker(r).beat_and_read("w", "{}", 5, 30, [], ["q", "none"])
    assert (gone, depths) == ([], {"q": want, "none": empty})


def test_clear_and_pending_see_every_level(producer: Producer) -> None:
    producer.enqueue("q", 1, priority=10)
    producer.enqueue("q", 2)
    producer.enqueue("q", 3, priority=1)
    assert admin.pending(producer.redis, "q") == 3
    assert admin.clear_queue(producer.redis, "q", batch=2) == 3
    assert all(producer.redis.llen(k) == 0 for _, k in keys.waiting_levels("q"))
