"""The Sidekiq layout, written the way its source writes it."""

from __future__ import annotations

import json
import time

import pytest
import redis

from queueworker.observe.layouts import read_depths_sync

from support.engine_layouts import only, qspec


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
