"""Sidekiq's process registry read by the busy adapter, written by a real Sidekiq 6.4."""

from __future__ import annotations

import json
import signal
import socket
import time

import pytest
import redis

from queueworker.observe import busy
from queueworker.observe.busy import PodRef
from queueworker.operator.api import QueueSpec

from support.engine_layouts import ensure_sidekiq, sidekiq_push, sidekiq_server
from support.worker_proc import wait_until

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow


def _queue(prefix: str | None = None) -> QueueSpec:
    doc: dict[str, object] = {"name": "default", "layout": "sidekiq"}
    if prefix:
        doc["keyPrefix"] = prefix
    return QueueSpec.model_validate(doc)


def _read(client: redis.Redis, pods: list[PodRef], q: QueueSpec | None = None
          ) -> busy.BusyReading:
    return busy.read_sync(client, [q or _queue()], time.time(), pods)[1]


def test_a_real_sidekiq_process_is_idle_then_busy_then_idle(redis_url: str) -> None:
    ensure_sidekiq()
    client = redis.Redis.from_url(redis_url)
    server = sidekiq_server(redis_url, "-c", "2", "-q", "default", "-t", "2")
    pod = PodRef("pod-a", pid=server.pid)
    try:
        wait_until(lambda: "pod-a" in _read(client, [pod]).beats, 30, 0.1, "process registered")
        assert not _read(client, [pod]).beats["pod-a"].busy
        sidekiq_push(redis_url, {"class": "Block", "args": ["release"], "queue": "default"})
        # `busy` is written at each beat (every 5 s in 6.x).
        wait_until(lambda: _read(client, [pod]).beats["pod-a"].busy, 15, 0.1, "busy")
        assert _read(client, [pod]).beats["pod-a"].in_flight == 1
        host = socket.gethostname()  # info.hostname: the pod name in a cluster
        assert _read(client, [PodRef(host)]).beats[host].busy
        client.lpush("release", "go")
        wait_until(lambda: not _read(client, [pod]).beats["pod-a"].busy, 15, 0.1, "idle again")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    # Sidekiq removes itself from `processes` on a clean stop.
    assert "pod-a" not in _read(client, [pod]).beats


def test_quiet_ghosts_and_a_namespace(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    info = {"hostname": "p", "pid": 7, "concurrency": 5, "identity": "p:7:abc"}
    client.sadd("ns:processes", "p:7:abc", "p:8:gone")  # the second one's hash expired
    client.hset("ns:p:7:abc", mapping={"busy": 0, "quiet": "true", "beat": time.time(),
                                       "info": json.dumps(info)})
    reading = _read(client, [PodRef("p")], _queue("ns"))
    assert [r.worker for r in reading.reports] == ["p:7:abc"]
    beat = reading.beats["p"]
    assert (beat.state, beat.busy) == ("draining", False), "quiet and idle: leaving"
    # Sidekiq's own beat time is the pod's: the freshest idle pod goes first.
    assert abs(beat.beat_at - float(client.hget("ns:p:7:abc", "beat") or 0)) < 1e-3
    client.hset("ns:p:7:abc", "busy", 3)
    beat = _read(client, [PodRef("p")], _queue("ns")).beats["p"]
    assert (beat.busy, beat.in_flight) == (True, 3)
