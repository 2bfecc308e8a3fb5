"""Results and waiting (results.py) against a real redis-server and an in-process worker."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from queueworker.worker import keys
from queueworker.worker.failed import FailedStore
from queueworker.worker.job import Job
from queueworker.worker.producer import AsyncProducer, Producer
from queueworker.worker.results import (
    JobFailedError,
    JobNotFoundError,
    ResultPendingError,
    WaitTimeoutError,
    encode_result,
)
from queueworker.worker.runtime import Worker

from support.worker_inproc import fast_settings, run_until, table, wait_for


@pytest.fixture
def producer(redis_url: str) -> Producer:
    return Producer(redis.Redis.from_url(redis_url, decode_responses=True), keyring=None)


@pytest.fixture
async def aproducer(r: aioredis.Redis) -> AsyncProducer:
    return AsyncProducer(r, keyring=None)


async def _finished(producer: Producer, *ids: str) -> bool:
    return all((o := producer.outcome(i)) is not None and o.finished for i in ids)


async def test_the_return_value_is_the_result_and_failures_raise(
        redis_url: str, producer: Producer) -> None:
    def handler(payload: Any) -> Any:
        if payload == "boom":
            raise ValueError("bad input")
        return {"echo": payload, "n": [1, 2]}

    ok = producer.enqueue("default", "hi")
    bad = producer.enqueue("default", "boom", max_tries=1)
    none = producer.enqueue("default", None)
    with pytest.raises(ResultPendingError):
        producer.result(ok)
    w = Worker(fast_settings(redis_url), table(handler))
    await run_until(w, lambda: _finished(producer, ok, bad, none))
    assert producer.result(ok) == {"echo": "hi", "n": [1, 2]}
    assert producer.result(none) == {"echo": None, "n": [1, 2]}
    with pytest.raises(JobFailedError, match="bad input") as err:
        producer.result(bad)
    assert err.value.job_id == bad
    assert "raise ValueError" in err.value.traceback
    with pytest.raises(JobNotFoundError):
        producer.result("0000000000000-nope")
    assert producer.wait(ok, timeout=1) == {"echo": "hi", "n": [1, 2]}  # already done
    info = producer.job(ok)
    assert info is not None
    assert info["result"] == {"echo": "hi", "n": [1, 2]}


async def test_wait_is_woken_by_the_settle_not_by_polling(
        redis_url: str, producer: Producer, r: aioredis.Redis) -> None:
    gate = asyncio.Event()

    async def handler(payload: Any) -> Any:
        await gate.wait()
        return payload * 2

    job_id = producer.enqueue("default", 21)
    got: list[Any] = []
    waiters = [threading.Thread(target=lambda: got.append(producer.wait(job_id, timeout=30)))
               for _ in range(3)]  # every waiter wakes on the one token
    w = Worker(fast_settings(redis_url), table(handler))
    task = asyncio.create_task(w.run())
    for t in waiters:
        t.start()
    await wait_for(lambda: _blocked_clients(r, 3), what="three waiters blocked")
    assert await r.hget(keys.job(job_id), "waited") == "1"
    gate.set()
    await wait_for(lambda: _true(len(got) == 3), what="all waiters woken")
    assert got == [42, 42, 42]
    for t in waiters:
        t.join(5)
    assert await r.ttl(keys.done(job_id)) > 0  # the token expires with the result
    w.stop("test")
    await asyncio.wait_for(task, 20)


async def _blocked_clients(r: aioredis.Redis, n: int) -> bool:
    """At least n clients blocked in a waiter's BLMOVE (a worker's BLPOP does not count)."""
    return sum(1 for c in await r.client_list() if c.get("cmd") == "blmove") >= n


async def _true(x: bool) -> bool:
    return x


async def test_async_wait_timeout_and_failure(redis_url: str, aproducer: AsyncProducer,
                                              producer: Producer) -> None:
    def handler(payload: Any) -> Any:
        raise RuntimeError("no GPU")

    job_id = await aproducer.enqueue("default", {}, max_tries=1)
    started = time.monotonic()
    with pytest.raises(WaitTimeoutError):
        await aproducer.wait(job_id, timeout=0.2)
    assert time.monotonic() - started < 5
    w = Worker(fast_settings(redis_url), table(handler))
    task = asyncio.create_task(w.run())
    with pytest.raises(JobFailedError, match="RuntimeError: no GPU"):
        await aproducer.wait(job_id, timeout=15)
    with pytest.raises(JobNotFoundError):
        await aproducer.wait("0000000000000-nope", timeout=1)
    w.stop("test")
    await asyncio.wait_for(task, 20)


async def test_a_result_that_came_during_a_disconnect_is_not_missed(
        redis_url: str, aproducer: AsyncProducer, r: aioredis.Redis) -> None:
    job_id = await aproducer.enqueue("default", 1)
    waiter = asyncio.create_task(aproducer.wait(job_id, timeout=30))
    await wait_for(lambda: _blocked_clients(r, 1), what="the waiter blocked")
    # Cut every other client (the waiter's BLMOVE): it reconnects and reads the state again.
    await r.client_kill_filter(_type="normal", skipme=True)
    w = Worker(fast_settings(redis_url), table(lambda p: "late"))
    task = asyncio.create_task(w.run())
    assert await asyncio.wait_for(waiter, 20) == "late"
    w.stop("test")
    await asyncio.wait_for(task, 20)


async def test_a_worker_crash_only_delays_the_wake_up(redis_url: str, producer: Producer,
                                                     r: aioredis.Redis) -> None:
    job_id = producer.enqueue("default", "x")
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.append(producer.wait(job_id, timeout=30)))
    t.start()
    # A worker that took the job and died: the job is in flight with a lease that runs out.
    crashed = Worker(fast_settings(redis_url), table(lambda p: p))
    jobs = await crashed.broker.fetch(["default"], 1, 0.2, "dead-worker")
    assert [j.id for j in jobs] == [job_id]
    await crashed.redis.aclose()
    w = Worker(fast_settings(redis_url), table(lambda p: p + "!"))
    await run_until(w, lambda: _true(bool(got)))
    t.join(5)
    assert got == ["x!"]
    info = producer.job(job_id)
    assert info is not None
    assert info["deliveries"] == 2


async def test_results_over_the_limit_fail_the_job_naming_the_limit(
        redis_url: str, producer: Producer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUEWORKER_MAX_RESULT_BYTES", "100")

    def handler(payload: Any) -> Any:
        return {"big": "x" * 200} if payload == "big" else {1, 2}  # a set is not JSON

    big = producer.enqueue("default", "big", max_tries=5)
    odd = producer.enqueue("default", "set", max_tries=5)
    w = Worker(fast_settings(redis_url), table(handler))
    await run_until(w, lambda: _finished(producer, big, odd))
    with pytest.raises(JobFailedError, match="over the result limit of 100 bytes"):
        producer.result(big)
    with pytest.raises(JobFailedError, match="not JSON-serialisable"):
        producer.result(odd)
    store = FailedStore(producer.redis)
    assert set(store.ids()) == {big, odd}
    info = producer.job(big)
    assert info is not None
    assert info["tries"] == 1  # no retry: the next try would return the same


async def test_result_ttl_per_job_and_the_failed_token(redis_url: str, producer: Producer,
                                                      r: aioredis.Redis) -> None:
    short = producer.enqueue("default", 1, result_ttl=50)
    default = producer.enqueue("default", 2)
    w = Worker(fast_settings(redis_url, result_ttl=7200), table(lambda p: p))
    await run_until(w, lambda: _finished(producer, short, default))
    assert 0 < await r.ttl(keys.job(short)) <= 50
    assert 3600 < await r.ttl(keys.job(default)) <= 7200
    assert await r.exists(keys.done(short)) == 0  # nobody waited: no token


def test_encode_result() -> None:
    assert encode_result(None) == ""
    assert encode_result({"a": "é"}) == '{"a":"é"}'
    with pytest.raises(ValueError, match="over the result limit of 4 bytes"):
        encode_result("12345", 4)
    with pytest.raises(ValueError, match="not JSON"):
        encode_result(float("nan"))


async def test_job_fields_without_a_worker() -> None:
    # A Job outside a worker: progress is a no-op, never an error.
    j = Job(id="1", queue="q", payload_text="{}")
    j.progress(0.5, {"step": 1})


async def test_a_poison_pill_failed_by_the_reaper_wakes_its_waiter(
        redis_url: str, aproducer: AsyncProducer, r: aioredis.Redis) -> None:
    job_id = await aproducer.enqueue("default", "x")
    waiter = asyncio.create_task(aproducer.wait(job_id, timeout=20))
    await wait_for(lambda: _blocked_clients(r, 1), what="the waiter blocked")
    crashed = Worker(fast_settings(redis_url), table(lambda p: p))
    assert [j.id for j in await crashed.broker.fetch(["default"], 1, 0.05, "dead")] == [job_id]
    await crashed.redis.aclose()
    await asyncio.sleep(0.1)
    reaped = Worker(fast_settings(redis_url, max_lost=1), table(lambda p: p))
    assert await reaped.broker.reap(["default"], "me", 1.0, max_lost=1, failed_max_age=0,
                                    failed_max_count=0, worker_stale=60) is not None
    await reaped.redis.aclose()
    started = time.monotonic()
    with pytest.raises(JobFailedError, match="LeaseExpired"):
        await asyncio.wait_for(waiter, 20)
    assert time.monotonic() - started < 10  # the token, not the 30 s re-check
