"""A named BullMQ worker's job taken on the fetch-next path (the one that completes the
previous job) carries `pb` from BullMQ 5.41.1 (the pin in tests/peers/node); a running
job without `pb` (older BullMQ, issue 3073) leaves the named pods unknown, never idle."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import redis

from queueworker.observe import busy
from queueworker.observe.busy import PodRef
from queueworker.operator.api import QueueLayout, QueueSpec

from support.engine_layouts import NODE_DIR, ensure_node
from support.worker_proc import wait_until

pytestmark = pytest.mark.slow

QUEUES = [QueueSpec(name="render", layout=QueueLayout.bullmq)]
PODS = [PodRef("pod-a"), PodRef("pod-b")]


def _states(r: redis.Redis) -> dict[str, str]:
    _, reading = busy.read_sync(r, QUEUES, time.time(), PODS)
    assert not reading.errors
    return {p.name: reading.beats[p.name].state if p.name in reading.beats else "unknown"
            for p in PODS}


def _worker(redis_url: str, marks: Path, name: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(["node", "bullmq_jobs.mjs", "worker", redis_url, "render",
                             str(marks), name], cwd=NODE_DIR, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_fetch_next_take_has_pb_and_a_job_without_it_is_unknown(
        tmp_path: Path, redis_url: str) -> None:
    ensure_node()
    r = redis.Redis.from_url(redis_url)
    procs = [_worker(redis_url, tmp_path, "pod-a"), _worker(redis_url, tmp_path, "pod-b")]
    try:
        wait_until(lambda: _states(r) == {"pod-a": "idle", "pod-b": "idle"}, 15, 0.1,
                   "both named workers alive")
        # Four jobs, two workers of concurrency 1: the second job each runs is taken
        # by the call that completes its first (fetch-next).
        subprocess.run(["node", "bullmq_jobs.mjs", "add", redis_url, "render",
                        "j1:0.3", "j2:0.3", "j3:30", "j4:30"],
                       cwd=NODE_DIR, check=True, timeout=60)
        wait_until(lambda: all((tmp_path / f"{j}.start").exists() for j in ("j3", "j4")),
                   20, 0.1, "both long jobs started")
        active = [i.decode() for i in r.lrange("bull:render:active", 0, -1)]
        assert len(active) == 2
        assert {r.hget(f"bull:render:{i}", "pb") for i in active} == {b"pod-a", b"pod-b"}
        assert _states(r) == {"pod-a": "busy", "pod-b": "busy"}
        # As BullMQ before 5.41.1 leaves it: pod-a's job names no worker. pod-a must
        # not read idle (its connection alone says only "alive"): unknown; pod-b's own
        # job still names it busy.
        mine = next(i for i in active if r.hget(f"bull:render:{i}", "pb") == b"pod-a")
        r.hdel(f"bull:render:{mine}", "pb")
        assert _states(r) == {"pod-a": "unknown", "pod-b": "busy"}
        r.hset(f"bull:render:{mine}", "pb", "pod-a")
        assert _states(r) == {"pod-a": "busy", "pod-b": "busy"}
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(20)
