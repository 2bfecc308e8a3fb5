"""Local mode asks Celery workers `inspect active` right before it stops one.

A task taken since a worker's last heartbeat (2 s apart) is in no Redis key
with Celery's default early ack, so the poll sees no work at all and wants
zero. The runner (local/runner.py) is driven poll by poll here, with a real
`celery worker` replica: the poll right after the task starts is the one that
would stop it, and with a 2 s grace an 8 s task would be SIGKILLed (cut).
Each replica has its own node name (`CELERY_WORKER_HOSTNAME=celery@<replica>`,
local/pool.py), which is how the replies map to replicas.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import pytest
import redis
from celery import Celery

from queueworker.local.session import Setup, session
from queueworker.local.view import PlainView
from queueworker.observe.busy.celery import inspect_active_sync
from queueworker.operator.validation import parse_manifest

from support.worker_proc import wait_until

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent  # celery_app.py
CELERY = str(Path(sys.executable).with_name("celery"))


def _spec(redis_url: str) -> Setup:
    doc = {
        "apiVersion": "queueworker.dev/v1alpha1", "kind": "QueueWorker",
        "metadata": {"name": "cc"},
        "spec": {
            "redis": {"url": redis_url},
            "queues": [{"name": "work", "layout": "celery"}],
            # Nothing holds a replica once no work is seen for 1 s: the poll after
            # the task starts (seconds after the last one saw work) goes to zero.
            "scaling": {"minReplicas": 0, "maxReplicas": 1, "targetBacklogPerReplica": 1,
                        "pollIntervalSeconds": 0.5, "idleSecondsBeforeZero": 1,
                        "scaleDown": {"stabilizationSeconds": 0}},
            "drain": {"graceSeconds": 2, "deadlineMarginSeconds": 1},
            "template": {"spec": {"containers": [{
                "name": "worker", "image": "local",
                "command": [CELERY, "-A", "celery_app", "worker", "-Q", "work", "-c", "1",
                            "--prefetch-multiplier", "1", "--loglevel", "WARNING"],
                "env": [{"name": "PYTHONPATH", "value": str(HERE)},
                        {"name": "CELERY_BROKER_URL", "value": redis_url}],
            }]}},
        },
    }
    return Setup(name="cc", spec=parse_manifest(doc))


def test_a_task_taken_since_the_last_heartbeat_keeps_its_replica(
        tmp_path: Path, redis_url: str) -> None:
    app = Celery(broker=redis_url)
    probe = redis.Redis.from_url(redis_url)
    with session(_spec(redis_url), PlainView(io.StringIO())) as runner:
        app.send_task("celery_app.sleep_job", args=[str(tmp_path), "warm", 0.1], queue="work")
        assert runner.poll().desired == 1
        [replica] = runner.pool.active()
        wait_until(lambda: (tmp_path / "warm.done").exists(), 60, 0.1, "the first task ran")
        # The replica answers the pidbox under its own node name, idle.
        node = f"celery@{replica.name}"
        wait_until(lambda: inspect_active_sync(probe, 1.0) == ({node: 0}, 1), 30, 0.2,
                   "the replica answers inspect active")
        app.send_task("celery_app.sleep_job", args=[str(tmp_path), "long", 8.0], queue="work")
        wait_until(lambda: (tmp_path / "long.start").exists(), 30, 0.02, "the task started")
        decision = runner.poll()  # the task is in no key now: only the confirm sees it
        assert decision.desired == 1, decision.reason
        assert [r.name for r in runner.pool.active()] == [replica.name]
        deadline = time.monotonic() + 60
        while (runner.target > 0 or runner.pool.running()) and time.monotonic() < deadline:
            runner.reap()
            if runner.target > 0:
                runner.poll()
            time.sleep(0.5)
        assert runner.target == 0, "back to zero once the task is done"
        assert not runner.pool.running()
        assert (tmp_path / "long.done").exists(), "the replica stopped only after its task"
    app.close()
    probe.close()
    # Run once, to its end. (The idle worker's own warm shutdown may outlast the 2 s grace
    # on a loaded machine: a SIGKILL then is no cut task, so it is not asserted on.)
    assert len((tmp_path / "long.start").read_text().splitlines()) == 1, "the task was cut"
