"""Other libraries' workers, autoscaled by the real operator on the real control plane.

QueueWorkers with the `rq` and `celery` layouts whose templates run a real `rq worker`
(RQ 3) and a real `celery worker` (Celery 5, prefork, early ack); the harness's kubelet
runs each pod's worker as a process with the pod's host name
(podhost/sitecustomize.py), so the worker reports its pod as in a cluster: RQ's hash in
`rq:workers`, Celery's `celery@<host>` in its heartbeat events. The operator's busy
adapters (observe/busy/rq.py, celery.py) read those: idle pods get the lowest
`controller.kubernetes.io/pod-deletion-cost`, and the real ReplicaSet controller picks
its scale-down victims by that mark.

Each test: a burst mixing a few long jobs with short ones, 0 -> 4 replicas; once the
short ones are done the long ones' pods are busy and the others idle, so the partial
scale-down must take idle ones; then back to 0. Every job logs its own start and end with
its pod (cluster/foreign_jobs.py), so the test checks that none was lost, none ran twice,
and no pod was told to stop (deletionTimestamp, seen by a watch) while a job of its own
ran. The drain grace is far above the longest job, so a wrong victim would not cut its
job here (both libraries finish it on SIGTERM) but would show in that log.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from rq import Queue

from cluster.controlplane import ControlPlane
from cluster.kubectl import Kubectl
from cluster.kubelet import Kubelet
from cluster.operators import Operator, start_operator
from cluster.podwatch import PodWatcher
from cluster.wait import wait_until
from support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "qw-foreign"
NODE = "foreign-node-0"
BIN = Path(sys.executable).parent
Send = Callable[[str, float], None]


@dataclass
class Env:
    kubectl: Kubectl
    redis: redis.Redis
    redis_url: str
    watcher: PodWatcher
    operator: Operator
    busy_seen: list[dict[str, Any]] = field(default_factory=list)

    def apply(self, name: str, spec: dict[str, Any]) -> None:
        manifest = {"apiVersion": "queueworker.dev/v1alpha1", "kind": "QueueWorker",
                    "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}
        self.kubectl.run("create", "-f", "-", stdin=json.dumps(manifest))

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        proc = self.kubectl.run("get", kind, name, "-n", NAMESPACE, "-o", "json", check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    def replicas(self, name: str) -> int | None:
        """The Deployment's replicas; notes the QueueWorker's busyPods on the way."""
        qw = self.get("qw", name) or {}
        busy = (qw.get("status") or {}).get("busyPods")
        if busy:
            self.busy_seen.append(busy)
        dep = self.get("deployment", name)
        return None if dep is None else int(dep["spec"].get("replicas", 1))

    def pods(self, name: str) -> list[dict[str, Any]]:
        out = self.kubectl.run("get", "pods", "-n", NAMESPACE, "-o", "json", "-l",
                               f"app.kubernetes.io/instance={name}").stdout
        items: list[dict[str, Any]] = json.loads(out)["items"]
        return items

    def log(self, key: str) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.redis.lrange(key, 0, -1)]


def foreign_spec(e: Env, name: str, layout: str, command: list[str],
                 env: dict[str, str], **scaling: Any) -> dict[str, Any]:
    # The worker itself as the container's process (docs/workers/): SIGTERM is its warm
    # shutdown, the job it runs finishes first.
    container = {"name": "worker", "image": layout, "command": command, "env": [
        {"name": k, "value": v}
        for k, v in {"JOBS_REDIS_URL": e.redis_url, "JOBS_LOG": name, **env}.items()]}
    return {
        "redis": {"url": e.redis_url},
        "queues": [{"name": name, "layout": layout}],
        "scaling": {"minReplicas": 0, "maxReplicas": 4, "targetBacklogPerReplica": 1,
                    "pollIntervalSeconds": 0.5, **scaling},
        "drain": {"graceSeconds": 60, "deadlineMarginSeconds": 5},
        "template": {"spec": {"containers": [container]}},
    }


@pytest.fixture(scope="module")
def env(control_plane: ControlPlane, kubelet: Kubelet, kubectl: Kubectl,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    kubelet.add_node(NODE)
    kubectl.run("apply", "-f", str(ROOT / "crds" / "queueworker.yaml"))
    kubectl.run("wait", "--for=condition=Established", "--timeout=30s",
                "crd/queueworkers.queueworker.dev")
    kubectl.run("create", "namespace", NAMESPACE)
    server = RedisServer().start()
    log = tmp_path_factory.mktemp("foreign") / "operator.log"
    op = start_operator(control_plane.kubeconfig, [
        "--standalone", "--namespace", NAMESPACE, "--status-refresh", "1",
        "--log-format", "plain"], log)
    watcher = PodWatcher(control_plane, NAMESPACE).start()
    try:
        yield Env(kubectl, redis.Redis.from_url(server.url), server.url, watcher, op)
        # The QueueWorkers carry the operator's finalizer: delete them while it runs.
        kubectl.run("delete", "qw", "--all", "-n", NAMESPACE, "--wait=true", timeout=120)
    finally:
        watcher.stopped.set()
        op.stop()
        kubectl.run("delete", "namespace", NAMESPACE, "--wait=false", check=False)
        server.cleanup()


def burst(e: Env, name: str, spec: dict[str, Any], send: Send, long_s: float, longs: int,
          short_s: float, shorts: int, *, seconds: float) -> None:
    """0 -> N -> 0 for `longs` long jobs sent first and `shorts` short ones; asserts the
    job log (none lost, none twice, none cut) and that idle pods went first."""
    e.busy_seen.clear()
    e.apply(name, spec)
    wait_until("the Deployment at 0 replicas", lambda: e.replicas(name) == 0, 30,
               e.operator.log)
    long_names = [f"long{i}" for i in range(longs)]
    short_names = [f"short{i}" for i in range(shorts)]
    for job in long_names:  # first: each is taken by a pod as it comes up
        send(job, long_s)
    for job in short_names:
        send(job, short_s)
    peak = 0

    def scaled_up() -> bool:
        nonlocal peak
        peak = max(peak, e.replicas(name) or 0)
        return peak >= 3

    wait_until("a scale-up to 3+ replicas", scaled_up, 60, e.operator.log)
    wait_until("every job done", lambda: (e.replicas(name), e.redis.llen(f"{name}:done"))[1]
               >= longs + shorts, seconds, e.operator.log)
    wait_until("back to 0 replicas", lambda: e.replicas(name) == 0, 60, e.operator.log)
    wait_until("no pods left", lambda: not e.pods(name), 60, e.operator.log)

    starts, done = e.log(f"{name}:start"), e.log(f"{name}:done")
    names = [j["name"] for j in done]
    assert sorted(names) == sorted(long_names + short_names), f"lost or twice: {names}"
    assert sorted(j["name"] for j in starts) == sorted(names), "a job started twice"
    pods = {p: s for p, s in e.watcher.pods.items() if p.startswith(f"{name}-")}
    assert {j["pod"] for j in done} <= set(pods), "a job ran under another host name"
    # No pod was told to stop in the middle of one of its own jobs.
    cut = [(j["name"], j["pod"]) for j in done
           if (at := pods[j["pod"]].deleted_at) and j["start"] < at < j["end"]]
    assert not cut, f"told to stop mid-job: {cut}"
    # The partial scale-down: pods stopped while long jobs still ran elsewhere were idle
    # ones (the lowest pod-deletion-cost, from the busy adapter); busy pods outlived them.
    long_jobs = [j for j in done if j["name"] in long_names]
    last_long_end = max(j["end"] for j in long_jobs)
    early = {p: s.deleted_at for p, s in pods.items()
             if s.deleted_at and s.deleted_at < last_long_end}
    assert early, "no pod went while the long jobs ran: no partial scale-down happened"
    last_busy = max(long_jobs, key=lambda j: j["end"])["pod"]
    assert (pods[last_busy].deleted_at or 0) > max(early.values()), "a busy pod went first"
    # The operator told busy pods from idle ones by the workers' own reports: at some
    # poll both kinds at once, and no pod unknown (status.busyPods).
    assert any(b.get("busy", 0) >= 1 and b.get("idle", 0) >= 1 and b.get("unknown", 1) == 0
               for b in e.busy_seen), e.busy_seen[-5:]


def test_real_rq_workers_scale_0_n_0_idle_pods_go_first_no_job_cut(env: Env) -> None:
    e, name = env, "rq-burst"
    spec = foreign_spec(e, name, "rq", [str(BIN / "rq"), "worker", "--url", e.redis_url, name],
                        {}, idleSecondsBeforeZero=2, scaleDown={"stabilizationSeconds": 1})
    queue = Queue(name, connection=e.redis)

    def send(job: str, seconds: float) -> None:
        queue.enqueue("cluster.foreign_jobs.sleep_job", job, seconds)

    burst(e, name, spec, send, 8.0, 3, 0.2, 6, seconds=90)


def test_real_celery_workers_scale_0_n_0_idle_pods_go_first_no_task_cut(env: Env) -> None:
    e, name = env, "celery-burst"
    # Busy comes from heartbeat events every 2 s: scale down only after several
    # (docs/workers/celery.md), and one task per worker at a time (prefetch 1, fair).
    spec = foreign_spec(
        e, name, "celery",
        [str(BIN / "celery"), "-A", "cluster.foreign_celery", "worker", "-Q", name, "-c", "1",
         "--prefetch-multiplier", "1", "-O", "fair", "--loglevel", "INFO"],
        {"CELERY_BROKER_URL": e.redis_url},
        idleSecondsBeforeZero=6, scaleDown={"stabilizationSeconds": 6})
    app = Celery(broker=e.redis_url)

    def send(job: str, seconds: float) -> None:
        app.send_task("foreign_celery.sleep_job", args=[job, seconds], queue=name)

    try:
        burst(e, name, spec, send, 16.0, 2, 0.3, 8, seconds=120)
    finally:
        app.close()
