"""The RQ layout, against what RQ writes."""

from __future__ import annotations

import time
from datetime import timedelta

import redis

from queueworker.observe.layouts import read_depths_sync

from support.engine_layouts import only, qspec


def noop() -> None:  # an importable job function for rq
    return None


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
        assert d.oldest_age_seconds is not None
        assert 0 <= d.oldest_age_seconds < 60
        # Two hours on, the scheduled job is due: ready now, no longer delayed.
        d = only(read_depths_sync(client, [qspec("reports", "rq")], time.time() + 7200))
        assert (d.waiting, d.in_flight, d.delayed) == (4, 1, 0)
