"""Local mode at zero wakes a worker for a due schedule tick, whose scheduler then enqueues
the tick's job (issue 16); with the schedule paused it goes back to zero."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from queueworker.worker.schedule_store import ScheduleStore
from queueworker.worker.schedules import Schedule

from support.local_proc import LocalProc, local_cmd, write_manifest
from support.worker_proc import wait_until

# Multi-process: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow


def test_a_due_tick_wakes_a_worker_that_runs_it(tmp_path: Path, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    local = LocalProc(local_cmd(write_manifest(tmp_path, redis_url, max_replicas=3, idle=2)))
    try:
        local.wait_for("status ")  # first poll: no jobs, no schedule, no workers
        assert "scale up" not in local.output
        store = ScheduleStore(client)
        store.register([Schedule("ping", queue="work", every=5,
                                 payload={"n": "tick", "seconds": 0})],
                       now_ms=int(time.time() * 1000))
        line = local.wait_for("scale up 0 -> 1", timeout=20)
        assert "schedule of work due" in line
        # The woken worker's scheduler turns the tick into a job, and runs it.
        wait_until(lambda: client.sismember("t:done", "tick"), 30, 0.1, "the tick's job")
        store.pause("ping")  # no tick due any more: idle, then back to zero
        local.wait_for("-> 0:", timeout=30)
        code = local.interrupt()
    finally:
        local.kill()
    assert code == 0, local.output
