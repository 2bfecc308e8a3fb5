"""The Dramatiq layout, against what Dramatiq's Redis broker writes."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from queueworker.observe.layouts import read_depths_sync
from queueworker.operator.api import QueueLayout

from support.engine_layouts import only, qspec


def work(*args: Any) -> None:  # the actor's body; no worker runs it here
    return None


def fill(redis_url: str, namespace: str) -> Any:
    """Through dramatiq: 5 sent, one taken and held, one taken and dead-lettered;
    one delayed by 10 s (taken by a delay consumer) and two by an hour."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=redis_url, namespace=namespace)
    actor = dramatiq.actor(work, broker=broker, queue_name="jobs", actor_name="work")
    for i in range(5):
        actor.send(i)
        time.sleep(0.002)  # distinct message_timestamps
    actor.send_with_options(args=(10,), delay=10_000)
    for i in range(2):
        actor.send_with_options(args=(i,), delay=3_600_000)
    consumer = broker.consume("jobs", prefetch=2, timeout=1000)
    held, dead = next(consumer), next(consumer)
    assert held is not None
    assert dead is not None
    consumer.nack(dead)  # -> jobs.XQ, as a worker does after the last retry
    delay_consumer = broker.consume("jobs.DQ", prefetch=1, timeout=1000)
    assert next(delay_consumer) is not None  # a worker holds the 10 s one until its eta
    return broker, consumer, held


@pytest.mark.parametrize("namespace", ["dramatiq", "tenant1"])
def test_dramatiq_waiting_delayed_in_flight_dead(redis_url: str, namespace: str) -> None:
    t0 = time.time()
    broker, consumer, held = fill(redis_url, namespace)
    r = redis.Redis.from_url(redis_url)
    prefix = {} if namespace == "dramatiq" else {"keyPrefix": namespace}
    q = qspec("jobs", "dramatiq", **prefix)
    assert q.layout is QueueLayout.dramatiq
    assert r.llen(f"{namespace}:jobs") == 3
    assert r.hlen(f"{namespace}:jobs.DQ.msgs") == 3
    assert r.llen(f"{namespace}:jobs.DQ") == 2  # one delayed message is in a worker's memory

    d = only(read_depths_sync(r, [q], time.time()))
    assert (d.waiting, d.in_flight, d.delayed, d.other) == (3, 1, 3, 1)
    # The oldest waiting message is the third sent (two were taken).
    assert d.oldest_age_seconds is not None
    assert 0 <= d.oldest_age_seconds < time.time() - t0 + 1

    later = only(read_depths_sync(r, [q], t0 + 60))  # the 10 s one is due: ready now
    assert (later.waiting, later.in_flight, later.delayed, later.other) == (4, 1, 2, 1)
    assert later.oldest_age_seconds is not None
    assert 55 < later.oldest_age_seconds <= 61

    consumer.ack(held)  # the running message finishes
    done = only(read_depths_sync(r, [q], time.time()))
    assert (done.waiting, done.in_flight) == (3, 0)
    # Another namespace sees nothing.
    other = "tenant1" if namespace == "dramatiq" else "dramatiq"
    prefix = {} if other == "dramatiq" else {"keyPrefix": other}
    empty = only(read_depths_sync(r, [qspec("jobs", "dramatiq", **prefix)], time.time()))
    assert (empty.waiting, empty.in_flight, empty.delayed, empty.other) == (0, 0, 0, 0)
    assert empty.oldest_age_seconds is None
    broker.close()


def test_dramatiq_worker_holds_running_message(redis_url: str) -> None:
    """A real dramatiq Worker running a message that blocks: its ack set is in flight."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    r = redis.Redis.from_url(redis_url)
    broker = RedisBroker(url=redis_url)

    def block() -> None:
        redis.Redis.from_url(redis_url).blpop(["release"], timeout=30)

    actor = dramatiq.actor(block, broker=broker, queue_name="jobs", actor_name="block")
    for _ in range(4):
        actor.send()
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and r.llen("dramatiq:jobs") > 2:
            time.sleep(0.05)
        d = only(read_depths_sync(r, [qspec("jobs", "dramatiq")], time.time()))
        # One thread: one running, one prefetched (prefetch = 2 x threads), both taken.
        assert (d.waiting, d.in_flight, d.delayed) == (2, 2, 0)
    finally:
        r.rpush("release", *["go"] * 4)
        worker.stop()
        broker.close()
    # Stopped: the prefetched message went back to the list (Worker.stop requeues it),
    # unless the thread started it after the release; nothing is held any more.
    d = only(read_depths_sync(r, [qspec("jobs", "dramatiq")], time.time()))
    assert d.in_flight == 0
    assert d.waiting in (2, 3)
