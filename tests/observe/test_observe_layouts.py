"""Depth readers against data written by the real libraries (or, for Laravel and
Sidekiq, written the way their source writes it)."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import redis
import redis.asyncio

from queueworker.engine.types import QueueDepth
from queueworker.observe.layouts import (
    DepthError,
    for_observation,
    read_depths,
    read_depths_sync,
)
from queueworker.worker import keys
from queueworker.worker.producer import Producer

from support.engine_layouts import bullmq_fill, ensure_node, qspec


def only(results: list[QueueDepth | DepthError]) -> QueueDepth:
    assert len(results) == 1
    assert isinstance(results[0], QueueDepth), results[0]
    return results[0]


def noop() -> None:  # an importable job function for rq
    return None


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
    assert d.oldest_age_seconds is not None and 0 <= d.oldest_age_seconds < 60


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


@pytest.mark.parametrize("decode", [False, True])
def test_list_and_stream(redis_url: str, decode: bool) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=decode)
    r.lpush("plain", "a", "b")
    for i in range(5):
        r.xadd("events", {"i": i})
    r.xgroup_create("events", "g", id="0")
    r.xreadgroup("g", "c1", {"events": ">"}, count=2)  # 2 pending, 3 lag
    res = read_depths_sync(r, [qspec("plain", "list"),
                               qspec("events", "stream", consumerGroup="g"),
                               qspec("nostream", "stream", consumerGroup="g"),
                               qspec("events", "stream", consumerGroup="other")], time.time())
    got = [(d.waiting, d.in_flight) for d in res if isinstance(d, QueueDepth)]
    assert got == [(2, 0), (3, 2), (0, 0), (5, 0)]
    # Ages from the entry ids: the 3rd entry is the oldest unread for group g.
    ids = [e[0] for e in r.xrange("events")]
    third = int(str(ids[2].decode() if isinstance(ids[2], bytes) else ids[2]).split("-")[0])
    first = int(str(ids[0].decode() if isinstance(ids[0], bytes) else ids[0]).split("-")[0])
    now = time.time() + 5
    res = read_depths_sync(r, [qspec("events", "stream", consumerGroup="g"),
                               qspec("events", "stream", consumerGroup="other"),
                               qspec("nostream", "stream", consumerGroup="g")], now)
    ages = [d.oldest_age_seconds for d in res if isinstance(d, QueueDepth)]
    assert ages == [pytest.approx(now - third / 1000), pytest.approx(now - first / 1000), None]


def test_celery_priorities_and_unacked(redis_url: str) -> None:
    from celery import Celery
    from kombu import Connection

    app = Celery("t", broker=redis_url)
    for prio in (0, 0, 3, 6, 9):
        app.send_task("tasks.work", args=[1], queue="jobs", priority=prio)
    app.send_task("tasks.work", args=[1], queue="other")
    # A consumer that took a message and has not acked it yet: it sits in `unacked`.
    with Connection(redis_url) as conn:
        sq = conn.SimpleQueue("jobs", no_ack=False)
        msg = sq.get(timeout=5)
        assert msg is not None
        r = redis.Redis.from_url(redis_url)
        assert r.llen("jobs\x06\x166") + r.llen("jobs\x06\x169") >= 1  # priority lists in use
        d = only(read_depths_sync(r, [qspec("jobs", "celery")], time.time()))
        assert (d.waiting, d.in_flight) == (4, 1)
        msg.ack()
        sq.close()
    d = only(read_depths_sync(r, [qspec("jobs", "celery")], time.time()))
    assert (d.waiting, d.in_flight) == (4, 0)


def test_rq(redis_url: str) -> None:
    from rq import Queue

    r = redis.Redis.from_url(redis_url)
    q = Queue("reports", connection=r)
    # A client that decodes replies reads the same numbers.
    text_client = redis.Redis.from_url(redis_url, decode_responses=True)
    for _ in range(4):
        q.enqueue(noop)
    q.enqueue_in(timedelta(hours=1), noop)
    taken = Queue.dequeue_any([q], timeout=None, connection=r)  # into :intermediate
    assert taken is not None
    for client in (r, text_client):
        d = only(read_depths_sync(client, [qspec("reports", "rq")], time.time() + 2))
        assert (d.waiting, d.in_flight, d.delayed) == (3, 1, 1)
        assert d.oldest_age_seconds is not None and 0 <= d.oldest_age_seconds < 60


def test_bullmq(redis_url: str) -> None:
    ensure_node()
    bullmq_fill(redis_url, "render", waiting=4, prioritized=2, delayed=1, active=2)
    r = redis.Redis.from_url(redis_url)
    d = only(read_depths_sync(r, [qspec("render", "bullmq")], time.time() + 1))
    # 6 added ready; 2 of them were taken by the worker.
    assert (d.waiting, d.in_flight, d.delayed) == (4, 2, 1)
    assert d.oldest_age_seconds is not None and 0 <= d.oldest_age_seconds < 120


def test_laravel_as_redisqueue_writes(redis_url: str) -> None:
    """Keys as Illuminate/Queue/LuaScripts.php push/later/pop write them."""
    r = redis.Redis.from_url(redis_url)
    pre, now = "app_database_", time.time()
    base = f"{pre}queues:default"
    for i in range(3):  # push(): RPUSH the payload, RPUSH notify
        r.rpush(base, json.dumps({"uuid": str(i), "attempts": 0, "createdAt": int(now) - 40}))
        r.rpush(f"{base}:notify", 1)
    r.zadd(f"{base}:delayed", {"due": now - 1, "later": now + 600})  # later(): ZADD available_at
    r.zadd(f"{base}:reserved", {"running": now + 90})  # pop(): ZADD now+retry_after
    d = only(read_depths_sync(r, [qspec("default", "laravel", keyPrefix=pre)], now))
    assert (d.waiting, d.in_flight, d.delayed) == (4, 1, 1)
    assert d.oldest_age_seconds is not None and 39 <= d.oldest_age_seconds <= 41
    # Horizon's payloads carry pushedAt (microtime(true) as a string).
    r.lpush(f"{pre}queues:horizon", json.dumps({"uuid": "h", "pushedAt": f"{now - 12:.4f}"}))
    d = only(read_depths_sync(r, [qspec("horizon", "laravel", keyPrefix=pre)], now))
    assert d.oldest_age_seconds == pytest.approx(12, abs=0.01)
    r.lpush(f"{pre}queues:old", json.dumps({"uuid": "o", "attempts": 0}))
    d = only(read_depths_sync(r, [qspec("old", "laravel", keyPrefix=pre)], now))
    assert (d.waiting, d.oldest_age_seconds) == (1, None)


@pytest.mark.parametrize("millis", [False, True])
def test_sidekiq_as_client_writes(redis_url: str, millis: bool) -> None:
    """Keys as sidekiq lib/sidekiq/client.rb (LPUSH), scheduled.rb, launcher.rb write them."""
    r = redis.Redis.from_url(redis_url)
    now = time.time()
    stamp = (int((now - 25) * 1000)) if millis else now - 25
    r.sadd("queues", "default")
    r.lpush("queue:default", json.dumps({"jid": "a", "queue": "default", "enqueued_at": stamp}))
    r.lpush("queue:default", json.dumps({"jid": "b", "queue": "default", "enqueued_at": now}))
    r.zadd("schedule", {json.dumps({"jid": "c", "queue": "default"}): now - 1,
                        json.dumps({"jid": "d", "queue": "default"}): now + 600,
                        json.dumps({"jid": "e", "queue": "mail"}): now - 1})
    r.zadd("retry", {json.dumps({"jid": "f", "queue": "default"}): now - 5})
    r.sadd("processes", "host:1:abc")
    r.hset("host:1:abc:work", mapping={
        "t1": json.dumps({"queue": "default", "payload": "{}", "run_at": now}),
        "t2": json.dumps({"queue": "mail", "payload": "{}", "run_at": now}),
    })
    d = only(read_depths_sync(r, [qspec("default", "sidekiq")], now))
    assert (d.waiting, d.in_flight) == (4, 1)
    assert d.oldest_age_seconds is not None and 24 <= d.oldest_age_seconds <= 26


def test_wrong_type_names_the_key_and_others_still_read(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    r.set("rq:queue:broken", "not a list")
    r.rpush("rq:queue:fine", "id1")
    res = read_depths_sync(
        r, [qspec("broken", "rq"), qspec("fine", "rq"), qspec("x", "celery")], time.time()
    )
    assert isinstance(res[0], DepthError)
    assert "rq:queue:broken" in str(res[0]) and "wrong kind" in str(res[0])
    assert isinstance(res[1], QueueDepth) and res[1].waiting == 1
    assert isinstance(res[2], QueueDepth) and res[2].waiting == 0
    queues, error = for_observation(res)
    assert queues is None and error is not None and "rq:queue:broken" in error
    queues, error = for_observation(res[1:])
    assert error is None and queues is not None and len(queues) == 2


def test_celery_global_keyprefix(redis_url: str) -> None:
    from celery import Celery

    app = Celery("t", broker=redis_url)
    app.conf.broker_transport_options = {"global_keyprefix": "tenant1:"}
    app.send_task("tasks.work", queue="jobs")
    app.send_task("tasks.work", queue="jobs", priority=9)
    r = redis.Redis.from_url(redis_url)
    d = only(read_depths_sync(r, [qspec("jobs", "celery", keyPrefix="tenant1:")], time.time()))
    assert d.waiting == 2
    d = only(read_depths_sync(r, [qspec("jobs", "celery")], time.time()))
    assert d.waiting == 0


def test_dramatiq_waiting_through_list_layout(redis_url: str) -> None:
    """Dramatiq keeps ready message ids in the LIST `dramatiq:<queue>`."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=redis_url)
    dramatiq.set_broker(broker)

    @dramatiq.actor(queue_name="thumbs", broker=broker)
    def thumb(n: int) -> None:
        return None

    for i in range(3):
        thumb.send(i)
    r = redis.Redis.from_url(redis_url)
    d = only(read_depths_sync(r, [qspec("thumbs", "list", keyPrefix="dramatiq:")],
                              time.time()))
    assert d.waiting == 3
    broker.close()
