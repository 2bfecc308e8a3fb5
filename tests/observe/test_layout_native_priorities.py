"""The native reader sees every priority level (keys.waiting) in its one pipeline."""

from __future__ import annotations

import time

import redis

from queueworker.observe.layouts import read_depths_sync
from queueworker.worker import keys
from queueworker.worker.producer import Producer

from support.engine_layouts import only, qspec


def _reads(r: redis.Redis) -> int:
    return int(r.info("stats")["total_reads_processed"])


def test_depth_per_priority_and_the_oldest_of_all_levels(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    p = Producer(r)
    p.enqueue("jobs", 1, priority=10)
    p.enqueue("jobs", 2, priority=10)
    p.enqueue("jobs", 3)
    p.enqueue("jobs", 4, priority=2, delay=3600)
    # A job waiting for an hour at level 1: the oldest of the queue, whatever its level.
    r.lpush(keys.waiting("jobs", priority=1), f"{int((time.time() - 3600) * 1000):013d}-x")
    spec = qspec("jobs", "native")
    before = _reads(r)
    d = only(read_depths_sync(r, [spec], time.time()))
    assert _reads(r) - before == 2  # the reader's one pipeline, and this INFO
    assert (d.waiting, d.delayed, d.in_flight) == (4, 1, 0)
    assert dict(d.waiting_by_priority) == {10: 2, 9: 0, 8: 0, 7: 0, 6: 0, 5: 1, 4: 0, 3: 0,
                                           2: 0, 1: 1}
    assert [lvl for lvl, _ in d.waiting_by_priority] == list(range(10, 0, -1))
    assert d.oldest_age_seconds is not None
    assert 3500 < d.oldest_age_seconds < 3700


def test_an_empty_queue_reads_zero_at_every_level(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    d = only(read_depths_sync(r, [qspec("none", "native")], time.time()))
    assert (d.waiting, d.oldest_age_seconds) == (0, None)
    assert dict(d.waiting_by_priority) == {lvl: 0 for lvl in range(1, 11)}
