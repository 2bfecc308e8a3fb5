"""The plain `list` and `stream` layouts (and Dramatiq, which is a list)."""

from __future__ import annotations

import time

import pytest
import redis

from queueworker.engine.types import QueueDepth
from queueworker.observe.layouts import read_depths_sync

from support.engine_layouts import only, qspec


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
