"""The consumer loop in-process against a real redis-server: outcomes, failures, limits."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from queueworker.worker import keys
from queueworker.worker.failed import FailedStore
from queueworker.worker.heartbeat import aread_heartbeats
from queueworker.worker.job import Job
from queueworker.worker.producer import Producer
from queueworker.worker.runtime import Worker

from support.redis_server import free_port
from support.worker_inproc import fast_settings, run_until, table, wait_for


@pytest.fixture
def producer(redis_url: str) -> Producer:
    return Producer(redis.Redis.from_url(redis_url, decode_responses=True))


def state(producer: Producer, job_id: str) -> str | None:
    info = producer.job(job_id)
    return None if info is None else str(info["state"])


async def test_jobs_run_and_are_acked(redis_url: str, producer: Producer,
                                      r: aioredis.Redis) -> None:
    seen: list[tuple[Any, str, int]] = []

    async def handler(payload: Any, job: Job) -> None:
        seen.append((payload, job.id, job.deliveries))

    ids = producer.enqueue_many("default", [{"n": i} for i in range(50)])
    w = Worker(fast_settings(redis_url), table(handler))
    assert await run_until(w, lambda: _all_state(producer, ids, "done")) == 0
    assert sorted(p["n"] for p, _, _ in seen) == list(range(50))
    assert {d for _, _, d in seen} == {1}
    assert await r.zcard(keys.inflight("default")) == 0
    assert w.processed == 50
    text = w.metrics.render().decode()
    assert 'queueworker_worker_jobs_completed_total{queue="default"} 50.0' in text
    assert await r.exists(keys.worker(w.id)) == 0  # heartbeat removed on exit


async def _all_state(producer: Producer, ids: list[str], want: str) -> bool:
    return all(state(producer, i) == want for i in ids)


async def test_failures_retry_with_backoff_then_go_to_the_failed_store(
        redis_url: str, producer: Producer) -> None:
    attempts: list[float] = []

    def handler(payload: Any) -> None:
        if payload == "bad":
            attempts.append(time.monotonic())
            raise KeyError("no such user")

    bad = producer.enqueue("default", "bad", max_tries=3, backoff=[0.1, 0.3])
    good = producer.enqueue("default", "good")
    w = Worker(fast_settings(redis_url), table(handler))
    await run_until(w, lambda: _failed_and_done(producer, bad, good))
    assert len(attempts) == 3
    assert attempts[1] - attempts[0] >= 0.09
    assert attempts[2] - attempts[1] >= 0.29
    info = FailedStore(producer.redis).show(bad)
    assert info is not None
    assert info["error"] == "KeyError: 'no such user'"
    assert "Traceback" in info["traceback"]
    assert "raise KeyError" in info["traceback"]
    assert info["tries"] == 3
    assert w.failed == 1
    assert w.processed == 1


async def _failed_and_done(producer: Producer, bad: str, good: str) -> bool:
    return state(producer, bad) == "failed" and state(producer, good) == "done"


async def test_retry_until_stops_retries(redis_url: str, producer: Producer) -> None:
    async def handler(payload: Any) -> None:
        raise RuntimeError("down")

    job_id = producer.enqueue("default", {}, max_tries=10, backoff=1,
                              retry_until=time.time() + 0.5)
    w = Worker(fast_settings(redis_url), table(handler))
    await run_until(w, lambda: _is(producer, job_id, "failed"))
    assert producer.job(job_id)["tries"] == 1  # type: ignore[index]


async def _is(producer: Producer, job_id: str, want: str) -> bool:
    return state(producer, job_id) == want


async def test_async_timeout_stops_the_job_and_counts_as_failed(redis_url: str,
                                                                producer: Producer) -> None:
    finished = []

    async def handler(payload: Any) -> None:
        await asyncio.sleep(payload)
        finished.append(payload)

    slow = producer.enqueue("default", 5, timeout=0.2, max_tries=1)
    quick = producer.enqueue("default", 0.01, timeout=0.2)
    w = Worker(fast_settings(redis_url), table(handler))
    await run_until(w, lambda: _failed_and_done(producer, slow, quick))
    assert finished == [0.01]
    info = producer.job(slow)
    assert info is not None
    assert info["error"] == "Timeout: job exceeded its timeout of 0.2s"
    assert 'reason="timeout"} 1.0' in w.metrics.render().decode()


async def test_sync_handlers_run_in_threads_and_are_abandoned_at_their_timeout(
        redis_url: str, producer: Producer) -> None:
    threads = []
    release = threading.Event()

    def handler(payload: Any) -> None:
        threads.append(threading.current_thread().name)
        if payload == "hang":
            release.wait(10)

    hang = producer.enqueue("default", "hang", timeout=0.2, max_tries=1)
    ok = producer.enqueue("default", "ok")
    w = Worker(fast_settings(redis_url, concurrency=2), table(handler))
    try:
        await run_until(w, lambda: _failed_and_done(producer, hang, ok))
        assert w.abandoned == 1
    finally:
        release.set()
    assert all(name.startswith("queueworker-job") for name in threads)
    assert "its thread was abandoned" in str(producer.job(hang)["error"])  # type: ignore[index]


async def test_stuck_threads_make_the_worker_exit_75(redis_url: str,
                                                     producer: Producer) -> None:
    release = threading.Event()

    def handler(payload: Any) -> None:
        release.wait(10)

    producer.enqueue_many("default", range(3), timeout=0.1, max_tries=1)
    w = Worker(fast_settings(redis_url, concurrency=2), table(handler))
    try:
        code = await asyncio.wait_for(w.run(), 10)
    finally:
        release.set()
    assert code == 75
    assert "threads stuck" in w.stop_reason


async def test_bad_payload_and_unknown_handler_fail_without_stopping_the_worker(
        redis_url: str, producer: Producer, r: aioredis.Redis) -> None:
    async def handler(payload: Any) -> None:
        pass

    unknown = producer.enqueue("default", {}, handler="resize_image")
    broken = producer.enqueue("default", {})
    await r.hset(keys.job(broken), "payload", "{not json")
    good = producer.enqueue("default", {})
    w = Worker(fast_settings(redis_url), table(handler))
    await run_until(w, lambda: _failed_and_done(producer, unknown, good))
    await wait_for(lambda: _is(producer, broken, "failed"))
    u = producer.job(unknown)
    b = producer.job(broken)
    assert u is not None
    assert b is not None
    assert u["error"].startswith("UnknownHandlerError: unknown handler 'resize_image'")
    assert u["tries"] == 1  # no retry for these
    assert b["error"].startswith("BadPayloadError: payload is not valid JSON")
    text = w.metrics.render().decode()
    assert 'reason="bad_payload"} 1.0' in text
    assert 'reason="unknown_handler"} 1.0' in text


async def test_max_jobs(redis_url: str, producer: Producer, r: aioredis.Redis) -> None:
    async def handler(payload: Any) -> None:
        pass

    producer.enqueue_many("default", range(30))
    w = Worker(fast_settings(redis_url, max_jobs=7, concurrency=3), table(handler))
    assert await asyncio.wait_for(w.run(), 10) == 0
    assert w.processed == 7
    assert await r.llen(keys.waiting("default")) == 23
    assert await r.zcard(keys.inflight("default")) == 0


async def test_heartbeat_shows_busy_jobs_and_metrics_endpoint_answers(
        redis_url: str, producer: Producer, r: aioredis.Redis) -> None:
    gate = asyncio.Event()

    async def handler(payload: Any) -> None:
        await gate.wait()

    job_id = producer.enqueue("default", {})
    port = free_port()
    w = Worker(fast_settings(redis_url, metrics_port=port, pod="emails-7f9"), table(handler))
    task = asyncio.create_task(w.run())

    async def busy() -> bool:
        beats = await aread_heartbeats(r)
        return bool(beats) and beats[0].state == "busy"

    await wait_for(busy)
    [beat] = await aread_heartbeats(r)
    assert beat.pod == "emails-7f9"
    assert [j.id for j in beat.in_flight] == [job_id]
    assert beat.queues == ("default",)
    assert beat.extra.get("buffered") == 0  # the operator reads it as demand on this pod
    health = await asyncio.to_thread(_get, port, "/healthz")
    assert health == (200, "ok (busy)\n")
    code, metrics = await asyncio.to_thread(_get, port, "/metrics")
    assert code == 200
    assert "queueworker_worker_jobs_in_flight 1.0" in metrics
    assert 'queueworker_worker_state{state="busy"} 1.0' in metrics
    assert "queueworker_worker_busy_ratio 0.1" in metrics  # 1 job of concurrency 10
    assert 'queueworker_worker_last_job_timestamp_seconds{queue="default"} 0.0' in metrics
    gate.set()
    await wait_for(lambda: _is(producer, job_id, "done"))
    metrics = (await asyncio.to_thread(_get, port, "/metrics"))[1]
    assert "queueworker_worker_busy_ratio 0.0" in metrics
    assert 'queueworker_worker_last_job_timestamp_seconds{queue="default"} 1.7' in metrics
    await wait_for(lambda: _idle(r))
    assert (await asyncio.to_thread(_get, port, "/healthz"))[0] == 200  # idle is ready too
    w.stop("test")
    assert await task == 0


async def _idle(r: aioredis.Redis) -> bool:
    beats = await aread_heartbeats(r)
    return bool(beats) and beats[0].state == "idle" and not beats[0].in_flight


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_losing_redis_connections_mid_job_loses_nothing(
        redis_url: str, producer: Producer, r: aioredis.Redis) -> None:
    started = asyncio.Event()

    async def handler(payload: Any, job: Job) -> None:
        started.set()
        await asyncio.sleep(0.3)

    job_id = producer.enqueue("default", {})
    w = Worker(fast_settings(redis_url, lease=3.0), table(handler))
    task = asyncio.create_task(w.run())
    await asyncio.wait_for(started.wait(), 10)
    admin = redis.Redis.from_url(redis_url)
    me = admin.client_id()
    for c in admin.client_list():
        if int(c["id"]) != me:
            admin.client_kill_filter(_id=int(c["id"]))
    await wait_for(lambda: _is(producer, job_id, "done"))
    info = producer.job(job_id)
    assert info is not None
    assert info["deliveries"] == 1
    w.stop("test")
    assert await task == 0


async def test_drain_finishes_running_jobs_and_hands_back_the_rest(
        redis_url: str, producer: Producer, r: aioredis.Redis) -> None:
    started = asyncio.Event()

    async def handler(payload: Any) -> None:
        started.set()
        await asyncio.sleep(payload)

    short = producer.enqueue("default", 0.3)
    queued = producer.enqueue_many("default", [0.3] * 5)
    w = Worker(fast_settings(redis_url, concurrency=1, prefetch=5), table(handler))
    task = asyncio.create_task(w.run())
    await asyncio.wait_for(started.wait(), 10)
    w.stop("test")
    assert await asyncio.wait_for(task, 10) == 0
    assert state(producer, short) == "done"
    assert sorted(await r.lrange(keys.waiting("default"), 0, -1)) == sorted(queued)
    for i in queued:  # never started: the delivery is undone
        assert producer.job(i)["deliveries"] == 0  # type: ignore[index]


async def test_drain_deadline_hands_running_jobs_back(redis_url: str, producer: Producer,
                                                      r: aioredis.Redis) -> None:
    started = asyncio.Event()

    async def handler(payload: Any) -> None:
        started.set()
        await asyncio.sleep(30)

    job_id = producer.enqueue("default", {}, max_tries=1)
    w = Worker(fast_settings(redis_url, drain_deadline=0.3), table(handler))
    task = asyncio.create_task(w.run())
    await asyncio.wait_for(started.wait(), 10)
    t0 = time.monotonic()
    w.stop("test")
    assert await asyncio.wait_for(task, 10) == 0
    assert time.monotonic() - t0 < 3
    info = producer.job(job_id)
    assert info is not None
    assert (info["state"], info["tries"], info["handed_back"]) == ("waiting", 0, 1)
    assert await r.lrange(keys.waiting("default"), -1, -1) == [job_id]
    assert 'queueworker_worker_jobs_handed_back_total{queue="default"} 1.0' in (
        w.metrics.render().decode())


async def test_max_time_drains_and_exits_0(redis_url: str) -> None:
    async def handler(payload: Any) -> None:
        pass

    w = Worker(fast_settings(redis_url, max_time=0.3), table(handler))
    t0 = time.monotonic()
    assert await asyncio.wait_for(w.run(), 10) == 0
    assert 0.25 < time.monotonic() - t0 < 3
    assert w.stop_reason == "max-time"


async def test_rate_limited_queue_yields_to_the_next_queue(redis_url: str,
                                                           producer: Producer) -> None:
    from queueworker.worker.cli import parser, settings_from

    order: list[str] = []

    async def handler(payload: Any, job: Job) -> None:
        order.append(job.queue)

    producer.enqueue_many("api", range(6))
    producer.enqueue_many("bulk", range(3))
    args = parser().parse_args(["--queue", "api,bulk", "--handler", "x:y", "--rate-limit",
                                "api=2/0.5", "--redis-url", redis_url])
    s = settings_from(args)
    assert s.rate_limits["api"].limit == 2
    w = Worker(fast_settings(redis_url, queues=s.queues, rate_limits=s.rate_limits),
               table(handler))
    t0 = time.monotonic()
    await run_until(w, lambda: _count(order, 9))
    assert order.count("api") == 6
    assert time.monotonic() - t0 >= 0.5  # 6 jobs at 2 per 0.5 s: three fixed windows
    assert order.index("bulk") < order.index("api", 2)  # bulk ran while api was limited


async def _count(order: list[str], n: int) -> bool:
    return len(order) >= n


async def test_timeouts_hold_even_when_the_handler_fights_the_cancellation(
        redis_url: str, producer: Producer) -> None:
    async def handler(payload: Any) -> None:
        if payload == "ok":
            return
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            if payload == "wrap":
                raise RuntimeError("interrupted") from None
            # "swallow": carry on as if nothing happened

    swallow = producer.enqueue("default", "swallow", timeout=0.2, max_tries=1)
    wrap = producer.enqueue("default", "wrap", timeout=0.2, max_tries=1)
    w = Worker(fast_settings(redis_url, concurrency=1), table(handler))
    task = asyncio.create_task(w.run())
    await wait_for(lambda: _all_state(producer, [swallow, wrap], "failed"))
    for job_id in (swallow, wrap):
        assert str(producer.job(job_id)["error"]).startswith("Timeout: job exceeded")  # type: ignore[index]
    after = producer.enqueue("default", "ok")  # the slot is healthy afterwards
    await wait_for(lambda: _is(producer, after, "done"))
    w.stop("test")
    assert await task == 0
