"""Real RQ workers under `queueworker local`: scaled 0 -> N -> 0, stopped idle-first.

Long jobs (20 s) run beside short ones; the grace (5 s) is far shorter than a
long job, so a busy worker stopped by a scale-down would be SIGKILLed with its
work horse and its job cut (test_local_process_tree.py). None may be: the RQ
busy adapter (observe/busy/rq.py) tells the engine which replicas are busy.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from rq import Queue

from support.local_proc import LocalProc, local_cmd
from support.worker_proc import wait_until

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
RQ = str(Path(sys.executable).with_name("rq"))


def _manifest(tmp_path: Path, redis_url: str) -> Path:
    doc: dict[str, Any] = {
        "apiVersion": "queueworker.dev/v1alpha1", "kind": "QueueWorker",
        "metadata": {"name": "rqw"},
        "spec": {
            "redis": {"url": redis_url},
            "queues": [{"name": "work", "layout": "rq"}],
            "scaling": {"minReplicas": 0, "maxReplicas": 4, "targetBacklogPerReplica": 1,
                        "pollIntervalSeconds": 0.5, "idleSecondsBeforeZero": 2,
                        "scaleDown": {"stabilizationSeconds": 1}},
            "drain": {"graceSeconds": 5, "deadlineMarginSeconds": 2},
            "template": {"spec": {"containers": [{
                "name": "worker", "image": "local",
                "command": [RQ, "worker", "--url", redis_url, "work"],
                "env": [{"name": "PYTHONPATH", "value": str(HERE)}],
            }]}},
        },
    }
    path = tmp_path / "rq.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_real_rq_workers_scale_up_and_down_without_cutting_a_job(
        tmp_path: Path, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    marks = tmp_path / "marks"
    marks.mkdir()
    names = [f"long{i}" for i in range(3)] + [f"short{i}" for i in range(12)]
    local = LocalProc(local_cmd(_manifest(tmp_path, redis_url)))
    try:
        local.wait_for("status ")
        queue = Queue("work", connection=client)
        for name in names:
            queue.enqueue("rq_jobs.sleep_job", str(marks), name,
                          20.0 if name.startswith("long") else 1.0)
        local.wait_for(" -> 4: ", timeout=30)
        wait_until(lambda: all((marks / f"{n}.done").exists() for n in names), 120, 0.2,
                   "every job finished")
        local.wait_for(" -> 0: ", timeout=60, start=0)
        wait_until(lambda: "running=0 " in local.lines[-1], 30, 0.2, "every replica stopped")
        code = local.interrupt(timeout=60)
    finally:
        local.kill()
    assert code == 0, local.output
    started = {p.stem for p in marks.glob("*.start")}
    done = {p.stem for p in marks.glob("*.done")}
    assert started == done == set(names), f"cut: {started - done}"
    assert "past grace" not in local.output, "a busy worker was stopped"
    assert "leftovers_killed" not in local.output
    assert "busy replicas: read from the rq workers' own reports" in local.output
    # Busy replicas outlived idle ones: while a long job ran, its replica stayed.
    assert " busy=3 " in local.output or " busy=2 " in local.output, "busy workers were seen"
