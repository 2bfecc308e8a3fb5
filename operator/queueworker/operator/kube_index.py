"""What the operator keeps of watched Pods, Nodes and Deployments (kopf indexes).

kopf lists and watches these once and calls the functions here on every
change; the poller then reads the in-memory index instead of LISTing per poll.
Each entry keeps only the few fields the operator needs, so 1,000
QueueWorkers with their pods and a large node pool stay small in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from queueworker.operator import deployment as dep

# Key of a QueueWorker's own objects in the pods and deployments indexes.
QWKey = tuple[str, str]  # (namespace, queueworker name)
# pods index: ("*node", nodeName) -> extended resources a pod there requests; a
# namespace name never holds "*", so this never collides with a QWKey.
NODE_USAGE = "*node"


def _extended(resources: Mapping[str, Any] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, value in (resources or {}).items():
        if "/" in key:  # extended resources (vendor-domain/name) only
            try:
                out[key] = int(str(value))
            except ValueError:
                continue
    return out


def pod_requests(spec: Mapping[str, Any]) -> dict[str, int]:
    """Extended resources a pod holds: containers summed, the largest init container wins."""
    total: dict[str, int] = {}
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        for k, v in {**_extended(res.get("requests")), **_extended(res.get("limits"))}.items():
            total[k] = total.get(k, 0) + v
    for c in spec.get("initContainers") or []:
        res = c.get("resources") or {}
        for k, v in {**_extended(res.get("requests")), **_extended(res.get("limits"))}.items():
            total[k] = max(total.get(k, 0), v)
    return total


def pod_entry(name: str, meta: Mapping[str, Any], spec: Mapping[str, Any],
              status: Mapping[str, Any]) -> dict[str, Any]:
    conditions = status.get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    annotations = meta.get("annotations") or {}
    return {
        "name": name,
        "ready": ready,
        "terminating": bool(meta.get("deletionTimestamp")),
        "node": spec.get("nodeName"),
        "phase": status.get("phase"),
        "cost": annotations.get(dep.DELETION_COST_ANNOTATION),
    }


def index_pod(namespace: str, name: str, meta: Mapping[str, Any], spec: Mapping[str, Any],
              status: Mapping[str, Any]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    labels = meta.get("labels") or {}
    instance = labels.get(dep.LABEL_INSTANCE)
    if labels.get(dep.LABEL_NAME) == dep.APP_NAME and instance:
        out[(namespace, instance)] = pod_entry(name, meta, spec, status)
    node = spec.get("nodeName")
    if node and status.get("phase") not in ("Succeeded", "Failed"):
        requests = pod_requests(spec)
        if requests:
            owner = (namespace, instance) if instance else None
            out[(NODE_USAGE, node)] = {"requests": requests, "owner": owner}
    return out


def node_entry(name: str, spec: Mapping[str, Any], status: Mapping[str, Any],
               labels: Mapping[str, Any]) -> dict[str, Any]:
    conditions = status.get("conditions") or []
    ready_conds = [c for c in conditions if c.get("type") == "Ready"]
    # A node without a Ready condition (the emulator's) counts as ready.
    ready = not ready_conds or ready_conds[0].get("status") == "True"
    return {
        "name": name,
        "allocatable": _extended(status.get("allocatable")),
        "schedulable": not spec.get("unschedulable", False),
        "ready": ready,
        "labels": dict(labels),
    }


def deployment_entry(meta: Mapping[str, Any], spec: Mapping[str, Any],
                     status: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {
            "name": meta.get("name"),
            "annotations": dict(meta.get("annotations") or {}),
            "ownerReferences": list(meta.get("ownerReferences") or []),
        },
        "spec": {
            "replicas": spec.get("replicas"),
            "template": spec.get("template"),
            "strategy": spec.get("strategy"),
            "selector": spec.get("selector"),
        },
        "status": {
            "replicas": status.get("replicas", 0),
            "readyReplicas": status.get("readyReplicas", 0),
            "updatedReplicas": status.get("updatedReplicas", 0),
        },
    }


def node_usage(pods_index: Mapping[Any, Any], resource: str, exclude: QWKey | None = None
               ) -> dict[str, int]:
    """nodeName -> units of `resource` requested by pods there (but `exclude`'s own)."""
    out: dict[str, int] = {}
    for key, store in pods_index.items():
        if isinstance(key, tuple) and len(key) == 2 and key[0] == NODE_USAGE:
            for entry in store:
                if exclude is not None and entry.get("owner") == exclude:
                    continue
                units = int(entry["requests"].get(resource, 0))
                if units:
                    out[str(key[1])] = out.get(str(key[1]), 0) + units
    return out
