"""Celery workers' heartbeat events, heard from a real `celery worker` (prefork and solo)."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import redis
from celery import Celery

from queueworker.observe.busy import PodRef
from queueworker.observe.busy.base import assign
from queueworker.observe.busy.celery import SILENT_AFTER, CeleryHeartbeats, listen_sync

from support.worker_proc import wait_until

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

JOBS = Path(__file__).resolve().parents[1] / "local"  # celery_app.py
CELERY = str(Path(sys.executable).with_name("celery"))


def _worker(redis_url: str, *pool: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(JOBS), "CELERY_BROKER_URL": redis_url}
    return subprocess.Popen([CELERY, "-A", "celery_app", "worker", "-Q", "work", "-c", "1",
                             "--loglevel", "WARNING", *pool], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_heartbeats_of_a_real_prefork_worker_idle_busy_offline(
        tmp_path: Path, redis_url: str) -> None:
    beats, stop = CeleryHeartbeats(), threading.Event()
    listener = threading.Thread(target=listen_sync,
                                args=(redis.Redis.from_url(redis_url), beats, stop), daemon=True)
    listener.start()
    worker = _worker(redis_url)
    pod = [PodRef("pod-a", pid=worker.pid)]
    app = Celery(broker=redis_url)
    try:
        wait_until(lambda: "pod-a" in assign(beats.reports(), pod), 30, 0.1, "a heartbeat")
        assert not assign(beats.reports(), pod)["pod-a"].busy
        app.send_task("celery_app.sleep_job", args=[str(tmp_path), "t", 6.0], queue="work")
        wait_until(lambda: assign(beats.reports(), pod)["pod-a"].busy, 15, 0.1, "busy")
        wait_until(lambda: (tmp_path / "t.done").exists(), 20, 0.1, "task done")
        wait_until(lambda: not assign(beats.reports(), pod)["pod-a"].busy, 10, 0.1, "idle")
        # In a cluster: the node name `celery@<pod name>` maps to the pod.
        host = beats.reports()[0].hostname
        assert host is not None
        assert host in assign(beats.reports(), [PodRef(host)])
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        app.close()
    # `worker-offline` on a warm shutdown: no longer reported.
    wait_until(lambda: not beats.reports(), 10, 0.1, "offline")
    stop.set()
    listener.join(5)


def _event(kind: str, active: int, pid: int = 42) -> bytes:
    body = base64.b64encode(json.dumps({"type": kind, "hostname": "celery@pod-s",
                                        "active": active, "pid": pid}).encode())
    return json.dumps({"body": body.decode(), "properties": {"body_encoding": "base64"}}).encode()


def test_a_silent_worker_counts_busy_and_pids_tell_workers_apart() -> None:
    beats = CeleryHeartbeats()
    beats.feed(_event("worker-heartbeat", 0, pid=1), now=100.0)
    beats.feed(_event("worker-heartbeat", 0, pid=2), now=100.0)
    assert len(beats.reports(now=101.0)) == 2, "same node name, two processes"
    assert not any(r.busy for r in beats.reports(now=101.0))
    # A -P solo worker running a task sends nothing: silence means busy.
    silent = beats.reports(now=100.0 + SILENT_AFTER + 1)
    assert all(r.busy for r in silent)
    beats.feed(_event("worker-offline", 0, pid=1), now=102.0)
    assert [r.pid for r in beats.reports(now=102.0)] == [2]
    beats.feed(b"not json")
    beats.feed(json.dumps({"body": "e30=", "properties": {"body_encoding": "base64"}}))
    assert len(beats.reports(now=102.0)) == 1


def test_a_real_solo_worker_is_silent_while_busy(tmp_path: Path, redis_url: str) -> None:
    beats, stop = CeleryHeartbeats(), threading.Event()
    listener = threading.Thread(target=listen_sync,
                                args=(redis.Redis.from_url(redis_url), beats, stop), daemon=True)
    listener.start()
    worker = _worker(redis_url, "-P", "solo")
    pod = [PodRef("pod-s", pid=worker.pid)]
    app = Celery(broker=redis_url)
    try:
        wait_until(lambda: "pod-s" in assign(beats.reports(), pod), 30, 0.1, "a heartbeat")
        assert not assign(beats.reports(), pod)["pod-s"].busy
        app.send_task("celery_app.sleep_job", args=[str(tmp_path), "s", 14.0], queue="work")
        wait_until(lambda: (tmp_path / "s.start").exists(), 15, 0.1, "task started")
        wait_until(lambda: assign(beats.reports(), pod)["pod-s"].busy, SILENT_AFTER + 4, 0.1,
                   "silent, so busy")
        assert not (tmp_path / "s.done").exists(), "still running when it was seen busy"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        app.close()
        stop.set()
        listener.join(5)


def test_a_restarted_worker_replaces_its_silent_old_self_in_a_cluster() -> None:
    # In a cluster a node name is one pod's: a new pid is the worker restarted after a
    # crash, and the old pid (silent forever) must not keep the pod busy.
    beats = CeleryHeartbeats(one_per_node=True)
    beats.feed(_event("worker-heartbeat", 0, pid=1), now=100.0)
    beats.feed(_event("worker-heartbeat", 0, pid=2), now=130.0)
    assert [(r.pid, r.busy) for r in beats.reports(now=131.0)] == [(2, False)]
    # Local mode shares one node name among replicas: both stay.
    local = CeleryHeartbeats()
    local.feed(_event("worker-heartbeat", 0, pid=1), now=100.0)
    local.feed(_event("worker-heartbeat", 0, pid=2), now=100.0)
    assert len(local.reports(now=101.0)) == 2
