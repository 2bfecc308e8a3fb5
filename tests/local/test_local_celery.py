"""Real Celery workers under `queueworker local`: 0 -> N -> 0, stopped idle-first.

The issue's run: Celery's defaults (prefork, early ack), a grace far shorter
than the long tasks: a busy worker stopped by a scale-down gets SIGKILLed at
the grace with its task, which is lost (acked early). Celery keeps no worker
state in Redis; its `worker-heartbeat` events (every 2 s, with `active`) are
what observe/busy/celery.py listens to.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from celery import Celery

from support.local_proc import LocalProc, local_cmd
from support.worker_proc import wait_until

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
CELERY = str(Path(sys.executable).with_name("celery"))


def _manifest(tmp_path: Path, redis_url: str) -> Path:
    doc: dict[str, Any] = {
        "apiVersion": "queueworker.dev/v1alpha1", "kind": "QueueWorker",
        "metadata": {"name": "cel"},
        "spec": {
            "redis": {"url": redis_url},
            "queues": [{"name": "work", "layout": "celery"}],
            "scaling": {"minReplicas": 0, "maxReplicas": 4, "targetBacklogPerReplica": 1,
                        "pollIntervalSeconds": 0.5, "idleSecondsBeforeZero": 6,
                        "scaleDown": {"stabilizationSeconds": 6}},
            "drain": {"graceSeconds": 5, "deadlineMarginSeconds": 2},
            "template": {"spec": {"containers": [{
                "name": "worker", "image": "local",
                "command": [CELERY, "-A", "celery_app", "worker", "-Q", "work", "-c", "1",
                            "--prefetch-multiplier", "1", "-O", "fair", "--loglevel", "INFO"],
                "env": [{"name": "PYTHONPATH", "value": str(HERE)},
                        {"name": "CELERY_BROKER_URL", "value": redis_url}],
            }]}},
        },
    }
    path = tmp_path / "celery.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def test_real_celery_workers_scale_up_and_down_without_cutting_a_task(
        tmp_path: Path, redis_url: str) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    names = [f"long{i}" for i in range(2)] + [f"short{i}" for i in range(10)]
    local = LocalProc(local_cmd(_manifest(tmp_path, redis_url)))
    app = Celery(broker=redis_url)
    try:
        local.wait_for("status ")
        for n in names:
            app.send_task("celery_app.sleep_job", args=[str(marks), n,
                                                        20.0 if n.startswith("long") else 1.0],
                          queue="work")
        local.wait_for(" -> 4: ", timeout=30)
        wait_until(lambda: all((marks / f"{n}.done").exists() for n in names), 150, 0.2,
                   "every task finished")
        local.wait_for(" -> 0: ", timeout=90)
        wait_until(lambda: "running=0 " in local.lines[-1], 30, 0.2, "every replica stopped")
        code = local.interrupt(timeout=60)
    finally:
        local.kill()
        app.close()
    assert code == 0, local.output
    starts = {n: len((marks / f"{n}.start").read_text().splitlines()) for n in names}
    assert starts == dict.fromkeys(names, 1), "a task was cut and run again"
    assert "past grace" not in local.output, "a busy worker was stopped"
    assert "busy replicas: read from the celery workers' own reports" in local.output
    # Early ack: a running task is in no Redis key, so only the heartbeats saw it.
    assert re.search(r"running=\d+ ready=\d+ busy=[1-9]", local.output), "busy workers seen"
