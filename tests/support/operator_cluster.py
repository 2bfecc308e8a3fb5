"""A small Kubernetes for operator tests: the kmock emulator plus what it lacks.

The emulator (kmock 0.8) stores objects and serves list/watch/patch over HTTP,
but has no controllers, no garbage collector, no generateName, uids,
resourceVersions or generations. Tests of the real kopf operator need those,
so this module adds them, each as small as the tests need:

- ``Emulator``: uid, creationTimestamp, resourceVersion on every write,
  ``metadata.generation`` bumped on spec changes, ``generateName`` (kopf names
  its Events that way).
- ``DeploymentController``: turns a Deployment's replicas into Pod objects
  (no ReplicaSet in between), rolls pods on a template change one at a time
  (surge 1), picks scale-down victims the way the ReplicaSet does (unscheduled,
  pending, not ready, lower pod-deletion-cost, newer first), schedules pods on
  Nodes by their extended resources (GPUs) or leaves them Pending, and writes
  the Deployment's status.
- ``GarbageCollector``: deletes objects whose controller owner is gone.
- ``Cluster``: all of it plus the real kopf operator in a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import itertools
import json
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import kmock
import kopf
from kmock._internal import enums
from kmock._internal import parsing as kmock_parsing

from queueworker.operator import api
from queueworker.operator.cluster import client as kube
from queueworker.operator.cluster.index import pod_requests

QW = f"{api.GROUP}/{api.VERSION}/{api.PLURAL}"
DEPLOYMENTS = "apps/v1/deployments"
PODS = "v1/pods"
NODES = "v1/nodes"
EVENTS = "v1/events"
SECRETS = "v1/secrets"
PEERINGS = "kopf.dev/v1/clusterkopfpeerings"
RESOURCES: dict[str, kmock.ResourceInfo] = {
    QW: kmock.ResourceInfo(kind=api.KIND, namespaced=True, singular=api.SINGULAR,
                           verbs={"get", "list", "watch", "create", "patch", "update", "delete"},
                           subresources={"status", "scale"}),
    "v1/namespaces": kmock.ResourceInfo(kind="Namespace", namespaced=False,
                                        verbs={"get", "list", "watch"}),
    "apiextensions.k8s.io/v1/customresourcedefinitions": kmock.ResourceInfo(
        kind="CustomResourceDefinition", namespaced=False, verbs={"get", "list", "watch"}),
    DEPLOYMENTS: kmock.ResourceInfo(kind="Deployment", namespaced=True,
                                    verbs={"get", "list", "watch", "create", "patch", "delete"},
                                    subresources={"status", "scale"}),
    PODS: kmock.ResourceInfo(kind="Pod", namespaced=True,
                             verbs={"get", "list", "watch", "create", "patch", "delete"},
                             subresources={"status"}),
    NODES: kmock.ResourceInfo(kind="Node", namespaced=False,
                              verbs={"get", "list", "watch", "create", "patch"}),
    EVENTS: kmock.ResourceInfo(kind="Event", namespaced=True,
                               verbs={"create", "list", "watch", "patch"}),
    SECRETS: kmock.ResourceInfo(kind="Secret", namespaced=True,
                                verbs={"get", "create", "patch", "delete"}),
    PEERINGS: kmock.ResourceInfo(kind="ClusterKopfPeering", namespaced=False,
                                 verbs={"get", "list", "watch", "create", "patch"}),
}
_counter = itertools.count(1)
_original_parse_path = kmock_parsing.parse_path


def _parse_path(path: str) -> Any:
    """kmock 0.8 reads /api/v1/namespaces[/NAME] as a namespace prefix with nothing
    after it (HTTP 500); here it is the `namespaces` resource, as on a real server."""
    parts = path.strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 4:
        return kmock_parsing.ParsedPath("", "v1", "namespaces", None,
                                        parts[3] if len(parts) == 4 else None, None)
    return _original_parse_path(path)


kmock_parsing.parse_path = _parse_path


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat().replace(
        "+00:00", "Z")


class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator with the metadata a real API server maintains."""

    handled = 0  # requests served (benchmarks read it)

    async def _handle(self, request: Any) -> Any:
        self.handled += 1
        # kmock keeps every request and re-filters the whole history to route each
        # new one (quadratic); tests never assert on old requests, so keep a few.
        if len(self._requests) > 2:
            del self._requests[:-2]
        for payload in self._payloads:
            if len(payload._requests) > 2:
                del payload._requests[:-2]
        data = request.data
        if request.resource is not None and isinstance(data, dict):
            meta = data.setdefault("metadata", {})
            if request.action == enums.action.CREATE:
                if not meta.get("name") and meta.get("generateName"):
                    meta["name"] = meta["generateName"] + secrets.token_hex(4)
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", _now())
                meta.setdefault("generation", 1)
            elif request.action == enums.action.UPDATE and request.name is not None:
                self._check_version(request, data)
                key = (request.resource, request.namespace, request.name)
                if "spec" in data and request.subresource is None and key in self.objects:
                    obj = self.objects[key]
                    if not obj.deleted:
                        old = json.loads(json.dumps(obj.raw.get("spec") or {}))
                        if _merge(old, data["spec"]) != old:
                            gen = int((obj.raw.get("metadata") or {}).get("generation") or 1)
                            meta["generation"] = gen + 1
            meta["resourceVersion"] = str(next(_counter))
        elif (request.resource is not None and isinstance(data, list)
              and request.action == enums.action.UPDATE and request.name is not None):
            self._check_version(request, data)
            data.append({"op": "replace", "path": "/metadata/resourceVersion",
                         "value": str(next(_counter))})
        return await super()._handle(request)

    def _check_version(self, request: Any, data: Any) -> None:
        """A JSON patch's resourceVersion test fails with 422, as on a real API server."""
        if not isinstance(data, list):
            return
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return
        current = (self.objects[key].raw.get("metadata") or {}).get("resourceVersion")
        for op in data:
            if (op.get("op") == "test" and op.get("path") == "/metadata/resourceVersion"
                    and op.get("value") != current):
                raise kmock.KubernetesError(status=422, reason="Invalid",
                                            message="resourceVersion test failed")


