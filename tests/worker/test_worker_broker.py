"""Each atomic move (the Lua scripts) against a real redis-server."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio as aioredis

from queueworker.worker import keys
from queueworker.worker.broker import Broker, RateLimit, Settlement
from queueworker.worker.heartbeat import aread_heartbeats, read_heartbeats
from queueworker.worker.producer import AsyncProducer, Producer


@pytest.fixture
def producer(redis_url: str) -> Producer:
    return Producer(redis.Redis.from_url(redis_url))


async def reap(b: Broker, queues: list[str], max_lost: int = 5, max_count: int = 0,
               max_age: float = 0) -> tuple[int, int, int, int] | None:
    await b.redis.delete(*(keys.reaper_lock(q) for q in queues))
    return await b.reap(queues, "t", 0.001, max_lost=max_lost, failed_max_age=max_age,
                        failed_max_count=max_count, worker_stale=60)


async def test_enqueue_fetch_ack_use_the_keys_py_layout(r: aioredis.Redis,
                                                        producer: Producer) -> None:
    job_id = producer.enqueue("q1", {"n": 1})
    assert await r.lrange(keys.waiting("q1"), 0, -1) == [job_id]
    assert await r.hget(keys.job(job_id), "state") == "waiting"
    assert await r.hget(keys.stats("q1"), "enqueued") == "1"
    assert await r.llen(keys.notify("q1")) == 1
    b = Broker(r)
    [job] = await b.fetch(["q1"], 10, 30, "w1")
    assert (job.id, job.queue, job.payload(), job.deliveries) == (job_id, "q1", {"n": 1}, 1)
    assert await r.zscore(keys.inflight("q1"), job_id) is not None
    assert await r.llen(keys.waiting("q1")) == 0
    assert await r.hget(keys.job(job_id), "state") == "running"
    assert await b.settle([Settlement("done", job)], result_ttl=60) == [True]
    assert await r.zcard(keys.inflight("q1")) == 0
    assert await r.hget(keys.job(job_id), "state") == "done"
    assert 0 < await r.ttl(keys.job(job_id)) <= 60
    assert await r.hget(keys.stats("q1"), "completed") == "1"
    assert producer.job(job_id)["state"] == "done"  # type: ignore[index]


async def test_expired_lease_returns_to_the_head_with_delivery_count_2(
        r: aioredis.Redis, producer: Producer) -> None:
    first = producer.enqueue("q", 1)
    second = producer.enqueue("q", 2)
    b = Broker(r)
    [job] = await b.fetch(["q"], 1, 0.05, "dead-worker")
    assert job.id == first
    await asyncio.sleep(0.1)
    assert await reap(b, ["q"]) == (1, 0, 0, 0)
    assert await r.lrange(keys.waiting("q"), 0, -1) == [second, first]  # first runs next
    [again] = await b.fetch(["q"], 1, 30, "w2")
    assert (again.id, again.deliveries) == (first, 2)
    assert await r.hget(keys.job(first), "lost") == "1"


async def test_a_stale_ack_does_not_touch_the_new_owner(r: aioredis.Redis,
                                                        producer: Producer) -> None:
    producer.enqueue("q", {})
    b = Broker(r)
    [old] = await b.fetch(["q"], 1, 0.05, "slow")
    await asyncio.sleep(0.1)
    await reap(b, ["q"])
    [new] = await b.fetch(["q"], 1, 30, "fast")
    assert await b.settle([Settlement("done", old)], 60) == [False]
    assert await r.zscore(keys.inflight("q"), new.id) is not None
    assert await b.settle([Settlement("done", new)], 60) == [True]


async def test_a_job_whose_lease_keeps_expiring_is_failed_as_a_poison_pill(
        r: aioredis.Redis, producer: Producer) -> None:
    job_id = producer.enqueue("q", {})
    b = Broker(r)
    for _ in range(2):
        await b.fetch(["q"], 1, 0.01, "w")
        await asyncio.sleep(0.03)
        await reap(b, ["q"], max_lost=2)
    assert await r.zscore(keys.failed("q"), job_id) is not None
    assert "LeaseExpired" in await r.hget(keys.job(job_id), "error")
    assert await r.llen(keys.waiting("q")) == 0


async def test_beat_renews_leases_and_reports_lost_ones(r: aioredis.Redis,
                                                        producer: Producer) -> None:
    producer.enqueue("q", {})
    b = Broker(r)
    [job] = await b.fetch(["q"], 1, 0.2, "w")
    for i in range(4):
        await asyncio.sleep(0.1)
        if i == 2:
            await r.script_flush()  # a Redis restart forgets scripts: the beat loads them
        assert await b.beat("w", '{"id": "w"}', 5, 0.2, [job]) == []
    assert await r.zscore(keys.workers(), "w") is not None  # the registry (REGISTER)
    assert await r.get(keys.worker("w")) == '{"id": "w"}'
    assert await reap(b, ["q"]) == (0, 0, 0, 0)  # still leased after 0.4 s
    await asyncio.sleep(0.3)
    await reap(b, ["q"])
    assert await b.beat("w", '{"id": "w"}', 5, 0.2, [job]) == [job.id]


async def test_delayed_jobs_wait_then_run(r: aioredis.Redis, producer: Producer) -> None:
    job_id = producer.enqueue("q", {}, delay=0.3)
    assert await r.zscore(keys.delayed("q"), job_id) is not None
    b = Broker(r)
    assert await b.fetch(["q"], 5, 30, "w") == []
    await asyncio.sleep(0.35)
    assert [j.id for j in await b.fetch(["q"], 5, 30, "w")] == [job_id]


async def test_reaper_promotes_due_delayed_jobs(r: aioredis.Redis, producer: Producer) -> None:
    job_id = producer.enqueue("q", {}, delay=0.05)
    await asyncio.sleep(0.1)
    assert await reap(Broker(r), ["q"]) == (0, 1, 0, 0)
    assert await r.lrange(keys.waiting("q"), 0, -1) == [job_id]
    assert await r.hget(keys.job(job_id), "state") == "waiting"


async def test_reaper_runs_once_per_interval(r: aioredis.Redis) -> None:
    b = Broker(r)
    kw = dict(max_lost=5, failed_max_age=0, failed_max_count=0, worker_stale=60)
    assert await b.reap(["q"], "a", 10, **kw) is not None  # type: ignore[arg-type]
    assert await b.reap(["q"], "b", 10, **kw) is None  # type: ignore[arg-type]


async def test_queues_are_tried_in_priority_order(r: aioredis.Redis, producer: Producer) -> None:
    low = producer.enqueue("low", "l")
    high = producer.enqueue("high", "h")
    default = producer.enqueue("default", "d")
    jobs = await Broker(r).fetch(["high", "default", "low"], 10, 30, "w")
    assert [j.id for j in jobs] == [high, default, low]
    [one] = await Broker(r).fetch(["high", "low"], 1, 30, "w") or [None]
    assert one is None


async def test_unique_jobs(r: aioredis.Redis, producer: Producer) -> None:
    a = producer.enqueue_result("q", {"user": 1}, unique_key="welcome:1")
    b = producer.enqueue_result("q", {"user": 1}, unique_key="welcome:1")
    assert a.created
    assert not b.created
    assert a.id == b.id
    assert await r.llen(keys.waiting("q")) == 1
    broker = Broker(r)
    [job] = await broker.fetch(["q"], 1, 30, "w")
    assert not producer.enqueue_result("q", {}, unique_key="welcome:1").created  # running
    await broker.settle([Settlement("done", job)], 60)
    c = producer.enqueue_result("q", {}, unique_key="welcome:1")
    assert c.created
    assert c.id != a.id
    # the time bound
    d = producer.enqueue_result("q", {}, unique_key="short", unique_for=0.05)
    await asyncio.sleep(0.1)
    assert producer.enqueue_result("q", {}, unique_key="short").id != d.id


async def test_rate_limit_per_queue_shared_by_all_workers(r: aioredis.Redis,
                                                          producer: Producer) -> None:
    producer.enqueue_many("q", range(10))
    limits = {"q": RateLimit(3, 0.5)}
    b = Broker(r)
    got = len(await b.fetch(["q"], 10, 30, "w1", limits))
    got += len(await b.fetch(["q"], 10, 30, "w2", limits))
    assert 3 <= got <= 6  # one window, or the edge of two
    assert await r.keys(keys.rate("q", 0).removesuffix("0") + "*")  # the keys.py name
    await asyncio.sleep(0.55)
    assert len(await b.fetch(["q"], 10, 30, "w1", limits)) == 3


async def test_concurrency_limit_shared_by_all_workers(r: aioredis.Redis,
                                                       producer: Producer) -> None:
    ids = producer.enqueue_many("q", range(3), concurrency_key="gpu", concurrency_limit=2)
    b = Broker(r)
    first = await b.fetch(["q"], 1, 30, "w1")
    second = await b.fetch(["q"], 5, 30, "w2")
    assert len(first) + len(second) == 2
    assert await r.zcard(keys.delayed("q")) == 1  # parked
    assert await r.zcard(keys.concurrency("q", "gpu")) == 2
    await b.settle([Settlement("done", first[0])], 60)
    await asyncio.sleep(0.1)
    assert await b.fetch(["q"], 5, 30, "w1", park_delay=0.1) == []  # still parked
    await asyncio.sleep(0.5)
    third = await b.fetch(["q"], 5, 30, "w1")
    assert {j.id for j in first + second + third} == set(ids)


async def test_handing_back_puts_the_job_at_the_head(r: aioredis.Redis,
                                                     producer: Producer) -> None:
    a, b_id = producer.enqueue_many("q", [1, 2])
    b = Broker(r)
    [ja, jb] = await b.fetch(["q"], 2, 30, "w")
    producer.enqueue("q", 3)
    assert await b.settle([Settlement("back", jb, 0, "1"), Settlement("back", ja)], 60) == [
        True, True]
    [first, second, _] = await b.fetch(["q"], 3, 30, "w")
    assert (first.id, first.deliveries) == (a, 2)  # started: the delivery counts
    assert (second.id, second.deliveries) == (b_id, 1)  # never started: undone
    assert await r.hget(keys.job(a), "tries") == "0"


async def test_retry_and_fail_settlements(r: aioredis.Redis, producer: Producer) -> None:
    job_id = producer.enqueue("q", {}, unique_key="u")
    b = Broker(r)
    [job] = await b.fetch(["q"], 1, 30, "w")
    await b.settle([Settlement("retry", job, 1, "0.05", "Boom: 1")], 60)
    assert await r.hget(keys.job(job_id), "state") == "delayed"
    assert await r.hget(keys.job(job_id), "last_error") == "Boom: 1"
    await asyncio.sleep(0.06)
    [job] = await b.fetch(["q"], 1, 30, "w")
    assert (job.tries, job.deliveries) == (1, 2)
    await b.settle([Settlement("fail", job, 2, "Boom: 2", "Traceback ...")], 60)
    assert await r.zscore(keys.failed("q"), job_id) is not None
    assert await r.hget(keys.stats("q"), "failed") == "1"
    assert await r.hget(keys.stats("q"), "retried") == "1"
    assert await r.exists(keys.unique("q", "u")) == 0  # released: a new one may be enqueued
    assert await r.ttl(keys.job(job_id)) == -1  # failed jobs are kept until trimmed


async def test_failed_store_is_trimmed_by_count_and_age(r: aioredis.Redis,
                                                        producer: Producer) -> None:
    b = Broker(r)
    ids = producer.enqueue_many("q", range(4))
    jobs = await b.fetch(["q"], 4, 30, "w")
    await b.settle([Settlement("fail", j, 1, "x", "") for j in jobs], 60)
    assert await reap(b, ["q"], max_count=2) == (0, 0, 0, 2)
    kept = await r.zrange(keys.failed("q"), 0, -1)
    assert kept == [j.id for j in jobs][2:] or len(kept) == 2
    assert await r.exists(*(keys.job(i) for i in ids)) == 2
    await asyncio.sleep(0.05)
    assert await reap(b, ["q"], max_age=0.01) == (0, 0, 0, 2)
    assert await r.zcard(keys.failed("q")) == 0


async def test_the_old_layouts_failed_store_is_trimmed_too(r: aioredis.Redis) -> None:
    # Failed jobs left by the layout before ids named their queue: one global store.
    old = [f"170000000000{i}-{i:016x}" for i in range(3)]
    for i, job_id in enumerate(old):
        await r.hset(keys.legacy_job(job_id), mapping={"queue": "q", "state": "failed"})
        await r.zadd(keys.legacy_failed(), {job_id: 100 + i})
    b = Broker(r)
    assert await reap(b, ["q"], max_count=1) == (0, 0, 0, 2)
    assert await r.zrange(keys.legacy_failed(), 0, -1) == [old[2]]
    assert await r.exists(*(keys.legacy_job(i) for i in old)) == 1


async def test_heartbeats_are_readable_sync_and_async(r: aioredis.Redis, redis_url: str) -> None:
    b = Broker(r)
    await b.beat("w1", '{"id": "w1", "pod": "p1", "state": "idle", "pid": 7}', 5, 30, [])
    await b.beat("w2", '{"id": "w2", "pod": "p2", "state": "busy"}', 5, 30, [])
    await r.delete(keys.worker("w2"))  # expired: left out
    beats = read_heartbeats(redis.Redis.from_url(redis_url))
    assert [(h.id, h.pod, h.state, h.pid) for h in beats] == [("w1", "p1", "idle", 7)]
    assert [h.id for h in await aread_heartbeats(r)] == ["w1"]
    assert read_heartbeats(redis.Redis.from_url(redis_url), "other-prefix") == []


async def test_bulk_enqueue_and_status_lookup_async(r: aioredis.Redis) -> None:
    p = AsyncProducer(r, prefix="app")
    ids = await p.enqueue_many("q", [{"i": i} for i in range(2500)], max_tries=5, chunk=1000)
    assert len(set(ids)) == 2500
    assert await r.llen(keys.waiting("q", "app")) == 2500
    info = await p.job(ids[0])
    assert info is not None
    assert (info["state"], info["payload"], info["max_tries"]) == ("waiting", {"i": 0}, 5)
    assert await p.job("0000000000000-nope") is None
    assert (await p.enqueue_result("q", 1, unique_key="k")).created
