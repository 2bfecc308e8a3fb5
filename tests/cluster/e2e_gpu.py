"""GPU QueueWorkers competing on the real scheduler.

Two fake Nodes with 4 `nvidia.com/gpu` each (the real scheduler counts them), and
three GPU QueueWorkers of 2 GPUs per replica pinned to those Nodes: `blocker`
(gpu.priority 100) takes all 8 GPUs first; then `high` (priority 10) and `low`
(priority 0) both get a backlog of 4 and find no free GPU; then `blocker`'s queue
empties. As documented (engine/capacity.py, `spec.gpu`):

- a QueueWorker is never given more replicas than free GPUs can hold: while none is
  free, `high` and `low` stay at 0 replicas with GPULimited True (InsufficientGPUs,
  `status.gpuLimited`), and no pod of theirs waits in Pending;
- a terminating pod still holds its GPUs: `blocker`'s pods take 6 s to stop after
  SIGTERM, and nobody is scaled into them meanwhile (their pods would sit Pending);
- the freed GPUs go by priority: `high` gets all 4 replicas, `low` stays limited.

A thread watches every pod and notes, on this machine's clock, when it was first seen
and when it was bound to a Node: none may wait longer than a few polls.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from queueworker.worker.producer import Producer

from cluster.controlplane import ControlPlane
from cluster.kubeapi import MERGE_PATCH, ApiError
from cluster.kubectl import Kubectl
from cluster.kubelet import Kubelet
from cluster.operators import Operator, start_operator
from cluster.wait import wait_until
from support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "qw-gpu"
NODES = ("gpu-e2e-0", "gpu-e2e-1")
POOL = {"queueworker.dev/e2e-pool": "gpu"}
POLL = 0.5
# A worker that takes 6 s to stop after SIGTERM (inside a 10 s grace period).
SLOW_STOP = "trap 'sleep 6; exit 0' TERM; while true; do sleep 0.2; done"
# Created -> bound: the scheduler binds a pod that fits in well under a second; a pod
# the operator made without a free GPU would wait for the 6 s stop at least.
MAX_PENDING = 3.0


@dataclass
class Pending:
    """When each pod was first seen and when it was first seen bound."""

    plane: ControlPlane
    seen: dict[str, float] = field(default_factory=dict)
    bound: dict[str, float] = field(default_factory=dict)
    gone: dict[str, float] = field(default_factory=dict)
    stopped: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Pending:
        threading.Thread(target=self._loop, daemon=True).start()
        return self

    def _loop(self) -> None:
        api, path = self.plane.api(), f"/api/v1/namespaces/{NAMESPACE}/pods"
        while not self.stopped.is_set():
            try:
                listed = api.get(path)
                for pod in listed["items"]:
                    self._note(pod)
                for event in api.watch(path, listed["metadata"]["resourceVersion"], 10):
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self._note(event["object"])
                    elif event.get("type") == "DELETED":
                        self.gone.setdefault(event["object"]["metadata"]["name"],
                                             time.monotonic())
                    if self.stopped.is_set():
                        return
            except ApiError:
                time.sleep(0.2)

    def _note(self, pod: dict[str, Any]) -> None:
        now, name = time.monotonic(), pod["metadata"]["name"]
        self.seen.setdefault(name, now)
        if pod["spec"].get("nodeName"):
            self.bound.setdefault(name, now)

    def waits(self) -> dict[str, float]:
        now = time.monotonic()
        return {p: self.bound.get(p, now) - t for p, t in self.seen.items()}


@dataclass
class Env:
    kubectl: Kubectl
    redis: redis.Redis
    redis_url: str
    operator: Operator
    pending: Pending

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        proc = self.kubectl.run("get", kind, name, "-n", NAMESPACE, "-o", "json", check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    def apply_qw(self, name: str, priority: int) -> None:
        container = {"name": "worker", "image": "example.org/gpu-worker:1",
                     "command": ["sh", "-c", SLOW_STOP],
                     "resources": {"limits": {"nvidia.com/gpu": 2}}}
        manifest = {"apiVersion": "queueworker.dev/v1alpha1", "kind": "QueueWorker",
                    "metadata": {"name": name, "namespace": NAMESPACE},
                    "spec": {"redis": {"url": self.redis_url}, "queues": [{"name": name}],
                             "scaling": {"pollIntervalSeconds": POLL, "minReplicas": 0,
                                         "maxReplicas": 4, "targetBacklogPerReplica": 1,
                                         "idleSecondsBeforeZero": 1,
                                         "scaleDown": {"stabilizationSeconds": 1}},
                             "gpu": {"capToFreeCapacity": True, "priority": priority},
                             "drain": {"graceSeconds": 10, "deadlineMarginSeconds": 2},
                             "template": {"spec": {"containers": [container],
                                                   "nodeSelector": POOL}}}}
        self.kubectl.run("apply", "-f", "-", stdin=json.dumps(manifest))

    def replicas(self, name: str) -> int | None:
        dep = self.get("deployment", name)
        return None if dep is None else int(dep["spec"].get("replicas", 1))

    def ready(self, name: str) -> int:
        return int(((self.get("deployment", name) or {}).get("status") or {}).get(
            "readyReplicas") or 0)

    def gpu_limited(self, name: str) -> dict[str, Any]:
        qw = self.get("qw", name) or {}
        for cond in (qw.get("status") or {}).get("conditions") or []:
            if cond["type"] == "GPULimited":
                found: dict[str, Any] = cond
                return found
        return {}

    def unbound_pods(self) -> list[str]:
        pods = json.loads(self.kubectl.run("get", "pods", "-n", NAMESPACE, "-o",
                                           "json").stdout)["items"]
        return [p["metadata"]["name"] for p in pods if not p["spec"].get("nodeName")]


@pytest.fixture(scope="module")
def env(control_plane: ControlPlane, kubelet: Kubelet, kubectl: Kubectl,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    api = control_plane.api()
    for node in NODES:
        kubelet.add_node(node, gpus=4)
        api.request("PATCH", f"/api/v1/nodes/{node}", {"metadata": {"labels": POOL}},
                    MERGE_PATCH)
    kubectl.run("apply", "-f", str(ROOT / "crds" / "queueworker.yaml"))
    kubectl.run("wait", "--for=condition=Established", "--timeout=30s",
                "crd/queueworkers.queueworker.dev")
    kubectl.run("create", "namespace", NAMESPACE)
    server = RedisServer().start()
    log = tmp_path_factory.mktemp("gpu") / "operator.log"
    op = start_operator(control_plane.kubeconfig, [
        "--standalone", "--namespace", NAMESPACE, "--status-refresh", "1",
        "--log-format", "plain"], log)
    pending = Pending(control_plane).start()
    try:
        yield Env(kubectl, redis.Redis.from_url(server.url), server.url, op, pending)
        kubectl.run("delete", "qw", "--all", "-n", NAMESPACE, "--wait=true", timeout=120)
    finally:
        pending.stopped.set()
        op.stop()
        kubectl.run("delete", "namespace", NAMESPACE, "--wait=false", check=False)
        server.cleanup()


def test_free_gpus_cap_priority_arbitrates_terminating_pods_hold_theirs(env: Env) -> None:
    e = env
    producer = Producer(e.redis)
    log = e.operator.log
    e.apply_qw("blocker", priority=100)
    for n in range(4):
        producer.enqueue("blocker", {"n": n})
    wait_until("blocker on all 8 GPUs", lambda: e.ready("blocker") == 4, 60, log)

    for name, priority in (("high", 10), ("low", 0)):
        e.apply_qw(name, priority)
        for n in range(4):
            producer.enqueue(name, {"n": n})
    for name in ("high", "low"):
        cond = wait_until(f"{name} GPULimited", lambda n=name: (
            c := e.gpu_limited(n)).get("status") == "True" and c, 30, log)
        assert cond["reason"] == "InsufficientGPUs", cond
        assert (e.get("qw", name) or {})["status"]["gpuLimited"] is True
    time.sleep(4 * POLL)  # a few polls: still nothing asked of the full nodes
    assert e.replicas("high") == 0
    assert e.replicas("low") == 0
    assert e.unbound_pods() == []

    # blocker's queue empties: its 4 pods stop, each holding 2 GPUs for 6 s more.
    e.redis.delete(*[k for k in e.redis.scan_iter("*blocker*")])
    wait_until("blocker scaled to 0", lambda: e.replicas("blocker") == 0, 30, log)
    wait_until("high on the freed GPUs", lambda: e.ready("high") == 4, 60, log)
    wait_until("high no longer limited", lambda: e.gpu_limited("high").get("status") == "False",
               30, log)
    # By priority: low got none of them and says why.
    assert e.replicas("low") == 0
    assert e.gpu_limited("low")["status"] == "True"
    waits = e.pending.waits()
    assert len(waits) >= 8, waits  # blocker's 4 and high's 4 were watched
    slow = {p: round(w, 1) for p, w in waits.items() if w > MAX_PENDING}
    assert not slow, f"pods Pending for longer than {MAX_PENDING}s: {slow}"
    # Terminating pods held their GPUs: high's pods came only once blocker's were gone.
    first_high = min(t for p, t in e.pending.seen.items() if p.startswith("high-"))
    blocker_gone = [t for p, t in e.pending.gone.items() if p.startswith("blocker-")]
    assert len(blocker_gone) == 4
    assert first_high > min(blocker_gone), "high was scaled into GPUs still held"
