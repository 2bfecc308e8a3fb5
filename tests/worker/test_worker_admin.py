"""Admin verbs: queue clear / pause / resume, restart, and the schedule CLI, against a real
redis-server with in-process workers (sidecar.run_worker, what `queueworker worker` runs)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from queueworker.worker import admin, cli_queue, cli_restart, cli_schedule, keys
from queueworker.worker.broker import Broker
from queueworker.worker.job import Job
from queueworker.worker.producer import Producer
from queueworker.worker.runtime import Worker
from queueworker.worker.schedules import Schedule
from queueworker.worker.sidecar import run_worker

from support.worker_inproc import fast_settings, table, wait_for


def _sync(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


async def test_clear_removes_waiting_and_delayed_not_running(
        redis_url: str, r: Any, capsys: pytest.CaptureFixture[str]) -> None:
    p = Producer(_sync(redis_url))
    running = p.enqueue("default", {"n": 0})
    (taken,) = await Broker(r).fetch(["default"], 1, 30, "w1")
    assert taken.id == running
    waiting = [p.enqueue("default", {"n": i}) for i in range(5)]
    p.enqueue("default", {"n": 9}, unique_key="only-one")
    delayed = [p.enqueue("default", {"n": i}, delay=60) for i in range(2)]
    assert admin.pending(_sync(redis_url), "default") == 8
    # No terminal to confirm at and no --yes: nothing is removed.
    assert cli_queue.main(["clear", "default", "--redis-url", redis_url]) == 1
    assert "pass --yes" in capsys.readouterr().err
    assert admin.pending(_sync(redis_url), "default") == 8
    assert cli_queue.main(["clear", "default", "--yes", "--redis-url", redis_url]) == 0
    assert "cleared 8 job(s) from queue 'default'" in capsys.readouterr().out
    s = _sync(redis_url)
    assert admin.pending(s, "default") == 0
    assert not any(s.exists(keys.job(i)) for i in waiting + delayed)
    assert s.zscore(keys.inflight("default"), running) is not None  # it finishes as usual
    assert s.exists(keys.job(running))
    assert p.enqueue_result("default", {}, unique_key="only-one").created  # key released
    assert admin.clear_queue(s, "default", batch=1) == 1  # several batches end too
    assert cli_queue.main(["clear", "bad{name}", "--yes", "--redis-url", redis_url]) == 2


async def test_a_paused_queue_is_not_taken_from_until_resumed(redis_url: str) -> None:
    done: list[str] = []

    async def handle(payload: Any, job: Job) -> None:
        done.append(job.queue)

    s = _sync(redis_url)
    assert admin.pause_queue(s, "a")
    assert not admin.pause_queue(s, "a")
    p = Producer(s)
    for q in ("a", "b", "a", "b"):
        p.enqueue(q, {})
    worker = Worker(fast_settings(redis_url, queues=["a", "b"]), table(handle))
    task = asyncio.create_task(run_worker(worker))
    try:
        await wait_for(lambda: _true(done.count("b") == 2), what="queue b's jobs")
        await asyncio.sleep(0.5)  # several fetch loops: a stays untouched
        assert done == ["b", "b"]
        assert s.llen(keys.waiting("a")) == 2
        assert admin.paused_queues(s) == {"a"}
        assert admin.resume_queue(s, "a")
        await wait_for(lambda: _true(len(done) == 4), what="queue a's jobs after resume")
    finally:
        worker.stop("test")
        assert await asyncio.wait_for(task, 20) == 0


async def test_restart_lets_the_running_job_finish_then_exits_0(
        redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow(payload: Any) -> None:
        started.set()
        await asyncio.sleep(0.5)
        finished.set()

    s = _sync(redis_url)
    admin.request_restart(s)  # an older request: a worker started after it ignores it
    job_id = Producer(s).enqueue("default", {})
    worker = Worker(fast_settings(redis_url), table(slow))
    task = asyncio.create_task(run_worker(worker))
    await asyncio.wait_for(started.wait(), 15)
    assert not worker.stopping
    assert cli_restart.main(["--redis-url", redis_url]) == 0
    assert "will finish their jobs and exit" in capsys.readouterr().out
    assert await asyncio.wait_for(task, 20) == 0
    assert finished.is_set()
    assert worker.stop_reason == "restart requested"
    assert Producer(s).job(job_id)["state"] == "done"  # type: ignore[index]


async def test_schedule_cli(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    worker = Worker(fast_settings(redis_url, queues=["work"]), table(_noop))
    sched = [Schedule("report", queue="reports", cron="0 3 * * *", tz="Europe/Berlin",
                      payload={"kind": "daily"})]
    task = asyncio.create_task(run_worker(worker, sched))
    s = _sync(redis_url)
    url = ["--redis-url", redis_url]
    try:
        await wait_for(lambda: _true(bool(s.exists("qw:schedule:report"))), what="registration")
        assert cli_schedule.main(["list", *url]) == 0
        out = capsys.readouterr().out
        assert "report" in out
        assert "cron '0 3 * * *' Europe/Berlin" in out
        assert cli_schedule.main(["pause", "report", *url]) == 0
        assert cli_schedule.main(["show", "report", *url]) == 0
        assert '"paused": true' in capsys.readouterr().out
        assert cli_schedule.main(["resume", "report", *url]) == 0
        assert cli_schedule.main(["trigger", "report", *url]) == 0
        job_id = capsys.readouterr().out.strip().splitlines()[-1]
        assert s.lrange(keys.waiting("reports"), 0, -1) == [job_id]
        assert s.hget(keys.job(job_id), "payload") == '{"kind":"daily"}'
        assert cli_schedule.main(["trigger", "nope", *url]) == 1
        assert "no schedule 'nope'" in capsys.readouterr().err
    finally:
        worker.stop("test")
        assert await asyncio.wait_for(task, 20) == 0


async def _noop(payload: Any) -> None:
    return None


async def _true(value: bool) -> bool:
    return value
