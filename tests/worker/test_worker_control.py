"""Handler control (control.py, execute.py): Fail, Release, max_exceptions, hooks."""

from __future__ import annotations

from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from queueworker.worker import keys
from queueworker.worker.broker import Settlement
from queueworker.worker.control import Fail, Release, handler
from queueworker.worker.failed import FailedStore
from queueworker.worker.job import Job
from queueworker.worker.producer import Producer
from queueworker.worker.results import JobFailedError
from queueworker.worker.runtime import Worker

from support.worker_inproc import fast_settings, run_until, table


@pytest.fixture
def producer(redis_url: str) -> Producer:
    return Producer(redis.Redis.from_url(redis_url, decode_responses=True), keyring=None)


async def _finished(producer: Producer, *ids: str) -> bool:
    return all((o := producer.outcome(i)) is not None and o.finished for i in ids)


async def test_fail_goes_to_the_failed_store_at_once_and_calls_on_failure(
        redis_url: str, producer: Producer) -> None:
    failures: list[tuple[str, str]] = []

    @handler(on_failure=lambda job, error: failures.append((job.id, error)))
    def h(payload: Any) -> None:
        raise Fail("audio longer than an hour")

    job_id = producer.enqueue("default", {}, max_tries=5)
    w = Worker(fast_settings(redis_url), table(h))
    await run_until(w, lambda: _finished(producer, job_id))
    with pytest.raises(JobFailedError, match="Fail: audio longer than an hour"):
        producer.result(job_id)
    info = producer.job(job_id)
    assert info is not None
    assert (info["tries"], info["deliveries"]) == (1, 1)
    assert failures == [(job_id, "Fail: audio longer than an hour")]
    assert FailedStore(producer.redis).ids() == [job_id]
    text = w.metrics.render().decode()
    assert 'reason="failed_by_handler"} 1.0' in text


async def test_release_puts_the_job_back_without_counting_a_try(
        redis_url: str, producer: Producer, r: aioredis.Redis) -> None:
    seen: list[int] = []

    def h(payload: Any, job: Job) -> str:
        seen.append(job.deliveries)
        if job.deliveries < 3:
            raise Release(0.05, "GPU busy")
        return "ran"

    job_id = producer.enqueue("default", {}, max_tries=1)
    w = Worker(fast_settings(redis_url), table(h))
    await run_until(w, lambda: _finished(producer, job_id))
    assert producer.result(job_id) == "ran"
    assert seen == [1, 2, 3]
    info = producer.job(job_id)
    assert info is not None
    assert (info["tries"], info["releases"]) == (0, 2)
    stats = await r.hgetall(keys.stats("default"))
    assert (stats["released"], stats["completed"]) == ("2", "1")
    assert 'queueworker_worker_jobs_released_total{queue="default"} 2.0' in (
        w.metrics.render().decode())


def test_release_refuses_a_negative_delay() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        Release(-1)


async def test_max_exceptions_fails_before_max_tries_and_hooks_run(
        redis_url: str, producer: Producer) -> None:
    calls: list[str] = []

    async def on_retry(job: Job, error: str, delay: float) -> None:
        calls.append(f"retry {job.deliveries} {error} {delay}")

    @handler(max_exceptions=2, on_retry=on_retry,
             on_failure=lambda job, error: calls.append(f"failed {error}"))
    def h(payload: Any) -> None:
        raise KeyError(payload)

    by_handler = producer.enqueue("default", "a", max_tries=10, backoff=0)
    by_job = producer.enqueue("default", "b", max_tries=10, backoff=0, max_exceptions=1)
    w = Worker(fast_settings(redis_url), table(h))
    await run_until(w, lambda: _finished(producer, by_handler, by_job))
    with pytest.raises(JobFailedError, match=r"KeyError: 'a' \(max_exceptions 2 reached\)"):
        producer.result(by_handler)
    with pytest.raises(JobFailedError, match=r"max_exceptions 1 reached"):
        producer.result(by_job)
    a, b = producer.job(by_handler), producer.job(by_job)
    assert a is not None
    assert b is not None
    assert (a["tries"], a["exceptions"], b["tries"], b["exceptions"]) == (2, 2, 1, 1)
    assert "retry 1 KeyError: 'a' 0.0" in calls
    assert sorted(c for c in calls if c.startswith("failed")) == [
        "failed KeyError: 'a' (max_exceptions 2 reached)",
        "failed KeyError: 'b' (max_exceptions 1 reached)"]
    assert 'reason="max_exceptions"} 2.0' in w.metrics.render().decode()


async def test_before_and_after_hooks(redis_url: str, producer: Producer) -> None:
    seen: list[Any] = []

    def before(job: Job) -> None:
        if job.payload() == "refuse":
            raise PermissionError("not today")
        seen.append(("before", job.payload()))

    def after(job: Job, result: Any) -> None:
        seen.append(("after", result))
        raise RuntimeError("a broken after hook does not undo the work")

    @handler(before=before, after=after)
    async def h(payload: Any) -> Any:
        return payload + "!"

    ok = producer.enqueue("default", "go")
    refused = producer.enqueue("default", "refuse", max_tries=1)
    w = Worker(fast_settings(redis_url), table(h))
    await run_until(w, lambda: _finished(producer, ok, refused))
    assert producer.result(ok) == "go!"
    assert seen == [("before", "go"), ("after", "go!")]
    with pytest.raises(JobFailedError, match="PermissionError: not today"):
        producer.result(refused)


async def test_after_done_hook_of_the_settler_sees_the_result(
        redis_url: str, producer: Producer) -> None:
    done: list[tuple[str, str]] = []
    job_id = producer.enqueue("default", 2)
    w = Worker(fast_settings(redis_url), table(lambda p: {"double": p * 2}))

    def hook(s: Settlement) -> None:
        done.append((s.job.id, s.a))

    w.settler.after_done.append(hook)
    await run_until(w, lambda: _finished(producer, job_id))
    assert done == [(job_id, '{"double":4}')]


def test_handler_options_are_checked() -> None:
    with pytest.raises(ValueError, match="max_exceptions"):
        handler(max_exceptions=0)
    with pytest.raises(TypeError, match="hook before is not callable"):
        handler(before="nope")  # type: ignore[arg-type]
