"""The Laravel layout and its CLIENT LIST fallback, on what a real Laravel writes.

Debian's php-laravel-framework 8.83 (tests/support/laravel_app.py): jobs
dispatched by Laravel (now, `->delay()`), one running in a real `queue:work`
(in `:reserved`), one failed and released with a back-off (in `:delayed`), one
failed for good (gone to the failed-job store, out of Redis).
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from queueworker.observe import busy
from queueworker.observe.busy import PodRef
from queueworker.observe.layouts import read_depths_sync
from queueworker.operator.api import QueueSpec

from support.engine_layouts import only, qspec
from support.laravel_app import PREFIX, LaravelApp, make_app
from support.worker_proc import wait_until

# Multi-process (PHP): `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def _counts(r: redis.Redis, q: QueueSpec, now: float) -> tuple[int, int, int, int]:
    d = only(read_depths_sync(r, [q], now))
    assert d.oldest_age_seconds is None  # Laravel 8 payloads carry no createdAt/pushedAt
    return d.waiting, d.delayed, d.in_flight, d.other


def _fail_twice(app: LaravelApp, marks: Path) -> None:
    """One job failed once and released for 300 s, one failed for good."""
    app.dispatch(marks, "retried:0:0:fail")
    app.run("queue:work", "redis", "--once", "--tries=2", "--backoff=300")
    app.dispatch(marks, "dead:0:0:fail")
    app.run("queue:work", "redis", "--once", "--tries=1")
    assert (marks / "retried.start").exists()
    assert (marks / "dead.start").exists()


def test_real_laravel_waiting_delayed_reserved_failed(tmp_path: Path, redis_url: str) -> None:
    app = make_app(tmp_path, redis_url)
    marks = tmp_path / "marks"
    marks.mkdir()
    r = redis.Redis.from_url(redis_url)
    q = qspec("default", "laravel", keyPrefix=PREFIX)
    _fail_twice(app, marks)
    assert _counts(r, q, time.time()) == (0, 1, 0, 0)  # the retried one waits its back-off

    app.dispatch(marks, "long:60")
    worker = app.popen("--once", "--timeout=90")
    try:
        wait_until(lambda: (marks / "long.start").exists(), 30, 0.1, "the long job started")
        app.dispatch(marks, "s0:0", "s1:0", "s2:0", "later0:0:600", "later1:0:600",
                     "soon:0:20")
        now = time.time()
        assert r.zcard(f"{PREFIX}queues:default:reserved") == 1
        # waiting 3; delayed: retried (+300 s), later0/1 (+600 s), soon (+20 s); 1 running
        assert _counts(r, q, now) == (3, 4, 1, 0)
        # Due ones are waiting: the driver moves them to the list before its next pop.
        assert _counts(r, q, now + 30) == (4, 3, 1, 0)
        assert _counts(r, q, now + 400) == (5, 2, 1, 0)
        # Another prefix sees nothing.
        assert _counts(r, qspec("default", "laravel"), now) == (0, 0, 0, 0)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        # A killed worker's job stays reserved until retry_after (90 s): still in flight.
        assert _counts(r, q, time.time()) == (3, 4, 1, 0)
        assert not (marks / "long.done").exists()
    finally:
        _stop(worker)


def _states(r: redis.Redis, pods: list[PodRef]) -> dict[str, str]:
    queues = [QueueSpec.model_validate({"name": "default", "layout": "laravel",
                                        "keyPrefix": PREFIX})]
    _, reading = busy.read_sync(r, queues, time.time(), pods)
    assert not reading.errors
    return {p.name: reading.beats[p.name].state if p.name in reading.beats else "unknown"
            for p in pods}


def test_real_queue_work_idle_while_blocked_named_after_its_pod(
        tmp_path: Path, redis_url: str) -> None:
    """`block_for` + `'name' => env('POD_NAME')`: an idle queue:work is blocked in
    BLPOP on a connection named after its pod (idle); a busy one is not (unknown).
    SIGTERM: a busy worker finishes its job first, an idle one just exits."""
    marks = tmp_path / "marks"
    marks.mkdir()
    r = redis.Redis.from_url(redis_url)
    pods = [PodRef("pod-a"), PodRef("pod-b")]
    app_a = make_app(tmp_path / "a", redis_url, POD_NAME="pod-a", QUEUE_BLOCK_FOR="5")
    app_b = make_app(tmp_path / "b", redis_url, POD_NAME="pod-b", QUEUE_BLOCK_FOR="5")
    flags = ("--sleep=0", "--timeout=30")
    a = app_a.popen(*flags)
    b = None
    try:
        wait_until(lambda: _states(r, pods)["pod-a"] == "idle", 20, 0.1, "pod-a blocked")
        app_a.dispatch(marks, "long:8")
        wait_until(lambda: (marks / "long.start").exists(), 20, 0.1, "pod-a runs the job")
        b = app_b.popen(*flags)
        wait_until(lambda: _states(r, pods) == {"pod-a": "unknown", "pod-b": "idle"}, 20, 0.1,
                   "pod-a busy (not blocked), pod-b idle (blocked)")
        # SIGTERM to the busy worker: it finishes its job, then exits 0.
        assert not (marks / "long.done").exists()
        a.terminate()
        assert a.wait(30) == 0, a.stdout.read() if a.stdout else ""
        assert (marks / "long.done").read_text().split()[0] == str(a.pid), "finished by pod-a"
        # SIGTERM to an idle worker blocked in BLPOP: it exits when BLPOP returns.
        wait_until(lambda: _states(r, pods)["pod-b"] == "idle", 20, 0.1, "pod-b blocked")
        b.terminate()
        assert b.wait(20) == 0, b.stdout.read() if b.stdout else ""
    finally:
        _stop(a)
        if b is not None:
            _stop(b)
