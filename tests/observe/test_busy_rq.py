"""RQ's worker registry read by the busy adapter, written by a real `rq worker`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis
from rq import Queue

from queueworker.observe import busy
from queueworker.observe.busy import PodRef
from queueworker.operator.api import QueueSpec

from support.worker_proc import wait_until

JOBS = Path(__file__).resolve().parents[1] / "local"  # rq_jobs.py
RQ = str(Path(sys.executable).with_name("rq"))


def _queue(prefix: str | None = None) -> QueueSpec:
    doc: dict[str, object] = {"name": "work", "layout": "rq"}
    if prefix:
        doc["keyPrefix"] = prefix
    return QueueSpec.model_validate(doc)


def _read(client: redis.Redis, pods: list[PodRef]) -> busy.BusyReading:
    return busy.read_sync(client, [_queue()], time.time(), pods)[1]


def test_a_real_rq_worker_is_idle_then_busy_then_idle(tmp_path: Path, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    env = {**os.environ, "PYTHONPATH": str(JOBS)}
    worker = subprocess.Popen([RQ, "worker", "--url", redis_url, "work"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pod = PodRef("pod-a", pid=worker.pid)
    try:
        wait_until(lambda: "pod-a" in _read(client, [pod]).beats, 20, 0.1, "worker registered")
        assert _read(client, [pod]).beats["pod-a"].state == "idle"
        assert not _read(client, [pod]).beats["pod-a"].busy
        Queue("work", connection=client).enqueue("rq_jobs.sleep_job", str(tmp_path), "j", 3.0)
        wait_until(lambda: (tmp_path / "j.start").exists(), 20, 0.05, "job started")
        beat = _read(client, [pod]).beats["pod-a"]
        assert beat.busy
        assert beat.in_flight == 1
        # In a cluster the pod is found by hostname (socket.gethostname() = pod name).
        by_host = _read(client, [PodRef(socket.gethostname())])
        assert by_host.beats[socket.gethostname()].busy
        # A pod no worker reports is unknown, not idle.
        assert _read(client, [pod, PodRef("pod-b")]).unknown(["pod-a", "pod-b"]) == ["pod-b"]
        wait_until(lambda: (tmp_path / "j.done").exists(), 20, 0.05, "job finished")
        wait_until(lambda: not _read(client, [pod]).beats["pod-a"].busy, 10, 0.05, "idle again")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(20)
    # A stopped worker is no longer reported (rq sets `death` and leaves the SET).
    assert "pod-a" not in _read(client, [pod]).beats


def test_ghosts_and_dead_workers_are_not_reported(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.sadd("rq:workers", "rq:worker:expired", "rq:worker:dead", "rq:worker:live")
    client.hset("rq:worker:dead", mapping={"hostname": "p", "pid": 1, "state": "busy",
                                           "death": "2026-01-01T00:00:00Z"})
    client.hset("rq:worker:live", mapping={"hostname": "p", "pid": 2, "state": "idle",
                                           "current_job": "abc"})  # RQ 2's field
    reading = _read(client, [PodRef("p")])
    assert [r.worker for r in reading.reports] == ["rq:worker:live"]
    assert reading.beats["p"].busy, "RQ 2's current_job counts as a running job"


def test_a_key_prefix_and_a_broken_registry(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.sadd("myrq:workers", "myrq:worker:w")
    client.hset("myrq:worker:w", mapping={"hostname": "p", "state": "busy"})
    got = busy.read_sync(client, [_queue("myrq")], time.time(), [PodRef("p")])[1]
    assert got.beats["p"].busy
    client.set("rq:workers", "not a set")
    queues, reading = busy.read_sync(client, [_queue()], time.time(), [PodRef("p")])
    assert queues[0].waiting == 0, "the depths are read all the same"
    assert reading.errors
    assert "rq workers" in reading.errors[0]
    assert reading.unknown(["p"]) == ["p"]


def test_the_operators_asyncio_read_gives_the_same(redis_url: str) -> None:
    import asyncio

    import redis.asyncio

    client = redis.Redis.from_url(redis_url)
    client.sadd("rq:workers", "rq:worker:w1", "rq:worker:w2")
    client.hset("rq:worker:w1", mapping={"hostname": "qw-abc-1", "pid": 1, "state": "busy"})
    client.hset("rq:worker:w2", mapping={"hostname": "qw-abc-2", "pid": 1, "state": "idle"})
    client.rpush("rq:queue:work", "j1")

    async def main() -> tuple[object, busy.BusyReading]:
        aclient = redis.asyncio.Redis.from_url(redis_url)
        try:
            pods = busy.pod_refs([{"name": "qw-abc-1"}, {"name": "qw-abc-2"},
                                  {"name": "qw-abc-3"}])
            return await busy.aread(aclient, [_queue()], time.time(), pods)
        finally:
            await aclient.aclose()

    queues, reading = asyncio.run(main())
    assert isinstance(queues, tuple)
    assert queues[0].waiting == 1
    assert reading.beats["qw-abc-1"].busy
    assert not reading.beats["qw-abc-2"].busy
    names = ["qw-abc-1", "qw-abc-2", "qw-abc-3"]
    assert reading.unknown(names) == ["qw-abc-3"]
    assert busy.describe(reading, names, [_queue()]) == "busy known for 2 of 3 pods"
