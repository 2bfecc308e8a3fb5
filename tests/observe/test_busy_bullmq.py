"""BullMQ workers' busy state: the `pb` job field of named workers and CLIENT LIST
(a worker blocked in BZPOPMIN has a free slot), against real BullMQ workers (node)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import redis

from queueworker.observe import busy
from queueworker.observe.busy import PodRef
from queueworker.observe.busy.clients import parse_list, reports
from queueworker.operator.api import QueueLayout, QueueSpec

from support.engine_layouts import NODE_DIR, ensure_node
from support.worker_proc import wait_until

# Multi-process: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

QUEUES = [QueueSpec(name="render", layout=QueueLayout.bullmq)]


def _worker(redis_url: str, marks: Path, name: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(["node", "bullmq_jobs.mjs", "worker", redis_url, "render",
                             str(marks), name], cwd=NODE_DIR, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _add(redis_url: str, *jobs: str) -> None:
    subprocess.run(["node", "bullmq_jobs.mjs", "add", redis_url, "render", *jobs],
                   cwd=NODE_DIR, check=True, timeout=60)


def _states(r: redis.Redis, pods: list[PodRef]) -> dict[str, str]:
    _, reading = busy.read_sync(r, QUEUES, time.time(), pods)
    assert not reading.errors
    return {p.name: reading.beats[p.name].state if p.name in reading.beats else "unknown"
            for p in pods}


def test_named_worker_exact_unnamed_one_idle_only_while_blocked(
        tmp_path: Path, redis_url: str) -> None:
    ensure_node()
    r = redis.Redis.from_url(redis_url)
    # pod-a runs `new Worker(q, fn, {name: HOSTNAME})`; pod-b an unnamed worker, known
    # only by its IP (the one pod here with an IP: local connections all share one).
    pods = [PodRef("pod-a"), PodRef("pod-b", ip="127.0.0.1")]
    named, unnamed = _worker(redis_url, tmp_path, "pod-a"), _worker(redis_url, tmp_path, "")
    try:
        wait_until(lambda: _states(r, pods) == {"pod-a": "idle", "pod-b": "idle"}, 15, 0.1,
                   "both blocked in BZPOPMIN: idle")
        _add(redis_url, "j1:5", "j2:5")
        wait_until(lambda: all((tmp_path / f"{j}.start").exists() for j in ("j1", "j2")),
                   15, 0.1, "both jobs started")
        states = _states(r, pods)
        # The named worker's job says `pb: pod-a`; the unnamed one is not blocked: unknown.
        assert states == {"pod-a": "busy", "pod-b": "unknown"}
        _, reading = busy.read_sync(r, QUEUES, time.time(), pods)
        assert reading.beats["pod-a"].in_flight == 1
        assert not (tmp_path / "j1.done").exists() or not (tmp_path / "j2.done").exists()
        wait_until(lambda: all((tmp_path / f"{j}.done").exists() for j in ("j1", "j2")),
                   20, 0.1, "both jobs done")
        wait_until(lambda: _states(r, pods) == {"pod-a": "idle", "pod-b": "idle"}, 15, 0.1,
                   "idle again")
    finally:
        for proc in (named, unnamed):
            proc.terminate()
            assert proc.wait(20) == 0, "worker.close() on SIGTERM, then exit 0"


def test_client_list_parsing_and_a_refused_client_command(redis_url: str) -> None:
    line = ("id=7 addr=10.1.2.3:50312 laddr=10.1.0.9:6379 fd=9 name= age=9 idle=9 flags=b "
            "db=0 cmd=blpop user=default\n"
            "id=8 addr=10.1.2.4:50313 fd=9 name=lapp-7c9f idle=0 flags=N db=0 cmd=eval\n"
            "id=9 addr=[::1]:50314 fd=9 name=bull:cmVuZGVy:w:pod-z flags=N cmd=evalsha\n")
    clients = parse_list(line.encode())
    assert [(c.ip, c.name, c.blocked, c.cmd) for c in clients][:2] == [
        ("10.1.2.3", "", True, "blpop"), ("10.1.2.4", "lapp-7c9f", False, "eval")]
    assert clients[2].ip == "::1"
    got = reports(clients)
    assert [(g.ip, g.hostname, g.busy) for g in got] == [("10.1.2.3", None, False),
                                                         (None, "pod-z", False)]
    # A Redis that refuses CLIENT (ACLs, managed services): pods unknown, depths intact.
    r = redis.Redis.from_url(redis_url)
    r.execute_command("ACL", "SETUSER", "noclient", "on", ">pw", "~*", "&*", "+@all",
                      "-client")
    limited = redis.Redis.from_url(redis_url, username="noclient", password="pw")
    depths, reading = busy.read_sync(limited, QUEUES, time.time(), [PodRef("pod-a")])
    assert depths[0].name == "render"
    assert reading.beats == {}
    assert reading.errors
    assert "CLIENT LIST" in reading.errors[0]
