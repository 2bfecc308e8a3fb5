"""Exception throttling per key (throttle.py, its hook in execute.py), on a real redis-server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from queueworker.worker.control import Release
from queueworker.worker.failed import FailedStore
from queueworker.worker.job import Job
from queueworker.worker.metrics import WorkerMetrics
from queueworker.worker.producer import Producer
from queueworker.worker.runtime import Worker
from queueworker.worker.throttle import Rule, Throttles, rule_of, throttle_exceptions

from support.worker_inproc import fast_settings, run_until, table


def _job(queue: str = "default", handler: str = "") -> Job:
    return Job(id="1700000000000-00", queue=queue, payload_text="{}", handler=handler)


async def test_limit_exceptions_open_the_key_for_every_worker(r: aioredis.Redis) -> None:
    rule = Rule(limit=3, window=30.0, backoff=20.0)
    a = Throttles(r, "qw", WorkerMetrics())
    b = Throttles(r, "qw", WorkerMetrics())  # a second worker: shares only Redis
    job, boom = _job(), ConnectionError("partner down")
    key = await b.check(rule, "charge", job, {})  # b saw it closed (and caches that)
    assert key == "charge"
    assert await a.hit(rule, key, job, boom) is None  # 1 and 2: ordinary failed attempts
    assert await a.hit(rule, key, job, boom) is None
    opened = await a.hit(rule, key, job, boom)  # the 3rd opens it and releases its job
    assert isinstance(opened, Release)
    assert 20.0 <= opened.delay <= 22.0 + 1e-6
    assert "throttled: charge" in opened.reason
    # b still believes it closed (cache): its failing job is released all the same.
    late = await b.hit(rule, key, job, boom)
    assert isinstance(late, Release)
    assert 10.0 < late.delay <= 22.0  # what is left of the 20 s
    # a third worker, fresh: released before the handler runs.
    c = Throttles(r, "qw", WorkerMetrics())
    with pytest.raises(Release, match="throttled: charge open for"):
        await c.check(rule, "charge", job, {})
    state = await r.hgetall("qw:throttle:charge")
    assert state["opened"] == "1"
    assert 0 < await r.pttl("qw:throttle:charge") <= 50_000
    text = a.metrics.render().decode()
    assert 'queueworker_worker_throttle_opened_total{handler="charge"} 1.0' in text
    assert 'queueworker_worker_jobs_throttled_total{queue="default"} 1.0' in text


async def test_keys_by_payload_field_and_function_are_separate(r: aioredis.Redis) -> None:
    t = Throttles(r, "qw", WorkerMetrics())
    by_field = Rule(limit=1, window=30.0, backoff=20.0, key="tenant")
    job = _job()
    ka = await t.check(by_field, "sync", job, {"tenant": "a"})
    assert (ka, await t.check(by_field, "sync", job, {})) == ("sync:a", "sync:-")
    assert isinstance(await t.hit(by_field, ka, job, RuntimeError("x")), Release)
    with pytest.raises(Release):
        await t.check(by_field, "sync", job, {"tenant": "a"})
    assert await t.check(by_field, "sync", job, {"tenant": "b"}) == "sync:b"  # b is not
    by_fn = Rule(limit=1, window=30.0, backoff=1.0, key=lambda p, j: p["host"].upper())
    assert await t.check(by_fn, "get", job, {"host": "x"}) == "get:X"
    bad = Rule(limit=1, window=30.0, backoff=1.0, key=lambda p, j: 7)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="not a string"):
        await t.check(bad, "get", job, {})


async def test_only_the_named_exceptions_count(r: aioredis.Redis) -> None:
    t = Throttles(r, "qw", WorkerMetrics())
    rule = Rule(limit=1, window=30.0, backoff=5.0, exceptions=(ConnectionError,))
    assert await t.hit(rule, "h", _job(), ValueError("a bug, not an outage")) is None
    assert await r.exists("qw:throttle:h") == 0
    assert isinstance(await t.hit(rule, "h", _job(), ConnectionError("down")), Release)


async def test_window_ends_and_key_closes_after_backoff(r: aioredis.Redis) -> None:
    t = Throttles(r, "qw", WorkerMetrics())
    job, boom = _job(), OSError("x")
    short = Rule(limit=2, window=0.3, backoff=5.0)
    assert await t.hit(short, "w", job, boom) is None
    await asyncio.sleep(0.4)  # the window ended: the count starts again
    assert await t.hit(short, "w", job, boom) is None
    assert await r.hget("qw:throttle:w", "n") == "1"
    rule = Rule(limit=2, window=30.0, backoff=0.4)
    assert await t.hit(rule, "h", job, boom) is None
    assert isinstance(await t.hit(rule, "h", job, boom), Release)
    deadline = asyncio.get_running_loop().time() + 10
    while True:  # closes once the back-off is over (known locally, then read again)
        try:
            assert await t.check(rule, "h", job, {}) == "h"
            break
        except Release:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)


def test_decorator_checks_its_options() -> None:
    @throttle_exceptions(limit=2, window=10, backoff=5, key="tenant")
    def h(payload: Any) -> None: ...

    assert rule_of(h) == Rule(2, 10.0, 5.0, "tenant")
    assert rule_of(lambda p: p) is None
    with pytest.raises(ValueError, match="limit must be a whole number"):
        throttle_exceptions(limit=0, window=1, backoff=1)
    with pytest.raises(ValueError, match="backoff must be a number of seconds"):
        throttle_exceptions(limit=1, window=1, backoff=0)
    with pytest.raises(TypeError, match="exception types"):
        throttle_exceptions(limit=1, window=1, backoff=1, exceptions=(42,))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="payload field name or a function"):
        throttle_exceptions(limit=1, window=1, backoff=1, key=3)  # type: ignore[arg-type]


async def test_worker_releases_instead_of_burning_tries(redis_url: str) -> None:
    producer = Producer(redis.Redis.from_url(redis_url, decode_responses=True), keyring=None)
    calls: list[str] = []

    @throttle_exceptions(limit=2, window=30, backoff=0.5)
    def charge(payload: Any, job: Job) -> str:
        calls.append(payload["n"])
        if len(calls) <= 2:
            raise ConnectionError("partner down")
        return "charged"

    first = producer.enqueue("default", {"n": "1"}, max_tries=1)
    w = Worker(fast_settings(redis_url, concurrency=1), table(charge))
    second = producer.enqueue("default", {"n": "2"}, max_tries=1)

    async def finished() -> bool:
        return all((o := producer.outcome(i)) is not None and o.finished
                   for i in (first, second))

    await run_until(w, finished)
    # 1st exception: an ordinary failed try (max_tries 1: failed for good); the 2nd opened
    # the key: its job was released, ran again after the back-off, and succeeded.
    assert FailedStore(producer.redis).ids() == [first]
    assert producer.result(second) == "charged"
    info = producer.job(second)
    assert info is not None
    assert (info["tries"], info["releases"]) == (0, 1)
    assert calls == ["1", "2", "2"]
    assert 'queueworker_worker_jobs_throttled_total{queue="default"} 1.0' in (
        w.metrics.render().decode())
