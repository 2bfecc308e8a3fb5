"""The Sidekiq layout, written the way its source writes it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import redis

from queueworker.observe.layouts import read_depths_sync

from support.engine_layouts import ensure_sidekiq, only, qspec, sidekiq_push, sidekiq_server


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
    assert (d.waiting, d.in_flight, d.delayed) == (4, 1, 1)
    assert d.oldest_age_seconds is not None
    assert 24 <= d.oldest_age_seconds <= 26


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_sidekiq_real_server_scheduled_retry_running(redis_url: str) -> None:
    """Sidekiq's client and server write the keys: a failed job in `retry`, a running
    one in `<identity>:workers`, scheduled ones in `schedule`, two waiting."""
    ensure_sidekiq()
    r = redis.Redis.from_url(redis_url)
    server = sidekiq_server(redis_url, "-c", "1", "-q", "default", "-t", "2")
    try:
        sidekiq_push(redis_url, {"class": "Fail", "args": [], "queue": "default"})
        wait_for(lambda: r.zcard("retry") == 1, "the failed job in `retry`")
        sidekiq_push(redis_url, {"class": "Block", "args": ["release"], "queue": "default"})

        def running() -> int:
            return sum(r.hlen(f"{p.decode()}:workers") for p in r.smembers("processes"))

        wait_for(lambda: running() == 1, "the running job in `<identity>:workers`")
        t0 = time.time()
        sidekiq_push(
            redis_url,
            *[{"class": "Block", "args": ["release"], "queue": "default"}] * 2,
            *[{"class": "Block", "args": ["release"], "queue": "default", "in": 3600}] * 2,
            {"class": "Block", "args": ["release"], "queue": "default", "in": 10},
            {"class": "Block", "args": ["release"], "queue": "mail", "in": 3600},
        )
        q = qspec("default", "sidekiq")
        d = only(read_depths_sync(r, [q], time.time()))
        # Waiting 2; running 1; delayed: 3 scheduled and the retry (15-25 s out).
        assert (d.waiting, d.in_flight, d.delayed) == (2, 1, 4)
        assert d.oldest_age_seconds is not None
        assert d.oldest_age_seconds < time.time() - t0 + 1
        # 40 s on, the 10 s one and the retry are due: ready now.
        d = only(read_depths_sync(r, [q], t0 + 40))
        assert (d.waiting, d.in_flight, d.delayed) == (4, 1, 2)
        mail = only(read_depths_sync(r, [qspec("mail", "sidekiq")], time.time()))
        assert (mail.waiting, mail.in_flight, mail.delayed) == (0, 0, 1)
    finally:
        r.rpush("release", *["go"] * 8)
        server.terminate()
        server.wait(timeout=30)
