"""The Laravel layout, written the way its source writes it."""

from __future__ import annotations

import json
import time

import pytest
import redis

from queueworker.observe.layouts import read_depths_sync

from support.engine_layouts import only, qspec


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
    assert d.oldest_age_seconds is not None
    assert 39 <= d.oldest_age_seconds <= 41
    # Horizon's payloads carry pushedAt (microtime(true) as a string).
    r.lpush(f"{pre}queues:horizon", json.dumps({"uuid": "h", "pushedAt": f"{now - 12:.4f}"}))
    d = only(read_depths_sync(r, [qspec("horizon", "laravel", keyPrefix=pre)], now))
    assert d.oldest_age_seconds == pytest.approx(12, abs=0.01)
    r.lpush(f"{pre}queues:old", json.dumps({"uuid": "o", "attempts": 0}))
    d = only(read_depths_sync(r, [qspec("old", "laravel", keyPrefix=pre)], now))
    assert (d.waiting, d.oldest_age_seconds) == (1, None)
