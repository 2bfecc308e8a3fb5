"""The Deployment controller and the garbage collector of the test cluster.

``DeploymentController`` turns a Deployment into Pods (no ReplicaSet objects in
between) as the Deployment and ReplicaSet controllers do together:

- it reads Deployments and Pods through ``Emulator.view`` (its informers, with
  their lag), and like the ReplicaSet controller it waits until its own
  creates and deletes show in that view ("expectations") before acting again
  on a Deployment, so a lagging view never makes it create or delete twice;
- terminating pods are not counted (they are on their way out) but still hold
  their node's resources until the kubelet removes them (kube_kubelet.py);
- a template change rolls the pods with the Deployment's strategy: Recreate,
  or RollingUpdate with ``maxSurge`` (rounded up) and ``maxUnavailable``
  (rounded down), both 25% by default and 0/0 read as 0/1: new pods only while
  the non-terminating pods stay within replicas + maxSurge, old pods deleted
  only while the ready pods stay at replicas - maxUnavailable or more (not ready
  old pods can always go);
- a scale-down outside a rollout deletes the excess at once, picking victims the
  way the ReplicaSet does (unscheduled, pending, not ready, lower
  pod-deletion-cost, newer first), from its lagging view of the pods;
- it writes the Deployment's status.

``GarbageCollector`` deletes objects whose controller owner is gone.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
import time
from typing import Any

from queueworker.operator import api
from queueworker.operator.cluster import client as kube

from support.kube_emulator import DEPLOYMENTS, PODS, QW, Emulator, live, pod_ready
from support.kube_kubelet import Kubelet

EXPECTATIONS_TIMEOUT = 30.0  # a lost event must not stop a Deployment for good


def _label(pod: dict[str, Any], key: str) -> str | None:
    value = ((pod.get("metadata") or {}).get("labels") or {}).get(key)
    return None if value is None else str(value)


def _terminating(pod: dict[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def resolve(value: Any, replicas: int, *, round_up: bool) -> int:
    """An int-or-percent of a rolling update against the replica count."""
    text = str(value)
    if text.endswith("%"):
        share = replicas * int(text[:-1]) / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(text)


class DeploymentController:
    """Deployment -> Pods; see the module doc. ``kubelet`` moves the pods on."""

    def __init__(self, k: Emulator, client: kube.KubeClient, kubelet: Kubelet) -> None:
        self.k = k
        self.client = client
        self.kubelet = kubelet
        self.deleted: list[dict[str, Any]] = []  # pods removed on scale-down, in order
        # Deployment uid -> (pod names created and not yet seen, deleted and not yet
        # seen terminating or gone, since when)
        self.expect: dict[str, tuple[set[str], set[str], float]] = {}

    def template_hash(self, template: Any) -> str:
        return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]

    def pods_of(self, namespace: str | None, uid: str,
                pods: list[tuple[str | None, str, dict[str, Any]]] | None = None
                ) -> list[dict[str, Any]]:
        out = []
        for ns, _, pod in self.k.view(PODS) if pods is None else pods:
            refs = (pod.get("metadata") or {}).get("ownerReferences") or []
            if ns == namespace and any(r.get("uid") == uid for r in refs):
                out.append(pod)
        return out

    async def step(self) -> None:
        for ns, name, d in self.k.view(DEPLOYMENTS):
            await self.reconcile(ns, name, d)
        await self.kubelet.step(self.client)

    def satisfied(self, uid: str, pods: list[dict[str, Any]]) -> bool:
        adds, dels, since = self.expect.get(uid, (set(), set(), 0.0))
        seen = {p["metadata"]["name"]: p for p in pods}
        adds -= set(seen)
        dels -= {n for n in dels if n not in seen or _terminating(seen[n])}
        if (adds or dels) and time.monotonic() - since < EXPECTATIONS_TIMEOUT:
            return False
        self.expect.pop(uid, None)
        return True

    def _expect(self, uid: str, *, add: str | None = None, delete: str | None = None) -> None:
        adds, dels, _ = self.expect.get(uid, (set(), set(), 0.0))
        adds |= {add} if add else set()
        dels |= {delete} if delete else set()
        self.expect[uid] = (adds, dels, time.monotonic())

    async def reconcile(self, ns: str | None, name: str, d: dict[str, Any]) -> None:
        meta, spec = d.get("metadata") or {}, d.get("spec") or {}
        uid = meta.get("uid")
        if not uid:
            return
        everything = self.pods_of(ns, uid)
        if not self.satisfied(uid, everything):
            return
        replicas = int(spec.get("replicas", 1) or 0)
        template = spec.get("template") or {}
        thash = self.template_hash(template)
        pods = [p for p in everything if not _terminating(p)]
        new = [p for p in pods if _label(p, "pod-template-hash") == thash]
        old = [p for p in pods if _label(p, "pod-template-hash") != thash]
        strategy = spec.get("strategy") or {}
        args = (ns or "", name, uid, template, thash)
        recreate = strategy.get("type") == "Recreate"
        if not old and not (recreate and len(pods) < len(everything)):
            await self.scale(args, new, replicas)  # (Recreate: once the old pods are gone)
        elif not old:
            pass
        elif recreate:
            for pod in old:
                await self.delete_pod(ns or "", pod, uid, record=False)
        else:
            await self.roll(args, new, old, replicas, strategy.get("rollingUpdate") or {})
        await self.write_status(ns or "", name, d, self.pods_of(ns, uid), thash)

    async def scale(self, args: tuple[str, str, str, dict[str, Any], str],
                    new: list[dict[str, Any]], replicas: int) -> None:
        ns, _, uid, _, _ = args
        for _ in range(replicas - len(new)):
            await self.create_pod(*args)
        for victim in self.rank(new)[: max(0, len(new) - replicas)]:
            await self.delete_pod(ns, victim, uid, record=True)

    async def roll(self, args: tuple[str, str, str, dict[str, Any], str],
                   new: list[dict[str, Any]], old: list[dict[str, Any]], replicas: int,
                   rolling: dict[str, Any]) -> None:
        ns, _, uid, _, _ = args
        surge = resolve(rolling.get("maxSurge", "25%"), replicas, round_up=True)
        unavailable = resolve(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1  # as the Deployment controller reads 0/0
        active = len(new) + len(old)
        excess = active - (replicas + surge)
        if excess > 0:  # replicas lowered mid-rollout: old pods go first
            for victim in (self.rank(old) + self.rank(new))[:excess]:
                await self.delete_pod(ns, victim, uid, record=True)
            return
        for _ in range(max(0, min(replicas - len(new), replicas + surge - active))):
            await self.create_pod(*args)
        ready = sum(1 for p in new + old if pod_ready(p))
        not_ready_old = sum(1 for p in old if not pod_ready(p))
        may_go = not_ready_old + max(0, ready - (replicas - unavailable))
        for victim in self.rank(old)[: min(len(old), may_go)]:
            await self.delete_pod(ns, victim, uid, record=False)

    async def write_status(self, ns: str, name: str, d: dict[str, Any],
                           pods: list[dict[str, Any]], thash: str) -> None:
        active = [p for p in pods if not _terminating(p)]
        status = {
            "replicas": len(active),
            "readyReplicas": sum(1 for p in active if pod_ready(p)),
            "availableReplicas": sum(1 for p in active if pod_ready(p)),
            "updatedReplicas": sum(1 for p in active
                                   if _label(p, "pod-template-hash") == thash),
            "observedGeneration": (d.get("metadata") or {}).get("generation"),
        }
        if {k: (d.get("status") or {}).get(k) for k in status} != status:
            await self.client.patch(kube.deployments_path(ns, name) + "/status",
                                    {"status": status}, operation="deployment_status")

    def rank(self, pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """ReplicaSet victim order (controller_utils ActivePodsWithRanks, simplified)."""

        def key(p: dict[str, Any]) -> tuple[Any, ...]:
            spec, status = p.get("spec") or {}, p.get("status") or {}
            annotations = p["metadata"].get("annotations") or {}
            cost = int(annotations.get("controller.kubernetes.io/pod-deletion-cost", "0"))
            phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(str(status.get("phase")), 2)
            created = p["metadata"].get("creationTimestamp") or ""
            # Newer first: negate the order by sorting on the reversed timestamp.
            return (bool(spec.get("nodeName")), phase_rank, pod_ready(p), cost,
                    [-ord(c) for c in created], p["metadata"]["name"])

        return sorted(pods, key=key)

    async def create_pod(self, ns: str, deployment: str, uid: str, template: dict[str, Any],
                         thash: str) -> None:
        tmeta = template.get("metadata") or {}
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
            "spec": json.loads(json.dumps(template.get("spec") or {})),
            "status": {"phase": "Pending"},
        }
        self._expect(uid, add=pod["metadata"]["name"])
        await self.client.create(f"/api/v1/namespaces/{ns}/pods", pod, operation="create_pod")

    async def delete_pod(self, ns: str, pod: dict[str, Any], uid: str, *, record: bool) -> None:
        if record:
            self.deleted.append(pod)
        self._expect(uid, delete=pod["metadata"]["name"])
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
            for ns, name, obj in live(self.k, res):
                uids[(ns, kind, name)] = (obj.get("metadata") or {}).get("uid", "")
        for res, path in ((DEPLOYMENTS, "/apis/apps/v1/namespaces/{ns}/deployments/{name}"),
                          (PODS, "/api/v1/namespaces/{ns}/pods/{name}")):
            for ns, name, obj in live(self.k, res):
                if (obj.get("metadata") or {}).get("deletionTimestamp"):
                    continue  # on its way out already
                for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
                    if ref.get("kind") not in self.KINDS:
                        continue
                    if uids.get((ns, ref["kind"], ref["name"])) != ref.get("uid"):
                        await self.client.delete(path.format(ns=ns, name=name),
                                                 operation="gc")
                        break
