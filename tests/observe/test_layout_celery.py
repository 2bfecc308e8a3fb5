"""The Celery (kombu Redis transport) layout, against what Celery writes."""

from __future__ import annotations

import time

import redis

from queueworker.observe.layouts import read_depths_sync

from support.engine_layouts import only, qspec


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
