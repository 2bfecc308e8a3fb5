"""The API server of the test cluster: kmock's emulator plus what a real one does.

kmock 0.8 stores objects and serves list/watch/patch over HTTP, but has no uids,
resourceVersions, generations or generateName, deletes pods at once, and shows
every write to every watcher at once. ``Emulator`` adds:

- uid, creationTimestamp, resourceVersion on every write, ``metadata.generation``
  bumped on spec changes, ``generateName`` (kopf names its Events that way), and
  the 422 of a JSON patch whose resourceVersion test fails;
- graceful pod deletion: DELETE sets ``deletionTimestamp`` and
  ``deletionGracePeriodSeconds`` (from ``?gracePeriodSeconds``, else the pod's
  ``terminationGracePeriodSeconds``, else 30) and keeps the pod; only a DELETE
  with a grace of 0 (the kubelet's, once the containers are gone) removes it;
- informer lag, per resource: a watch stream delivers each event that many
  seconds after the write, and ``view()`` (the store a controller reads) shows
  the objects as they were that many seconds ago. Lags differ per resource as
  on a real cluster, where every resource has its own watch and nothing orders
  events across them.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp.web
import kmock
from kmock._internal import enums
from kmock._internal import parsing as kmock_parsing

from queueworker.operator import api

QW = f"{api.GROUP}/{api.VERSION}/{api.PLURAL}"
DEPLOYMENTS = "apps/v1/deployments"
PODS = "v1/pods"
NODES = "v1/nodes"
EVENTS = "v1/events"
SECRETS = "v1/secrets"
PEERINGS = "kopf.dev/v1/clusterkopfpeerings"
DEFAULT_GRACE_SECONDS = 30  # a pod's terminationGracePeriodSeconds when it sets none
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
Live = list[tuple[str | None, str, dict[str, Any]]]


def _parse_path(path: str) -> Any:
    """kmock 0.8 reads /api/v1/namespaces[/NAME] as a namespace prefix with nothing
    after it (HTTP 500); here it is the `namespaces` resource, as on a real server."""
    parts = path.strip("/").split("/")
    if parts[:3] == ["api", "v1", "namespaces"] and len(parts) <= 4:
        return kmock_parsing.ParsedPath("", "v1", "namespaces", None,
                                        parts[3] if len(parts) == 4 else None, None)
    return _original_parse_path(path)


kmock_parsing.parse_path = _parse_path


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat().replace(
        "+00:00", "Z")


def merge(base: Any, patch: Any) -> Any:
    """A JSON merge patch (RFC 7386) applied to a copy of base."""
    if not isinstance(patch, dict) or not isinstance(base, dict):
        return patch
    out = dict(base)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge(out.get(k), v)
    return out


def pod_ready(pod: Mapping[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def live(k: kmock.KubernetesEmulator, resource: str) -> Live:
    """Every stored object of a resource, as it is now."""
    res = kmock.resource(resource)
    return [(ns, name, obj.raw) for (r, ns, name), obj in list(k.objects.items())
            if r == res and not obj.deleted]


class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator with the metadata, pod deletion and lag of a real API server."""

    handled = 0  # requests served (benchmarks read it)

    def __init__(self, lags: Mapping[str, float] | None = None) -> None:
        super().__init__()
        self.lags = [(kmock.resource(name), float(s)) for name, s in (lags or {}).items()
                     if s > 0]
        # (resource, namespace, name) -> [(monotonic time of a write, object or None)]
        self._journal: dict[tuple[Any, str | None, str], list[tuple[float, Any]]] = {}

    def lag_of(self, resource: Any) -> float:
        return next((s for res, s in self.lags if res == resource), 0.0)

    def view(self, resource: str) -> Live:
        """The objects of a resource as an informer with this resource's lag sees them."""
        res = kmock.resource(resource)
        lag = self.lag_of(res)
        if not lag:
            return live(self, resource)
        cutoff = time.monotonic() - lag
        out: Live = []
        for (r, ns, name), entries in list(self._journal.items()):
            if r != res:
                continue
            seen = [i for i, (at, _) in enumerate(entries) if at <= cutoff]
            if not seen:
                continue
            del entries[:seen[-1]]  # older versions can never be seen again
            if entries[0][1] is not None:
                out.append((ns, name, entries[0][1]))
        return out

    async def _handle(self, request: Any) -> Any:
        self.handled += 1
        # kmock keeps every request and re-filters the whole history to route each
        # new one (quadratic); tests never assert on old requests, so keep a few.
        if len(self._requests) > 2:
            del self._requests[:-2]
        for payload in self._payloads:
            if len(payload._requests) > 2:
                del payload._requests[:-2]
        self._stamp(request)
        key = self._key(request)
        if await self._graceful_delete(request, key):
            assert key is not None
            self._record(key)
            # The pod stays, terminating; the answer is the pod, as on a real server.
            return aiohttp.web.json_response(self.objects[key].raw)
        try:
            return await super()._handle(request)
        finally:
            if key is not None and self.lag_of(key[0]):
                self._record(key)

    def _key(self, request: Any) -> tuple[Any, str | None, str] | None:
        if request.resource is None:
            return None
        meta = (request.data or {}).get("metadata") or {} if isinstance(
            request.data, dict) else {}
        name = request.name or meta.get("name")
        if not name:
            return None
        return (request.resource, request.namespace or meta.get("namespace"), name)

    def _record(self, key: tuple[Any, str | None, str]) -> None:
        present = key in self.objects and not self.objects[key].deleted
        raw = self.objects[key].raw if present else None
        entries = self._journal.setdefault(key, [])
        now = time.monotonic()
        if not entries or entries[-1][1] != raw:
            entries.append((now, raw))
        # Keep one version older than the lag (what a reader sees now) and the newer ones.
        cutoff = now - self.lag_of(key[0])
        while len(entries) > 1 and entries[1][0] <= cutoff:
            del entries[0]

    def _stamp(self, request: Any) -> None:
        data = request.data
        if request.resource is not None and isinstance(data, dict):
            meta = data.setdefault("metadata", {})
            if request.action == enums.action.CREATE:
                if not meta.get("name") and meta.get("generateName"):
                    meta["name"] = meta["generateName"] + secrets.token_hex(4)
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", now_iso())
                meta.setdefault("generation", 1)
            elif request.action == enums.action.UPDATE and request.name is not None:
                self._check_version(request, data)
                key = (request.resource, request.namespace, request.name)
                if "spec" in data and request.subresource is None and key in self.objects:
                    obj = self.objects[key]
                    if not obj.deleted:
                        old = json.loads(json.dumps(obj.raw.get("spec") or {}))
                        if merge(old, data["spec"]) != old:
                            gen = int((obj.raw.get("metadata") or {}).get("generation") or 1)
                            meta["generation"] = gen + 1
            meta["resourceVersion"] = str(next(_counter))
        elif (request.resource is not None and isinstance(data, list)
              and request.action == enums.action.UPDATE and request.name is not None):
            self._check_version(request, data)
            data.append({"op": "replace", "path": "/metadata/resourceVersion",
                         "value": str(next(_counter))})

    async def _graceful_delete(self, request: Any,
                               key: tuple[Any, str | None, str] | None) -> bool:
        """Mark a pod terminating instead of removing it; True when that is the answer."""
        if (request.action != enums.action.DELETE or key is None
                or key[0] != kmock.resource(PODS)):
            return False
        if key not in self.objects or self.objects[key].deleted:
            return False  # kmock answers 404
        pod = self.objects[key].raw
        meta = pod.get("metadata") or {}
        asked = (request.params or {}).get("gracePeriodSeconds")
        grace = int(asked) if asked is not None else int(
            (pod.get("spec") or {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS))
        if grace <= 0:
            return False  # removed now (kmock removes a pod with a deletionTimestamp too)
        if meta.get("deletionTimestamp"):
            return True  # already terminating: a second DELETE changes nothing here
        async with self._lock:
            self.objects[key].patch({"metadata": {
                "deletionTimestamp": now_iso(), "deletionGracePeriodSeconds": grace,
                "resourceVersion": str(next(_counter))}})
            await self._buses[key[0]].put({"type": "MODIFIED", "object": self.objects[key].raw})
        return True

    async def _serve_watch(self, request: Any) -> AsyncIterator[Any]:
        stream = super()._serve_watch(request)
        lag = self.lag_of(request.resource)
        if not lag:
            async for item in stream:
                yield item
            return
        arrived: asyncio.Queue[tuple[float, Any]] = asyncio.Queue()

        async def pump() -> None:
            async for item in stream:
                arrived.put_nowait((time.monotonic(), item))

        task = asyncio.create_task(pump())
        try:
            while True:
                at, item = await arrived.get()
                if not isinstance(item, bytes):  # b"" opens the stream: never held back
                    await asyncio.sleep(max(0.0, at + lag - time.monotonic()))
                yield item
        finally:
            task.cancel()

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
