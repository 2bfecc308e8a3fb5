"""Kubernetes scheduling rules the GPU accounting needs, on plain API dicts.

Only what decides whether a worker pod can land on a node and what it takes
there: Ready and schedulable nodes, nodeSelector, taints against
tolerations, required node affinity, and a pod's effective request of an
extended resource (kopf-and-conventions.md section 4).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

GPU_RESOURCE = re.compile(r"^(nvidia\.com/(gpu|gpu\.shared|mig-[0-9a-z.]+)|amd\.com/gpu)$")

_SUFFIX = {"k": 10**3, "M": 10**6, "G": 10**9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def quantity(value: Any) -> int:
    """A resource quantity as a whole number (extended resources are integers)."""
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    try:
        for suffix, mult in sorted(_SUFFIX.items(), key=lambda kv: -len(kv[0])):
            if text.endswith(suffix):
                return int(float(text[: -len(suffix)]) * mult)
        return int(float(text))
    except ValueError:
        raise ValueError(f"not a resource quantity: {value!r}") from None


def _get(obj: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(part)
    return obj


def container_request(container: Mapping[str, Any], resource: str) -> int:
    res = container.get("resources") or {}
    # Extended resources: requests default to limits (and must equal them).
    for part in ("requests", "limits"):
        v = _get(res, part, resource)
        if v is not None:
            return quantity(v)
    return 0


def pod_request(pod_spec: Mapping[str, Any], resource: str) -> int:
    """Effective request: max(app containers + sidecars, largest init step) + overhead."""
    sidecars = 0
    init_peak = 0
    for c in pod_spec.get("initContainers") or []:
        r = container_request(c, resource)
        if c.get("restartPolicy") == "Always":
            sidecars += r
        else:
            init_peak = max(init_peak, r + sidecars)
    app = sum(container_request(c, resource) for c in pod_spec.get("containers") or [])
    overhead = _get(pod_spec, "overhead", resource)
    return max(app + sidecars, init_peak) + (quantity(overhead) if overhead is not None else 0)


def find_resource(pod_spec: Mapping[str, Any]) -> str | None:
    """The GPU-like extended resource a pod template asks for, if any."""
    for c in [*(pod_spec.get("containers") or []), *(pod_spec.get("initContainers") or [])]:
        for part in ("limits", "requests"):
            for name in _get(c, "resources", part) or {}:
                if GPU_RESOURCE.match(name):
                    return str(name)
    return None


def node_ready(node: Mapping[str, Any]) -> bool:
    if _get(node, "spec", "unschedulable"):
        return False
    for cond in _get(node, "status", "conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def _tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        op = t.get("operator") or "Equal"
        if op == "Exists":
            if not t.get("key") or t.get("key") == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and (t.get("value") or "") == (
            taint.get("value") or ""
        ):
            return True
    return False


def _expr_matches(expr: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op, values = expr.get("key"), expr.get("operator"), list(expr.get("values") or [])
    has = key in labels
    val = labels.get(str(key))
    if op == "In":
        return has and val in values
    if op == "NotIn":
        return not has or val not in values
    if op == "Exists":
        return has
    if op == "DoesNotExist":
        return not has
    if op in ("Gt", "Lt") and has and values:
        try:
            a, b = int(str(val)), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def _affinity_matches(pod_spec: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    terms = _get(
        pod_spec, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution",
        "nodeSelectorTerms",
    )
    if not terms:
        return True
    labels = _get(node, "metadata", "labels") or {}
    fields = {"metadata.name": _get(node, "metadata", "name")}
    for term in terms:  # terms are ORed, expressions inside one term ANDed
        exprs = term.get("matchExpressions") or []
        field_exprs = term.get("matchFields") or []
        if not exprs and not field_exprs:
            continue
        if all(_expr_matches(e, labels) for e in exprs) and all(
            _expr_matches(e, fields) for e in field_exprs
        ):
            return True
    return False


def can_land(pod_spec: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """Whether the scheduler may put a pod with this spec on this node (ignoring fit)."""
    if not node_ready(node):
        return False
    labels = _get(node, "metadata", "labels") or {}
    for k, v in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    tolerations = pod_spec.get("tolerations") or []
    for taint in _get(node, "spec", "taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(
            tolerations, taint
        ):
            return False
    return _affinity_matches(pod_spec, node)
