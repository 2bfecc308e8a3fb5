"""The scheduler and the kubelet of the test cluster.

``Kubelet.step`` reads the store as it is now (no lag) and moves every pod on:

- unscheduled: bound to the first Node (by name) whose free extended resources
  (GPUs) fit the pod's requests (kube_requests.py), counting every pod bound to
  that Node, terminating ones included: a terminating pod holds its resources
  until it is removed. Pods that request none go to ``node-cpu``; the others
  stay Pending (PodScheduled=False, Unschedulable) until a Node has room;
- scheduled, Pending: Running ``start_seconds`` after it was bound (the
  runtime starts its containers then), with a ``status.podIP`` of its own on
  the loopback network (127.0.1.1, 127.0.1.2, ...: ``pod_ip``), which a test's
  socket can bind to so that Redis's CLIENT LIST shows it as that pod's;
- Running: Ready ``ready_seconds`` after it started, with the Ready
  condition's lastTransitionTime set then;
- terminating (``deletionTimestamp``): the runtime gets SIGTERM for the pod's
  containers once; the pod is removed (DELETE with grace 0) when they have
  exited, or after ``deletionGracePeriodSeconds`` with SIGKILL. A pod that never
  started is removed at once.

The runtime is what runs a pod's containers. ``EmulatedRuntime`` runs nothing:
its containers exit ``stop_seconds`` after SIGTERM. support/operator_e2e.py has
one that runs the pod's worker as a real process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import kmock

from queueworker.operator.cluster import client as kube

from support.kube_emulator import NODES, PODS, live, now_iso, pod_ready
from support.kube_requests import extended_requests

CPU_NODE = "node-cpu"


@dataclass
class PodTiming:
    """How long a pod takes through its life; the zero default is instant."""

    start_seconds: float = 0.0  # bound -> Running (image pull, container start)
    ready_seconds: float = 0.0  # Running -> Ready (readiness probe)
    stop_seconds: float = 0.0  # SIGTERM -> containers exited (EmulatedRuntime only)


class Runtime(Protocol):
    def start(self, namespace: str, pod: dict[str, Any]) -> None: ...
    def stop(self, name: str) -> None: ...  # SIGTERM
    def exited(self, name: str) -> bool: ...
    def kill(self, name: str) -> None: ...  # SIGKILL
    def close(self) -> None: ...


@dataclass
class EmulatedRuntime:
    """Containers that run nothing and exit ``stop_seconds`` after SIGTERM."""

    stop_seconds: float = 0.0
    stopped: dict[str, float] = field(default_factory=dict)

    def start(self, namespace: str, pod: dict[str, Any]) -> None:
        pass

    def stop(self, name: str) -> None:
        self.stopped[name] = time.monotonic()

    def exited(self, name: str) -> bool:
        return time.monotonic() - self.stopped.get(name, 0.0) >= self.stop_seconds

    def kill(self, name: str) -> None:
        pass

    def close(self) -> None:
        pass


class Kubelet:
    """Scheduler and kubelet of every Node at once; see the module doc."""

    def __init__(self, k: kmock.KubernetesEmulator, timing: PodTiming,
                 runtime: Runtime) -> None:
        self.k = k
        self.timing = timing
        self.runtime = runtime
        self.since: dict[str, float] = {}  # pod uid -> when it entered its current phase
        self.terminating: dict[str, float] = {}  # pod uid -> when SIGTERM was sent
        self.log: list[tuple[float, str, str]] = []  # (monotonic, pod, what happened)
        self.started = 0  # pods started so far: the next one's IP is pod_ip(started)

    def free(self) -> dict[str, dict[str, int]]:
        free: dict[str, dict[str, int]] = {}
        for _, name, node in live(self.k, NODES):
            alloc = (node.get("status") or {}).get("allocatable") or {}
            free[name] = {r: int(str(v)) for r, v in alloc.items() if "/" in r}
        for _, _, pod in live(self.k, PODS):
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name in free:
                for r, v in extended_requests(pod.get("spec") or {}).items():
                    free[node_name][r] = free[node_name].get(r, 0) - v
        return free

    def place(self, spec: dict[str, Any]) -> str | None:
        wants = extended_requests(spec)
        if not wants:
            return CPU_NODE
        for node, avail in sorted(self.free().items()):
            if all(avail.get(r, 0) >= v for r, v in wants.items()):
                return node
        return None

    async def step(self, client: kube.KubeClient) -> None:
        pods = sorted(live(self.k, PODS), key=lambda p: (
            (p[2].get("metadata") or {}).get("creationTimestamp") or "", p[1]))
        for ns, name, pod in pods:
            meta = pod.get("metadata") or {}
            if meta.get("deletionTimestamp"):
                await self.terminate(client, ns or "", name, pod)
            else:
                await self.advance(client, ns or "", name, pod)

    async def advance(self, client: kube.KubeClient, ns: str, name: str,
                      pod: dict[str, Any]) -> None:
        uid = str(pod["metadata"].get("uid"))
        spec, status = dict(pod.get("spec") or {}), pod.get("status") or {}
        now = time.monotonic()
        phase, ready = status.get("phase") or "Pending", pod_ready(pod)
        patch: dict[str, Any] = {}
        if not spec.get("nodeName"):
            node = self.place(spec)
            if node is None:
                if not any(c.get("reason") == "Unschedulable"
                           for c in status.get("conditions") or []):
                    await self._patch(client, ns, name, {"status": {
                        "phase": "Pending", "conditions": [{
                            "type": "PodScheduled", "status": "False",
                            "reason": "Unschedulable"}]}})
                return
            spec["nodeName"] = node
            patch["spec"] = {"nodeName": node}
            self.since[uid] = now
            self.log.append((now, name, "scheduled"))
        since = self.since.setdefault(uid, now)
        if phase == "Pending" and now - since >= self.timing.start_seconds:
            self.runtime.start(ns, {**pod, "spec": spec})
            self.since[uid] = since = now
            phase, ready = "Running", False
            ip, self.started = pod_ip(self.started), self.started + 1
            patch["status"] = {"startTime": now_iso(), "podIP": ip, "podIPs": [{"ip": ip}]}
            self.log.append((now, name, "running"))
        if phase == "Running" and not ready and now - since >= self.timing.ready_seconds:
            ready = True
            patch.setdefault("status", {})
            self.log.append((now, name, "ready"))
        if patch:
            patch.setdefault("status", {}).update(
                {"phase": phase, "conditions": _conditions(phase, ready)})
            await self._patch(client, ns, name, patch)

    async def terminate(self, client: kube.KubeClient, ns: str, name: str,
                        pod: dict[str, Any]) -> None:
        uid = str(pod["metadata"].get("uid"))
        now = time.monotonic()
        started = (pod.get("status") or {}).get("phase") == "Running"
        if uid not in self.terminating:
            self.terminating[uid] = now
            if started:
                self.runtime.stop(name)
                self.log.append((now, name, "sigterm"))
        grace = float(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
        if started and not self.runtime.exited(name):
            if now - self.terminating[uid] < grace:
                return
            self.runtime.kill(name)
            self.log.append((now, name, "sigkill"))
        else:
            self.log.append((now, name, "exited"))
        await client.request("DELETE", kube.pod_path(ns, name), operation="kubelet_remove",
                             params={"gracePeriodSeconds": "0"}, not_found_ok=True)
        self.log.append((time.monotonic(), name, "removed"))
        self.since.pop(uid, None)
        self.terminating.pop(uid, None)

    def events(self, pod: str) -> list[str]:
        return [what for _, name, what in self.log if name == pod]

    def at(self, pod: str, what: str) -> float | None:
        return next((t for t, name, w in self.log if name == pod and w == what), None)

    async def _patch(self, client: kube.KubeClient, ns: str, name: str,
                     patch: dict[str, Any]) -> None:
        await client.patch(kube.pod_path(ns, name), patch, operation="kubelet")


def pod_ip(n: int) -> str:
    """The n-th pod's IP: 127.0.1.1 onwards (Linux answers the whole 127/8 on loopback;
    127.0.0.1, where the operator and the tests connect from, is never a pod's)."""
    return f"127.{n // 62500 % 250}.{1 + n // 250 % 250}.{1 + n % 250}"


def _conditions(phase: str, ready: bool) -> list[dict[str, Any]]:
    ready_cond: dict[str, Any] = {"type": "Ready", "status": "True" if ready else "False",
                                  "lastTransitionTime": now_iso()}
    if not ready:
        ready_cond["reason"] = "ContainersNotReady" if phase == "Running" else "PodNotStarted"
    return [{"type": "PodScheduled", "status": "True"}, ready_cond]
