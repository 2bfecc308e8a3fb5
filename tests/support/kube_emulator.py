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
- server-side apply (``application/apply-patch+yaml``), minimal: per object and
  field manager it keeps the fields the last apply set (a list counts as one
  field); an apply sets its fields, removes those it set before and leaves out
  now unless another manager applied them, creates a missing object, and a
  merge patch takes the fields it writes away from every applier;
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

from support import kube_selectors

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


APPLY_PATCH = "application/apply-patch+yaml"
Path = tuple[str, ...]
# Fields that name the object: every apply carries them, none is ever removed.
_IDENTITY: set[Path] = {("apiVersion",), ("kind",), ("metadata", "name"),
                        ("metadata", "namespace")}


def field_paths(doc: Any, prefix: Path = ()) -> set[Path]:
    """The fields a body sets, as key paths down to scalars, lists and empty maps."""
    if isinstance(doc, dict) and doc:
        return set().union(*(field_paths(v, (*prefix, k)) for k, v in doc.items()))
    return {prefix}


def removal_patch(paths: set[Path]) -> dict[str, Any]:
    """The merge patch that removes each of ``paths``."""
    out: dict[str, Any] = {}
    for path in paths:
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                break
        else:
            node[path[-1]] = None
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
        # (resource, namespace, name) -> field manager -> the fields its last apply set
        self._applied: dict[tuple[Any, str | None, str], dict[str, set[Path]]] = {}
        # (resource, labelSelector) of every list and watch served (sharded operators)
        self.asked: kube_selectors.Asked = set()

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
        key = self._key(request)
        if key is not None and request.method == "PATCH" and self._is_apply(request):
            return await self._apply(request, key)
        self._track_update(request, key)
        self._stamp(request)
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

    @staticmethod
    def _is_apply(request: Any) -> bool:
        headers = {k.lower(): v for k, v in (request.headers or {}).items()}
        return str(headers.get("content-type", "")).startswith(APPLY_PATCH)

    def _track_update(self, request: Any, key: tuple[Any, str | None, str] | None) -> None:
        """A create starts the object's field ownership afresh; a merge patch takes the
        fields it writes away from the appliers (an update owns what it sets)."""
        if key is None or key not in self._applied:
            return
        if request.action == enums.action.CREATE:
            del self._applied[key]
        elif (request.method == "PATCH" and request.subresource is None
              and isinstance(request.data, dict)):
            written = field_paths(request.data)
            for owned in self._applied[key].values():
                owned -= written

    async def _apply(self, request: Any, key: tuple[Any, str | None, str]) -> Any:
        manager = (request.params or {}).get("fieldManager")
        body = request.data
        if not manager or not isinstance(body, dict):
            return aiohttp.web.json_response(
                {"kind": "Status", "status": "Failure", "reason": "BadRequest", "code": 400,
                 "message": "apply needs a fieldManager and an object body"}, status=400)
        fields = field_paths(body) - _IDENTITY
        meta = body.setdefault("metadata", {})
        meta["resourceVersion"] = str(next(_counter))
        async with self._lock:
            exists = key in self.objects and not self.objects[key].deleted
            if not exists:
                meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_iso(), generation=1)
                self._applied[key] = {}
                if key in self.objects:
                    self.objects[key].create(body)
                else:
                    self.objects[key] = body
            else:
                obj = self.objects[key]
                owners = self._applied.setdefault(key, {})
                others = set().union(*(f for m, f in owners.items() if m != manager))
                gone = owners.get(manager, set()) - fields - others
                old_spec = json.loads(json.dumps(obj.raw.get("spec") or {}))
                obj.patch(merge(removal_patch(gone), body))
                if (obj.raw.get("spec") or {}) != old_spec:
                    generation = int((obj.raw.get("metadata") or {}).get("generation") or 1)
                    obj.patch({"metadata": {"generation": generation + 1}})
            self._applied[key][manager] = fields
            raw = self.objects[key].raw
            await self._buses[key[0]].put({"type": "MODIFIED" if exists else "ADDED",
                                           "object": raw})
        if self.lag_of(key[0]):
            self._record(key)
        return aiohttp.web.json_response(raw, status=200 if exists else 201)

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

    async def _serve_list(self, request: Any) -> Any:
        return kube_selectors.listed(await super()._serve_list(request), request,
                                     self.asked)

    async def _serve_watch(self, request: Any) -> AsyncIterator[Any]:
        stream = kube_selectors.watched(super()._serve_watch(request), request, self.asked)
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
