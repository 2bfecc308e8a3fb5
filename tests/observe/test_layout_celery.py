"""The Celery (kombu Redis transport) layout, against what Celery writes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from queueworker.observe.layouts import read_depths_sync

from support.engine_layouts import only, qspec


def test_celery_priorities_and_unacked(redis_url: str) -> None:
    from celery import Celery
    from kombu import Connection

    app = Celery("t", broker=redis_url)
    for prio in (0, 0, 3, 6, 9):
        app.send_task("tasks.work", args=[1], queue="jobs", priority=prio)
    app.send_task("tasks.work", args=[1], queue="other")
    # A consumer that took a message and has not acked it yet: it sits in `unacked`.
    with Connection(redis_url) as conn:
        sq = conn.SimpleQueue("jobs", no_ack=False)
        msg = sq.get(timeout=5)
        assert msg is not None
        r = redis.Redis.from_url(redis_url)
        assert r.llen("jobs\x06\x166") + r.llen("jobs\x06\x169") >= 1  # priority lists in use
        d = only(read_depths_sync(r, [qspec("jobs", "celery")], time.time()))
        assert (d.waiting, d.in_flight) == (4, 1)
        msg.ack()
        sq.close()
    d = only(read_depths_sync(r, [qspec("jobs", "celery")], time.time()))
    assert (d.waiting, d.in_flight) == (4, 0)


def test_celery_global_keyprefix(redis_url: str) -> None:
    from celery import Celery

    app = Celery("t", broker=redis_url)
    app.conf.broker_transport_options = {"global_keyprefix": "tenant1:"}
    app.send_task("tasks.work", queue="jobs")
    app.send_task("tasks.work", queue="jobs", priority=9)
    r = redis.Redis.from_url(redis_url)
    d = only(read_depths_sync(r, [qspec("jobs", "celery", keyPrefix="tenant1:")], time.time()))
    assert d.waiting == 2
    d = only(read_depths_sync(r, [qspec("jobs", "celery")], time.time()))
    assert d.waiting == 0


def test_celery_eta_tasks_are_delayed(redis_url: str) -> None:
    """countdown/eta tasks: delayed in the list, held in `unacked` and back in the list."""
    from celery import Celery
    from kombu import Connection

    app = Celery("t", broker=redis_url)
    t0 = time.time()
    app.send_task("tasks.work", queue="later", countdown=3600)
    app.send_task("tasks.work", queue="later", countdown=10)
    app.send_task("tasks.work", queue="later", countdown=3600, priority=9)
    app.send_task("tasks.work", queue="later")
    r = redis.Redis.from_url(redis_url)
    q = qspec("later", "celery")
    d = only(read_depths_sync(r, [q], time.time()))
    assert (d.waiting, d.in_flight, d.delayed) == (1, 0, 3)
    d = only(read_depths_sync(r, [q], t0 + 60))  # the 10 s one is due: ready now
    assert (d.waiting, d.in_flight, d.delayed) == (2, 0, 2)
    # A worker takes eta tasks at once and holds them, unacked, until their eta.
    with Connection(redis_url) as conn:
        sq = conn.SimpleQueue("later", no_ack=False)
        held = [sq.get(timeout=5) for _ in range(2)]  # the oldest two: 3600 s and 10 s
        assert all(m is not None and m.headers["eta"] for m in held)
        assert r.hlen("unacked") == 2
        d = only(read_depths_sync(r, [q], time.time()))
        assert (d.waiting, d.in_flight, d.delayed) == (1, 0, 3)
        d = only(read_depths_sync(r, [q], t0 + 60))  # the held 10 s one is about to run
        assert (d.waiting, d.in_flight, d.delayed) == (1, 1, 2)
        sq.close()
    # Closing the channel restores unacked messages to the list, as a worker's
    # warm shutdown does (`restore_at_shutdown`): still delayed, not waiting.
    assert r.hlen("unacked") == 0
    d = only(read_depths_sync(r, [q], time.time()))
    assert (d.waiting, d.in_flight, d.delayed) == (1, 0, 3)


def test_celery_worker_holds_eta_task(redis_url: str, tmp_path: Path) -> None:
    """A real `celery worker` takes an eta task and keeps it unacked: delayed, not in flight."""
    (tmp_path / "etaapp.py").write_text(
        "from celery import Celery\n"
        f"app = Celery('etaapp', broker={redis_url!r})\n"
        "@app.task(name='tasks.work')\n"
        "def work():\n    return None\n"
    )
    from celery import Celery

    app = Celery("t", broker=redis_url)
    for _ in range(2):
        app.send_task("tasks.work", queue="later", countdown=3600)
    r = redis.Redis.from_url(redis_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "etaapp", "worker", "-P", "solo", "-Q", "later",
         "--without-mingle", "--without-gossip", "-l", "warning"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and r.hlen("unacked") < 2:
            time.sleep(0.1)
        assert r.hlen("unacked") == 2
        assert r.llen("later") == 0
        d = only(read_depths_sync(r, [qspec("later", "celery")], time.time()))
        assert (d.waiting, d.in_flight, d.delayed) == (0, 0, 2)
    finally:
        proc.terminate()  # warm shutdown: the held tasks go back to the list
        proc.wait(timeout=60)
    d = only(read_depths_sync(r, [qspec("later", "celery")], time.time()))
    assert (d.waiting, d.in_flight, d.delayed) == (0, 0, 2)
    assert r.llen("later") == 2


def test_celery_eta_scan_is_bounded(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past SCAN messages a list's messages count as waiting, from the end workers take next."""
    from celery import Celery

    from queueworker.observe.layouts import celery as layout

    app = Celery("t", broker=redis_url)
    for countdown in (3600, None, 3600):  # LPUSHed, BRPOPed: taken in this order
        app.send_task("tasks.work", queue="jobs", countdown=countdown)
    r = redis.Redis.from_url(redis_url)
    monkeypatch.setattr(layout, "SCAN", 1)
    d = only(read_depths_sync(r, [qspec("jobs", "celery")], time.time()))
    assert (d.waiting, d.delayed) == (2, 1)
    monkeypatch.setattr(layout, "SCAN", 3)
    d = only(read_depths_sync(r, [qspec("jobs", "celery")], time.time()))
    assert (d.waiting, d.delayed) == (1, 2)
