"""The BullMQ layout, against what BullMQ (node) writes."""

from __future__ import annotations

import time

import redis

from queueworker.observe.layouts import read_depths_sync

from support.engine_layouts import bullmq_fill, ensure_node, only, qspec


def test_bullmq(redis_url: str) -> None:
    ensure_node()
    bullmq_fill(redis_url, "render", waiting=4, prioritized=2, delayed=1, active=2)
    r = redis.Redis.from_url(redis_url)
    d = only(read_depths_sync(r, [qspec("render", "bullmq")], time.time() + 1))
    # 6 added ready; 2 of them were taken by the worker.
    assert (d.waiting, d.in_flight, d.delayed) == (4, 2, 1)
    assert d.oldest_age_seconds is not None
    assert 0 <= d.oldest_age_seconds < 120
