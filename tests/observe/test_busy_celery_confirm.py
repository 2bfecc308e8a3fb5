"""`inspect active` right before a scale-down (observe/busy/celery.py), against real
Celery workers: it sees a task taken since the last heartbeat, and a busy solo worker's
silence counts busy."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import redis
import redis.asyncio
from celery import Celery

from queueworker.observe.busy import PodRef
from queueworker.observe.busy.base import assign
from queueworker.observe.busy.celery import (
    PIDBOX_REPLY_BINDING,
    CeleryHeartbeats,
    confirm,
    inspect_active,
    listen_sync,
)

from support.worker_proc import wait_until

# Multi-process: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

JOBS = Path(__file__).resolve().parents[1] / "local"  # celery_app.py
CELERY = str(Path(sys.executable).with_name("celery"))
PODS = [PodRef("pod-p"), PodRef("pod-s")]


def _worker(redis_url: str, pod: str, *pool: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(JOBS), "CELERY_BROKER_URL": redis_url}
    return subprocess.Popen([CELERY, "-A", "celery_app", "worker", "-Q", pod, "-c", "1",
                             "-n", f"celery@{pod}", "--loglevel", "WARNING", *pool], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _ask(redis_url: str, wait: float = 3.0) -> tuple[dict[str, int], int]:
    async def go() -> tuple[dict[str, int], int]:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            return await inspect_active(client, wait)
        finally:
            await client.aclose()
    return asyncio.run(go())


def test_inspect_active_sees_fresh_tasks_and_silent_solo_workers(
        tmp_path: Path, redis_url: str) -> None:
    beats, stop = CeleryHeartbeats(), threading.Event()
    listener = threading.Thread(target=listen_sync,
                                args=(redis.Redis.from_url(redis_url), beats, stop), daemon=True)
    listener.start()
    workers = [_worker(redis_url, "pod-p"), _worker(redis_url, "pod-s", "-P", "solo")]
    app = Celery(broker=redis_url)
    try:
        wait_until(lambda: set(assign(beats.reports(), PODS)) == {"pod-p", "pod-s"}, 40, 0.1,
                   "both heard")
        idle = {"celery@pod-p": 0, "celery@pod-s": 0}
        wait_until(lambda: _ask(redis_url) == (idle, 2), 30, 0.1, "both answer, idle")
        assert confirm(beats.reports(), idle) == []
        for pod in ("pod-p", "pod-s"):
            app.send_task("celery_app.sleep_job", args=[str(tmp_path), pod, 8.0], queue=pod)
        wait_until(lambda: all((tmp_path / f"{p}.start").exists() for p in ("pod-p", "pod-s")),
                   15, 0.05, "both tasks started")
        answered, reached = _ask(redis_url)  # waits for both: the solo one never answers
        assert reached == 2
        assert answered == {"celery@pod-p": 1}, "the solo worker cannot answer while busy"
        busy = assign(confirm(beats.reports(), answered), PODS)
        assert {p: b.busy for p, b in busy.items()} == {"pod-p": True, "pod-s": True}
        assert not (tmp_path / "pod-p.done").exists()
        # The reply queue and its binding are gone after each call.
        r = redis.Redis.from_url(redis_url)
        assert not r.smembers(PIDBOX_REPLY_BINDING)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(30)
        app.close()
        stop.set()
        listener.join(5)
