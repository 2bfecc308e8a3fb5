"""CLI fixes of issue 15: unix:// URLs, options after the subcommand, retry of an unknown id,
--stop-when-empty with a rate limit, job --wait, and `queueworker queues`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from queueworker.cli import main as qw
from queueworker.worker import keys
from queueworker.worker.broker import RateLimit
from queueworker.worker.producer import Producer
from queueworker.worker.runtime import Worker

from support.worker_inproc import fast_settings, table


@pytest.fixture
def url(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("QUEUEWORKER_REDIS_URL", redis_url)
    return redis_url


@pytest.fixture
def unix_url(tmp_path: Path) -> Iterator[str]:
    """A redis-server listening on a unix socket only."""
    sock = tmp_path / "redis.sock"
    proc = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(sock),
                             "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not sock.exists():
            assert time.monotonic() < deadline, "redis-server did not open its socket"
            time.sleep(0.02)
        yield f"unix://{sock}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_enqueue_job_and_failed_take_unix_urls(unix_url: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert qw(["enqueue", "--redis-url", unix_url, "q", '{"a": 1}']) == 0
    job_id = capsys.readouterr().out.strip()
    assert qw(["job", "--redis-url", unix_url, job_id]) == 0
    assert json.loads(capsys.readouterr().out)["payload"] == {"a": 1}
    assert qw(["failed", "list", "--redis-url", unix_url]) == 0
    assert "no failed jobs" in capsys.readouterr().out
    assert qw(["queues", "--redis-url", unix_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["waiting"] == 1


def test_failed_options_after_the_subcommand_and_unknown_ids(
        redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    # No QUEUEWORKER_REDIS_URL: only the option after the subcommand names the server.
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    job_id = Producer(r, keyring=None).enqueue("emails", {})
    r.hset(keys.job(job_id), mapping={"state": "failed", "error": "E: x"})
    r.zadd(keys.failed("emails"), {job_id: 1})
    assert qw(["failed", "list", "--redis-url", redis_url]) == 0
    assert job_id in capsys.readouterr().out
    assert qw(["failed", "--redis-url", redis_url, "list"]) == 0  # before it still works
    capsys.readouterr()
    assert qw(["failed", "retry", "--redis-url", redis_url, job_id, "nope-1"]) == 1
    out = capsys.readouterr()
    assert "1 job(s) put back" in out.out
    assert "not in the failed store: nope-1" in out.err
    assert qw(["failed", "retry", "--redis-url", redis_url, "nope-2"]) == 1
    assert "nope-2" in capsys.readouterr().err


async def test_stop_when_empty_waits_for_rate_limited_jobs(redis_url: str) -> None:
    producer = Producer(redis.Redis.from_url(redis_url, decode_responses=True), keyring=None)
    ids = producer.enqueue_many("limited", [1, 2, 3])
    s = fast_settings(redis_url, queues=["limited"], stop_when_empty=True,
                      rate_limits={"limited": RateLimit(1, 0.3)})
    w = Worker(s, table(lambda p: p))
    assert await asyncio.wait_for(w.run(), 30) == 0
    assert w.processed == 3
    assert all((o := producer.outcome(i)) is not None and o.state == "done" for i in ids)


def test_job_wait_prints_the_result_or_the_failure(url: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    r = redis.Redis.from_url(url, decode_responses=True)
    producer = Producer(r, keyring=None)
    ok, bad = producer.enqueue("q", 20), producer.enqueue("q", "x", max_tries=1)
    assert qw(["job", ok, "--wait", "--timeout", "0.2"]) == 124
    assert "did not finish" in capsys.readouterr().err

    def handler(payload: Any) -> Any:
        if payload == "x":
            raise ValueError("no")
        return payload + 1

    stop = threading.Event()
    worker = threading.Thread(target=_run_worker, args=(url, handler, stop))
    worker.start()
    try:
        assert qw(["job", ok, "--wait", "--timeout", "20"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert (info["state"], info["result"]) == ("done", 21)
        assert qw(["job", bad, "--wait", "--timeout", "20"]) == 1
        out = capsys.readouterr()
        assert json.loads(out.out)["state"] == "failed"
        assert "ValueError: no" in out.err
    finally:
        stop.set()
        worker.join(30)


def _run_worker(url: str, handler: Any, stop: threading.Event) -> None:
    async def main() -> None:
        w = Worker(fast_settings(url, queues=["q"]), table(handler))
        task = asyncio.create_task(w.run())
        await asyncio.to_thread(stop.wait)
        w.stop("test")
        await task

    asyncio.run(main())


def test_queues_shows_depths_per_priority_and_failed(
        url: str, capsys: pytest.CaptureFixture[str]) -> None:
    r = redis.Redis.from_url(url, decode_responses=True)
    producer = Producer(r, keyring=None)
    producer.enqueue_many("audio", [1, 2], priority=9)
    producer.enqueue("audio", 3)
    producer.enqueue("audio", 4, delay=60)
    gone = producer.enqueue("mail", {})
    r.lrem(keys.waiting("mail"), 0, gone)
    r.hset(keys.job(gone), "state", "failed")
    r.zadd(keys.failed("mail"), {gone: 1})
    assert qw(["queues", "--json"]) == 0
    rows = {d["queue"]: d for d in json.loads(capsys.readouterr().out)}
    audio, mail = rows["audio"], rows["mail"]
    assert (audio["waiting"], audio["waiting_by_priority"], audio["delayed"]) == (
        3, {"9": 2, "5": 1}, 1)
    assert audio["oldest_age_seconds"] is not None
    assert (mail["waiting"], mail["failed"], mail["oldest_age_seconds"]) == (0, 1, None)
    assert qw(["queues"]) == 0
    text = capsys.readouterr().out
    assert "audio" in text
    assert "p9=2" in text
    assert qw(["queues", "--queue", "nothing-here"]) == 0
    assert "nothing-here" in capsys.readouterr().out


def test_enqueue_priority_max_exceptions_result_ttl(url: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert qw(["enqueue", "q", "{}", "--priority", "9", "--max-exceptions", "2",
               "--result-ttl", "60"]) == 0
    job_id = capsys.readouterr().out.strip()
    assert qw(["job", job_id]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["priority"], info["max_exceptions"], info["result_ttl"]) == (9, 2, "60")
    assert qw(["enqueue", "q", "{}", "--priority", "11"]) == 2
    assert "bad priority 11" in capsys.readouterr().err
    assert qw(["enqueue", "q", "{}", "--max-exceptions", "0"]) == 2
    assert "max_exceptions must be at least 1" in capsys.readouterr().err


def test_job_follow_prints_progress_lines_then_the_end(
        url: str, capsys: pytest.CaptureFixture[str]) -> None:
    producer = Producer(redis.Redis.from_url(url, decode_responses=True), keyring=None)
    job_id = producer.enqueue("q", 2)
    assert qw(["job", job_id, "--follow", "--timeout", "0.3"]) == 124
    assert "did not finish" in capsys.readouterr().err

    def handler(payload: Any, job: Any) -> Any:
        job.progress(0.5, {"half": True})
        return payload * 2

    stop = threading.Event()
    worker = threading.Thread(target=_run_worker, args=(url, handler, stop))
    worker.start()
    try:
        assert qw(["job", job_id, "--follow", "--timeout", "20"]) == 0
        lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
        assert (lines[-1]["state"], lines[-1]["result"]) == ("done", 4)
    finally:
        stop.set()
        worker.join(30)
    assert qw(["job", "0000000000000-nope", "--follow"]) == 1
    assert "no job" in capsys.readouterr().err
