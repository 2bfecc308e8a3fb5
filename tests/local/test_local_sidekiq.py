"""Real Sidekiq 6.4 workers under `queueworker local`: 0 -> N -> 0, stopped idle-first.

Sidekiq's TERM waits `-t` seconds (3 here), then pushes running jobs back to
the queue, where they run again from the start: a busy process stopped by a
scale-down shows as a job started twice. Its `busy` count is written at each
beat (5 s in 6.x), so the scale-down window is two beats long, and a replica is quieted
before it is stopped, then stopped once a beat says it is quiet and idle
(docs/workers/sidekiq.md, "Quiet first").
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.engine_layouts import ensure_sidekiq, sidekiq_push
from support.local_proc import LocalProc, local_cmd
from support.worker_proc import wait_until

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent


def _manifest(tmp_path: Path, redis_url: str) -> Path:
    sidekiq = shutil.which("sidekiq")
    assert sidekiq is not None
    doc: dict[str, Any] = {
        "apiVersion": "queueworker.dev/v1alpha1", "kind": "QueueWorker",
        "metadata": {"name": "skq"},
        "spec": {
            "redis": {"url": redis_url},
            "queues": [{"name": "default", "layout": "sidekiq"}],
            "scaling": {"minReplicas": 0, "maxReplicas": 3, "targetBacklogPerReplica": 1,
                        "pollIntervalSeconds": 0.5, "idleSecondsBeforeZero": 10,
                        "scaleDown": {"stabilizationSeconds": 10}},
            "drain": {"graceSeconds": 8, "deadlineMarginSeconds": 2},
            "template": {"spec": {"containers": [{
                "name": "worker", "image": "local",
                "command": [sidekiq, "-r", str(HERE / "sidekiq_sleep.rb"), "-c", "1",
                            "-t", "3"],
                "env": [{"name": "REDIS_URL", "value": redis_url}],
            }]}},
        },
    }
    path = tmp_path / "sidekiq.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_real_sidekiq_workers_scale_up_and_down_without_cutting_a_job(
        tmp_path: Path, redis_url: str) -> None:
    ensure_sidekiq()
    marks = tmp_path / "marks"
    marks.mkdir()
    names = [f"long{i}" for i in range(2)] + [f"short{i}" for i in range(8)]
    local = LocalProc(local_cmd(_manifest(tmp_path, redis_url)))
    try:
        local.wait_for("status ")
        sidekiq_push(redis_url, *[
            {"class": "Sleep", "queue": "default",
             "args": [str(marks), n, 20 if n.startswith("long") else 1]} for n in names])
        local.wait_for(" -> 3: ", timeout=30)
        wait_until(lambda: all((marks / f"{n}.done").exists() for n in names), 150, 0.2,
                   "every job finished")
        local.wait_for(" -> 0: ", timeout=90)
        wait_until(lambda: "running=0 " in local.lines[-1], 30, 0.2, "every replica stopped")
        code = local.interrupt(timeout=60)
    finally:
        local.kill()
    assert code == 0, local.output
    starts = {n: len((marks / f"{n}.start").read_text().splitlines()) for n in names}
    assert starts == dict.fromkeys(names, 1), "a job was cut and run again"
    assert "Pushed" not in local.output, "Sidekiq pushed a running job back"
    assert "past grace" not in local.output
    assert " busy=2 " in local.output, "the two long jobs' workers were seen busy"
    assert "workers.quieted" in local.output, "replicas were quieted before they were stopped"