def _merge(base: Any, patch: Any) -> Any:
    if not isinstance(patch, dict) or not isinstance(base, dict):
        return patch
    out = dict(base)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(out.get(k), v)
    return out


def _live(k: Emulator, resource: str) -> list[tuple[str | None, str, dict[str, Any]]]:
    res = kmock.resource(resource)
    out = []
    for (r, ns, name), obj in list(k.objects.items()):
        if r == res and not obj.deleted:
            out.append((ns, name, obj.raw))
    return out


def pod_ready(pod: dict[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


class DeploymentController:
    """Deployment -> Pods, with scheduling by extended resources; see the module doc."""

    def __init__(self, k: Emulator, client: kube.KubeClient) -> None:
        self.k = k
        self.client = client
        self.deleted: list[dict[str, Any]] = []  # pods removed on scale-down, in order

    def template_hash(self, template: Any) -> str:
        return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]

    def pods_of(self, namespace: str | None, uid: str) -> list[dict[str, Any]]:
        out = []
        for ns, _, pod in _live(self.k, PODS):
            refs = (pod.get("metadata") or {}).get("ownerReferences") or []
            if ns == namespace and any(r.get("uid") == uid for r in refs):
                out.append(pod)
        return out

    def free(self) -> dict[str, dict[str, int]]:
        free: dict[str, dict[str, int]] = {}
        for _, name, node in _live(self.k, NODES):
            alloc = (node.get("status") or {}).get("allocatable") or {}
            free[name] = {r: int(str(v)) for r, v in alloc.items() if "/" in r}
        for _, _, pod in _live(self.k, PODS):
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name in free:
                for r, v in pod_requests(pod.get("spec") or {}).items():
                    free[node_name][r] = free[node_name].get(r, 0) - v
        return free

    def place(self, spec: dict[str, Any]) -> str | None:
        wants = pod_requests(spec)
        if not wants:
            return "node-cpu"
        for node, avail in sorted(self.free().items()):
            if all(avail.get(r, 0) >= v for r, v in wants.items()):
                return node
        return None

    async def step(self) -> None:
        for ns, name, d in _live(self.k, DEPLOYMENTS):
            await self.reconcile(ns, name, d)
        # Pending pods get a node once one has room (after a scale-down, say).
        for ns, name, pod in _live(self.k, PODS):
            if not (pod.get("spec") or {}).get("nodeName") and not (
                    pod.get("metadata") or {}).get("deletionTimestamp"):
                node = self.place(pod.get("spec") or {})
                if node is not None:
                    await self.client.patch(kube.pod_path(ns or "", name), {
                        "spec": {"nodeName": node},
                        "status": {"phase": "Running",
                                   "conditions": [{"type": "Ready", "status": "True"}]},
                    }, operation="schedule")

    async def reconcile(self, ns: str | None, name: str, d: dict[str, Any]) -> None:
        meta, spec = d.get("metadata") or {}, d.get("spec") or {}
        uid = meta.get("uid")
        if not uid:
            return
        replicas = int(spec.get("replicas", 1) or 0)
        template = spec.get("template") or {}
        thash = self.template_hash(template)
        pods = [p for p in self.pods_of(ns, uid)
                if not (p.get("metadata") or {}).get("deletionTimestamp")]
        new = [p for p in pods if p["metadata"].get("labels", {}).get("pod-template-hash")
               == thash]
        old = [p for p in pods if p not in new]
        if old:  # rolling update: surge one new pod, then retire one old pod
            if len(pods) <= replicas and len(new) < replicas:
                await self.create_pod(ns or "", name, uid, template, thash)
            elif old:
                await self.delete_pod(ns or "", self.rank(old)[0], record=False)
        elif len(new) < replicas:
            for _ in range(replicas - len(new)):
                await self.create_pod(ns or "", name, uid, template, thash)
        elif len(new) > replicas:
            for victim in self.rank(new)[: len(new) - replicas]:
                await self.delete_pod(ns or "", victim, record=True)
        pods = self.pods_of(ns, uid)
        status = {
            "replicas": len(pods),
            "readyReplicas": sum(1 for p in pods if pod_ready(p)),
            "updatedReplicas": sum(1 for p in pods if p["metadata"].get("labels", {}).get(
                "pod-template-hash") == thash),
            "observedGeneration": meta.get("generation"),
        }
        if {k: (d.get("status") or {}).get(k) for k in status} != status:
            await self.client.patch(kube.deployments_path(ns or "", name) + "/status",
                                    {"status": status}, operation="deployment_status")

    def rank(self, pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """ReplicaSet victim order (controller_utils ActivePodsWithRanks, simplified)."""

        def key(p: dict[str, Any]) -> tuple[Any, ...]:
            spec, status = p.get("spec") or {}, p.get("status") or {}
            annotations = p["metadata"].get("annotations") or {}
            cost = int(annotations.get("controller.kubernetes.io/pod-deletion-cost", "0"))
            phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.get("phase"), 2)
            created = p["metadata"].get("creationTimestamp") or ""
            # Newer first: negate the order by sorting on the reversed timestamp.
            return (bool(spec.get("nodeName")), phase_rank, pod_ready(p), cost,
                    [-ord(c) for c in created], p["metadata"]["name"])

        return sorted(pods, key=key)

    async def create_pod(self, ns: str, deployment: str, uid: str, template: dict[str, Any],
                         thash: str) -> None:
        tmeta = template.get("metadata") or {}
        spec = json.loads(json.dumps(template.get("spec") or {}))
        node = self.place(spec)
        if node is not None:
            spec["nodeName"] = node
            status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        else:
            status = {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": f"{deployment}-{thash[:5]}-{secrets.token_hex(3)}",
                "namespace": ns,
                "labels": {**(tmeta.get("labels") or {}), "pod-template-hash": thash},
                "annotations": dict(tmeta.get("annotations") or {}),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": deployment, "uid": uid, "controller": True}],
            },
            "spec": spec,
            "status": status,
        }
        await self.client.create(f"/api/v1/namespaces/{ns}/pods", pod, operation="create_pod")

    async def delete_pod(self, ns: str, pod: dict[str, Any], *, record: bool) -> None:
        if record:
            self.deleted.append(pod)
        await self.client.delete(kube.pod_path(ns, pod["metadata"]["name"]),
                                 operation="delete_pod")


