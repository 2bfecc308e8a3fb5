"""A Celery app with kombu's `global_keyprefix` (a queue's keyPrefix), against a real worker.

kombu puts the prefix before the heartbeat channel, the pidbox channel, the
reply queue's binding SET and the reply LIST (kombu/transport/redis.py
`GlobalKeyPrefixMixin`, `PrefixedRedisPubSub`): the subscription still hears
the worker, `inspect active` behind the prefix reaches it and sees its task,
and the same call without the prefix reaches nobody.
"""

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
    inspect_active_sync,
    listen_sync,
)

from support.worker_proc import wait_until

# Multi-process: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

JOBS = Path(__file__).resolve().parents[1] / "local"  # celery_app.py
CELERY = str(Path(sys.executable).with_name("celery"))
PREFIX = "tenant-a:"
NODE = "celery@pod-k"


def _ask(redis_url: str, prefix: str) -> tuple[dict[str, int], int]:
    async def go() -> tuple[dict[str, int], int]:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            return await inspect_active(client, 2.0, prefix)
        finally:
            await client.aclose()
    return asyncio.run(go())


def test_prefixed_app_is_heard_and_answers_behind_its_prefix(
        tmp_path: Path, redis_url: str) -> None:
    beats, stop = CeleryHeartbeats(), threading.Event()
    listener = threading.Thread(target=listen_sync,
                                args=(redis.Redis.from_url(redis_url), beats, stop), daemon=True)
    listener.start()
    env = {**os.environ, "PYTHONPATH": str(JOBS), "CELERY_BROKER_URL": redis_url,
           "CELERY_KEY_PREFIX": PREFIX}
    worker = subprocess.Popen([CELERY, "-A", "celery_app", "worker", "-Q", "pk", "-c", "1",
                               "-n", NODE, "--loglevel", "WARNING"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    app = Celery(broker=redis_url)
    app.conf.broker_transport_options = {"global_keyprefix": PREFIX}
    r = redis.Redis.from_url(redis_url)
    pods = [PodRef("pod-k")]
    try:
        wait_until(lambda: "pod-k" in assign(beats.reports(), pods), 40, 0.1,
                   "the prefixed worker's heartbeats heard")
        wait_until(lambda: _ask(redis_url, PREFIX) == ({NODE: 0}, 1), 30, 0.2,
                   "the worker answers behind its prefix, idle")
        assert _ask(redis_url, "") == ({}, 0), "without the prefix nobody is reached"
        app.send_task("celery_app.sleep_job", args=[str(tmp_path), "t", 6.0], queue="pk")
        wait_until(lambda: (tmp_path / "t.start").exists(), 15, 0.05, "the task started")
        answered, reached = _ask(redis_url, PREFIX)
        assert (answered, reached) == ({NODE: 1}, 1)
        assert inspect_active_sync(r, 2.0, PREFIX) == ({NODE: 1}, 1)  # local mode's call
        busy = assign(confirm(beats.reports(), answered), pods)
        assert busy["pod-k"].busy
        # Each call's binding and reply queue are gone after it, under the prefix too.
        assert not r.smembers(PREFIX + PIDBOX_REPLY_BINDING)
        assert not r.exists(PIDBOX_REPLY_BINDING)
        assert not [k for k in r.scan_iter(match="*reply.celery.pidbox") if b"_kombu" not in k]
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        app.close()
        r.close()
        stop.set()
        listener.join(5)
