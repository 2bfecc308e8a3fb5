"""What the operator keeps of watched Pods, Nodes and Deployments (kopf indexes).

kopf lists and watches these once and calls the functions here on every
change; the poller then reads the in-memory index instead of LISTing per poll.
Each entry keeps only the few fields the operator needs, so 1,000
QueueWorkers with their pods and a large node pool stay small in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from queueworker.engine.resources import extended, pod_requests
from queueworker.operator.cluster import deployment as dep

# Key of a QueueWorker's own objects in the pods and deployments indexes.
QWKey = tuple[str, str]  # (namespace, queueworker name)
# pods index: every unfinished pod that requests an extended resource (GPUs),
# trimmed; a namespace name never holds "*", so this never collides with a QWKey.
GPU_PODS = ("*gpu", "")


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
        "unschedulable": unschedulable(conditions),
        "ip": status.get("podIP"),  # CLIENT LIST maps connections to pods by it
    }


def unschedulable(conditions: list[dict[str, Any]]) -> str | None:
    """The scheduler's message when it found no node for the pod ("" if it gave
    none), else None; it names what was short, e.g. "Insufficient nvidia.com/gpu"."""
    for c in conditions:
        if (c.get("type") == "PodScheduled" and c.get("status") == "False"
                and c.get("reason") == "Unschedulable"):
            return str(c.get("message") or "")
    return None


def index_pod(namespace: str, name: str, meta: Mapping[str, Any], spec: Mapping[str, Any],
              status: Mapping[str, Any]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    labels = meta.get("labels") or {}
    instance = labels.get(dep.LABEL_INSTANCE)
    if labels.get(dep.LABEL_NAME) == dep.APP_NAME and instance:
        out[(namespace, instance)] = pod_entry(name, meta, spec, status)
    if status.get("phase") not in ("Succeeded", "Failed") and pod_requests(spec):
        out[GPU_PODS] = trim_pod(namespace, name, meta, spec, status)
    return out


def trim_pod(namespace: str, name: str, meta: Mapping[str, Any], spec: Mapping[str, Any],
             status: Mapping[str, Any]) -> dict[str, Any]:
    """What GPU accounting (queueworker.engine.capacity) reads of a pod, nothing more."""
    def resources_only(containers: Any) -> list[dict[str, Any]]:
        return [{k: c[k] for k in ("name", "resources", "restartPolicy") if k in c}
                for c in containers or []]

    return {
        "metadata": {k: meta[k] for k in ("labels", "creationTimestamp", "deletionTimestamp")
                     if meta.get(k) is not None} | {"name": name, "namespace": namespace},
        "spec": {
            "containers": resources_only(spec.get("containers")),
            "initContainers": resources_only(spec.get("initContainers")),
            **{k: spec[k] for k in ("nodeName", "overhead", "nodeSelector", "affinity",
                                    "tolerations") if spec.get(k) is not None},
        },
        "status": {"phase": status.get("phase")},
    }


def trim_node(name: str, meta: Mapping[str, Any], spec: Mapping[str, Any],
              status: Mapping[str, Any]) -> dict[str, Any]:
    """What GPU accounting reads of a node: labels, taints, allocatable, Ready."""
    return {
        "metadata": {"name": name, "labels": dict(meta.get("labels") or {})},
        "spec": {k: spec[k] for k in ("unschedulable", "taints") if spec.get(k) is not None},
        "status": {
            "allocatable": extended(status.get("allocatable")),
            "conditions": [c for c in status.get("conditions") or []
                           if c.get("type") == "Ready"],
        },
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
            # The ReplicaSet could not create pods (Pod Security Admission, a quota...):
            # the Deployment controller copies that condition here; report.py surfaces it.
            "conditions": [c for c in status.get("conditions") or []
                           if c.get("type") == "ReplicaFailure" and c.get("status") == "True"],
        },
    }
