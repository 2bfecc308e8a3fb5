"""A replica is a container: nothing it started outlives it (real `rq worker`).

RQ's work horse calls setpgrp(), so a SIGKILL of the worker alone (or of its
process group) left the horse running: it finished its job after the
"pod" was gone, which no pod does.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
import redis
from rq import Queue

from queueworker.local.pool import ProcessPool, session_members

from support.worker_proc import wait_until

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
RQ = str(Path(sys.executable).with_name("rq"))


def _rq_pool(name: str, redis_url: str, grace: float) -> ProcessPool:
    env = {"PYTHONPATH": str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return ProcessPool(name, [RQ, "worker", "--url", redis_url, "--worker-ttl", "10", "work"],
                       env, grace_seconds=grace)


def test_sigkill_past_grace_takes_the_rq_work_horse_with_the_worker(
        tmp_path: Path, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    Queue("work", connection=client).enqueue("rq_jobs.sleep_job", str(tmp_path), "long", 6.0)
    pool = _rq_pool("rq", redis_url, grace=1.0)
    try:
        replica = pool.start_one()
        assert replica is not None
        wait_until(lambda: (tmp_path / "long.start").exists(), 30, 0.1, "the job started")
        horse = int((tmp_path / "long.start").read_text().split()[0])
        assert horse != replica.proc.pid, "RQ runs the job in a forked work horse"
        pool.stop([replica.name])  # warm shutdown: RQ waits for the horse...
        wait_until(lambda: not pool.reap() and not pool.running(), 15, 0.05, "replica ended")
        # ...and at the grace, the whole replica goes, the horse included.
        assert pool.stats.killed_after_grace == 1
        time.sleep(6.5)  # longer than the job would have needed
        assert not (tmp_path / "long.done").exists(), "the horse outlived its worker"
        assert not session_members(replica.proc.pid)
    finally:
        pool.drain_all(timeout=10)


def test_a_replica_whose_main_process_exits_leaves_nothing_behind(tmp_path: Path) -> None:
    # The main process starts a child in its own process group and exits: as in
    # a pod whose PID 1 exits, the child dies with it.
    child = (f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
             f"'import os, time; os.setpgrp(); time.sleep(30); "
             f"open(r\"{tmp_path}/survived\", \"w\")']); time.sleep(0.5)")
    pool = ProcessPool("x", [sys.executable, "-c", child], {}, grace_seconds=5)
    try:
        replica = pool.start_one()
        assert replica is not None
        wait_until(lambda: bool(pool.reap()), 10, 0.05, "the main process exited")
        assert pool.stats.leftovers_killed == 1
        # SIGKILL is sent; the kernel takes a moment to finish the process.
        wait_until(lambda: not session_members(replica.proc.pid), 5, 0.02, "the child gone")
    finally:
        pool.drain_all(timeout=5)