class GarbageCollector:
    """Background cascading deletion by controller owner references (same namespace)."""

    KINDS = {api.KIND: QW, "Deployment": DEPLOYMENTS}

    def __init__(self, k: Emulator, client: kube.KubeClient) -> None:
        self.k = k
        self.client = client

    async def step(self) -> None:
        uids: dict[tuple[str | None, str, str], str] = {}
        for kind, res in self.KINDS.items():
            for ns, name, obj in _live(self.k, res):
                uids[(ns, kind, name)] = (obj.get("metadata") or {}).get("uid", "")
        for res, path in ((DEPLOYMENTS, "/apis/apps/v1/namespaces/{ns}/deployments/{name}"),
                          (PODS, "/api/v1/namespaces/{ns}/pods/{name}")):
            for ns, name, obj in _live(self.k, res):
                for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
                    if ref.get("kind") not in self.KINDS:
                        continue
                    if uids.get((ns, ref["kind"], ref["name"])) != ref.get("uid"):
                        await self.client.delete(path.format(ns=ns, name=name),
                                                 operation="gc")
                        break


class Cluster:
    """The emulator on a local port, the helpers above, and the operator on demand."""

    def __init__(self, *, config: Any = None, controllers: bool = True) -> None:
        self.config = config
        self.controllers = controllers
        self.k = Emulator()
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
        self.controller = DeploymentController(self.k, self.client)
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
        await self.stop_operator()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.close()
        await self._server.__aexit__(*exc)
        await self.k.__aexit__(*exc)

    # ------------------------------------------------------------------ the operator

    async def start_operator(self, namespaces: list[str] | None = None) -> None:
        from queueworker.operator import handlers

        kube.configure(self.info)
        if self.config is not None:
            handlers.CONFIG = self.config
        self._stop = asyncio.Event()
        ready = asyncio.Event()
        self._operator = asyncio.create_task(kopf.operator(
            clusterwide=not namespaces, namespaces=namespaces or (), standalone=True,
            stop_flag=self._stop, ready_flag=ready))
        await asyncio.wait_for(ready.wait(), 20)

    async def stop_operator(self) -> None:
        if self._operator is None or self._stop is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(self._operator, 20)
        finally:
            self._operator = None
            kube.configure(None)

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
                         namespace: str = "default") -> None:
        import base64

        await self.client.create(f"/api/v1/namespaces/{namespace}/secrets", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
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
        return json.loads(json.dumps(self.k.objects[key].raw))

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
        return [p for ns, _, p in _live(self.k, PODS) if ns == namespace and
                (p["metadata"].get("labels") or {}).get("app.kubernetes.io/instance") == qw_name]

    def events(self, name: str | None = None, reason: str | None = None
               ) -> list[dict[str, Any]]:
        out = []
        for _, _, ev in _live(self.k, EVENTS):
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
