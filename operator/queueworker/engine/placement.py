"""Kubernetes scheduling rules the GPU accounting needs, on plain API dicts.

Only what decides whether a worker pod can land on a node: Ready and
schedulable nodes, nodeSelector, taints against tolerations, required node
affinity. What a pod takes there (quantities, its effective request) is
resources.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def _get(obj: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(part)
    return obj


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
