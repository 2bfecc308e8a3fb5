"""Celery workers under the operator: busy pods are known from Celery's heartbeat events
(one subscription per Redis, context.Shared), confirmed by `inspect active` right before a
scale-down, and outlive idle ones.

The pods run real `celery worker` processes (prefork, early ack: a running task is in no
Redis key at all) through the harness's process runtime, each with the node name
`celery@<pod name>` its hostname would give it in a cluster. The grace is far shorter
than the long tasks: a busy pod stopped by a scale-down would be SIGKILLed mid-task.
Without the operator's subscription every pod looks idle once the queue is empty and
the QueueWorker goes to zero while the long tasks run. The app has a kombu
`global_keyprefix` (the queue's keyPrefix): its heartbeats, its pidbox and its reply
queues all sit behind it, and the operator must hear and ask it there.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from support.operator_cluster import Cluster, wait_for
from support.operator_e2e import ProcessRuntime
from support.operator_specs import fast_config, spec

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
CELERY = str(Path(sys.executable).with_name("celery"))
LONG = 9.0
PREFIX = "reports:"


class CeleryRuntime(ProcessRuntime):
    """Runs a pod's `celery worker` command; the node name is the pod's, as its hostname
    would make it."""

    def command(self, pod: dict[str, Any]) -> list[str] | None:
        argv = list(pod["spec"]["containers"][0].get("command") or [])
        if argv[:1] != [CELERY]:
            return None
        return [*argv, "-n", f"celery@{pod['metadata']['name']}"]


def _template(redis_url: str) -> dict[str, Any]:
    return {"spec": {"containers": [{
        "name": "worker", "image": "example.org/celery:1",
        "command": [CELERY, "-A", "celery_pods", "worker", "-Q", "work", "-c", "1",
                    "--prefetch-multiplier", "1", "-O", "fair", "--loglevel", "WARNING"],
        "env": [{"name": "PYTHONPATH", "value": str(HERE)},
                {"name": "CELERY_BROKER_URL", "value": redis_url},
                {"name": "CELERY_KEY_PREFIX", "value": PREFIX},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
    }]}}


async def _workers_up(app: Celery, count: int, within: float) -> None:
    """Until `count` workers answer a ping (in a thread: the operator shares this loop)."""
    deadline = time.monotonic() + within
    while len(await asyncio.to_thread(app.control.ping, timeout=0.5)) < count:
        assert time.monotonic() < deadline, f"{count} Celery workers did not come up"
        await asyncio.sleep(0.2)


def _pods_of(marks: Path, suffix: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in marks.glob(f"*.{suffix}"):
        out[f.stem] = [line.split()[0] for line in f.read_text().splitlines()]
    return out


async def test_busy_celery_pods_outlive_idle_ones_none_cut(tmp_path: Path,
                                                            redis_url: str) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    body = spec(redis_url, poll=0.5, minReplicas=4, maxReplicas=4, targetBacklogPerReplica=1,
                idleSecondsBeforeZero=2, scaleDown={"stabilizationSeconds": 4},
                template=_template(redis_url))
    body["queues"] = [{"name": "work", "layout": "celery", "keyPrefix": PREFIX}]
    body["drain"] = {"graceSeconds": 3, "deadlineMarginSeconds": 1}
    names = ["long0", "long1", "short0", "short1"]
    app = Celery(broker=redis_url)
    app.conf.broker_transport_options = {"global_keyprefix": PREFIX}
    runtime = CeleryRuntime()
    async with Cluster(config=fast_config(), runtime=runtime) as c:
        await c.start_operator()
        await c.create_qw("cel", body)
        # Four idle workers first, so that each takes one task as it comes.
        await _workers_up(app, 4, 60)
        for n in names:
            app.send_task("celery_pods.sleep_job", queue="work",
                          args=[str(marks), n, LONG if n.startswith("long") else 0.5])
        await wait_for(lambda: len(_pods_of(marks, "start")) == 4, 30, "every task started")
        started = _pods_of(marks, "start")
        busy = {started["long0"][0], started["long1"][0]}
        # At once: the heartbeats (every 2 s) may not show the tasks yet; the operator asks
        # the workers (`inspect active`) right before it scales down.
        await c.patch_qw("cel", {"spec": {"scaling": {"minReplicas": 0}}})
        # Early ack: nothing in Redis counts the long tasks; the heartbeats hold them.
        await wait_for(lambda: c.replicas("cel") == len(busy), 20, "down to the busy pods")
        await wait_for(lambda: {p["metadata"]["name"] for p in c.pods("cel")} == busy, 20,
                       "only the busy pods left")
        assert not (marks / "long0.done").exists() or not (marks / "long1.done").exists()
        assert ((c.qw("cel").get("status") or {}).get("busyPods") or {}).get("busy", 0) >= 1
        await wait_for(lambda: len(_pods_of(marks, "done")) == 4, 60, "every task done")
        await wait_for(lambda: c.replicas("cel") == 0 and not c.pods("cel"), 30, "0 pods")
    app.close()
    assert {n: len(p) for n, p in _pods_of(marks, "start").items()} == dict.fromkeys(names, 1)
    assert _pods_of(marks, "done") == _pods_of(marks, "start"), "a task was cut"
    assert not [k for k, code in runtime.exit_codes.items() if code < 0], "a pod was killed"
