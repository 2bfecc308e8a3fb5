"""A small Kubernetes for operator tests: the kmock emulator plus what it lacks.

The pieces, each in its module:

- kube_emulator.py, the API server: uids, resourceVersions, generations,
  generateName, graceful pod deletion, and informer lag per resource (a watch
  and a controller's store see writes that many seconds late);
- kube_controllers.py, the Deployment controller (rolling updates with
  maxSurge/maxUnavailable, scale-down victims ranked as the ReplicaSet does)
  and the garbage collector;
- kube_kubelet.py, the scheduler and kubelet: pods bound to Nodes by their
  extended resources (kube_requests.py, the Kubernetes rule), Pending ->
  Running -> Ready after ``PodTiming`` delays, SIGTERM on deletion, removal once
  the containers exit or after the grace period with SIGKILL;
- ``Cluster`` here: all of it on a local port, plus the real kopf operator.

Defaults are instant and without lag; a test opts into delays with ``lags``,
``timing`` and a ``runtime`` (support/operator_e2e.py runs real workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kmock
import kopf

from queueworker.operator import api
from queueworker.operator.cluster import client as kube

from support.kube_controllers import DeploymentController, GarbageCollector
from support.kube_emulator import (
    DEPLOYMENTS,
    EVENTS,
    NODES,
    PODS,
    QW,
    RESOURCES,
    SECRETS,
    Emulator,
    live,
    pod_ready,
)
from support.kube_kubelet import EmulatedRuntime, Kubelet, PodTiming, Runtime

__all__ = ["DEPLOYMENTS", "EVENTS", "NODES", "PODS", "QW", "SECRETS", "Cluster",
           "DeploymentController", "Emulator", "GarbageCollector", "Kubelet", "PodTiming",
           "pod_ready", "wait_for"]


class Cluster:
    """The emulator on a local port, the helpers above, and the operator on demand."""

    def __init__(self, *, config: Any = None, controllers: bool = True,
                 lags: Mapping[str, float] | None = None, timing: PodTiming | None = None,
                 runtime: Runtime | None = None) -> None:
        """``lags``: informer lag in seconds per resource (e.g. ``{PODS: 0.5}``);
        ``timing``: pod start, readiness and stop delays; ``runtime``: what runs a
        pod's containers (default: nothing, they exit ``timing.stop_seconds``
        after SIGTERM)."""
        self.config = config
        self.controllers = controllers
        self.k = Emulator(lags)
        self.timing = timing or PodTiming()
        self.runtime = runtime or EmulatedRuntime(self.timing.stop_seconds)
        self._server: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._operator: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None

    async def __aenter__(self) -> Cluster:
        for key, info in RESOURCES.items():
            self.k.resources[key] = info
        await self.k.__aenter__()
        self._server = kmock.Server(self.k)
        await self._server.__aenter__()
        self.url = str(self.k.url).rstrip("/")
        self.info = kopf.ConnectionInfo(server=self.url, insecure=True, scheme="Bearer",
                                             token="test")
        self.client = kube.KubeClient(self.info, backoffs=(0.1, 0.2))
        self.kubelet = Kubelet(self.k, self.timing, self.runtime)
        self.controller = DeploymentController(self.k, self.client, self.kubelet)
        self.gc = GarbageCollector(self.k, self.client)
        if self.controllers:
            self._tasks.append(asyncio.create_task(self._run(self.controller.step)))
            self._tasks.append(asyncio.create_task(self._run(self.gc.step)))
        return self

    async def _run(self, step: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await step()
            except kube.ApiError:
                pass  # a race with a deletion; the next step sees the new state
            except Exception:  # a harness bug must show, not silently stop the controller
                logging.getLogger(__name__).exception("harness step failed")
            await asyncio.sleep(0.1)

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self.stop_operator()
        finally:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.runtime.close()
        await self.client.close()
        await self._server.__aexit__(*exc)
        await self.k.__aexit__(*exc)

    # ------------------------------------------------------------------ the operator

    async def start_operator(self, namespaces: list[str] | None = None) -> None:
        from queueworker.operator import handlers

        # The config travels in kopf's memo as the CLI passes it; the emulator's
        # credentials go with it for the login handler.
        memo = handlers.operator_memo(self.config, connection=self.info)
        self._stop = asyncio.Event()
        ready = asyncio.Event()
        self._operator = asyncio.create_task(kopf.operator(
            clusterwide=not namespaces, namespaces=namespaces or (), standalone=True,
            stop_flag=self._stop, ready_flag=ready, memo=memo))
        await asyncio.wait_for(ready.wait(), 20)

    async def stop_operator(self) -> None:
        if self._operator is None or self._stop is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(self._operator, 20)
        finally:
            self._operator = None

    # ----------------------------------------------------------------------- objects

    async def create_qw(self, name: str, spec: dict[str, Any], namespace: str = "default",
                        annotations: dict[str, str] | None = None) -> dict[str, Any]:
        body = {"apiVersion": api.API_VERSION, "kind": api.KIND,
                "metadata": {"name": name, "namespace": namespace,
                             "annotations": annotations or {}},
                "spec": spec}
        return await self.client.create(
            f"/apis/{api.GROUP}/{api.VERSION}/namespaces/{namespace}/{api.PLURAL}", body,
            operation="test_create")

    async def patch_qw(self, name: str, patch: dict[str, Any],
                       namespace: str = "default") -> None:
        await self.client.patch(
            f"/apis/{api.GROUP}/{api.VERSION}/namespaces/{namespace}/{api.PLURAL}/{name}",
            patch, operation="test_patch")

    async def delete_qw(self, name: str, namespace: str = "default") -> None:
        await self.client.delete(
            f"/apis/{api.GROUP}/{api.VERSION}/namespaces/{namespace}/{api.PLURAL}/{name}",
            operation="test_delete")

    async def patch_deployment(self, name: str, patch: dict[str, Any],
                               namespace: str = "default") -> None:
        await self.client.patch(kube.deployments_path(namespace, name), patch,
                                operation="test_patch")

    async def add_namespace(self, name: str) -> None:
        await self.client.create("/api/v1/namespaces", {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
            operation="test_namespace")

    async def add_node(self, name: str, allocatable: dict[str, str]) -> None:
        await self.client.create("/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "spec": {}, "status": {"allocatable": allocatable,
                                   "conditions": [{"type": "Ready", "status": "True"}]}},
            operation="test_node")

    async def add_secret(self, name: str, data: dict[str, str],
                         namespace: str = "default", *, opted_in: bool = True) -> None:
        """A Secret; ``opted_in`` labels it ``queueworker.dev/use: "true"``, the only
        kind the operator uses (controller/context.py)."""
        import base64

        labels = {"queueworker.dev/use": "true"} if opted_in else {}
        await self.client.create(f"/api/v1/namespaces/{namespace}/secrets", {
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "labels": labels},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}},
            operation="test_secret")

    def kubeconfig(self, path: str) -> str:
        """A kubeconfig for operator processes started by a test."""
        doc = {
            "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
            "clusters": [{"name": "emulator", "cluster": {
                "server": self.url, "insecure-skip-tls-verify": True}}],
            "users": [{"name": "test", "user": {"token": "test"}}],
            "contexts": [{"name": "emulator", "context": {
                "cluster": "emulator", "user": "test", "namespace": "default"}}],
        }
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
        return path

    def get(self, resource: str, name: str, namespace: str | None = "default"
            ) -> dict[str, Any] | None:
        key = (kmock.resource(resource), namespace, name)
        if key not in self.k.objects or self.k.objects[key].deleted:
            return None
        copy: dict[str, Any] = json.loads(json.dumps(self.k.objects[key].raw))
        return copy

    def qw(self, name: str, namespace: str = "default") -> dict[str, Any]:
        obj = self.get(QW, name, namespace)
        assert obj is not None, f"QueueWorker {name} is gone"
        return obj

    def deployment(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        return self.get(DEPLOYMENTS, name, namespace)

    def replicas(self, name: str, namespace: str = "default") -> int | None:
        d = self.deployment(name, namespace)
        return None if d is None else int((d.get("spec") or {}).get("replicas") or 0)

    def pods(self, qw_name: str, namespace: str = "default") -> list[dict[str, Any]]:
        return [p for ns, _, p in live(self.k, PODS) if ns == namespace and
                (p["metadata"].get("labels") or {}).get("app.kubernetes.io/instance") == qw_name]

    def pods_of_deployment(self, name: str, namespace: str = "default"
                           ) -> list[dict[str, Any]]:
        """Pods (terminating ones too) whose controller is the Deployment `name`."""
        return [p for ns, _, p in live(self.k, PODS) if ns == namespace and any(
            r.get("kind") == "Deployment" and r.get("name") == name
            for r in p["metadata"].get("ownerReferences") or [])]

    def events(self, name: str | None = None, reason: str | None = None
               ) -> list[dict[str, Any]]:
        out = []
        for _, _, ev in live(self.k, EVENTS):
            inv = ev.get("involvedObject") or {}
            if name is not None and inv.get("name") != name:
                continue
            if reason is not None and ev.get("reason") != reason:
                continue
            out.append(ev)
        return out

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        for c in (self.qw(name).get("status") or {}).get("conditions") or []:
            if c.get("type") == type_:
                return dict(c)
        return None

    def history(self, resource: str, name: str, namespace: str | None = "default"
                ) -> list[dict[str, Any] | None]:
        key = (kmock.resource(resource), namespace, name)
        if key not in self.k.objects:
            return []
        return [None if v is None else json.loads(json.dumps(v.raw))
                for v in self.k.objects[key].history]


async def wait_for(predicate: Callable[[], Any], within: float, what: str,
                   interval: float = 0.1) -> Any:
    """Poll until predicate() is truthy; fail naming what was awaited."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (AssertionError, KeyError, TypeError):
            last = None
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {within}s waiting for {what}")
