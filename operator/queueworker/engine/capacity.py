"""Free GPU capacity per QueueWorker, from plain Node and Pod dicts. No I/O.

Free units of a resource on a node = allocatable - effective requests of the
pods bound there that are not finished (Succeeded/Failed); a terminating pod
still holds its GPUs until it is gone. A replica must fit on one node, so
capacity is counted per node in whole replicas. Pods of a QueueWorker that
wait to be scheduled already claim capacity: they are placed first, so free
GPUs are never promised twice. When QueueWorkers compete for the same free
GPUs, higher spec.gpu.priority goes first, then the larger backlog.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from queueworker.engine import placement, resources
from queueworker.engine.types import GPUCapacity, Observation
from queueworker.operator.api import QueueWorkerSpec

TERMINAL = ("Succeeded", "Failed")


@dataclass(frozen=True)
class GPUWorker:
    """One QueueWorker as the GPU accounting sees it."""

    key: str  # namespace/name, the key of the result
    spec: QueueWorkerSpec
    selector: Mapping[str, str]  # labels that pick its pods
    backlog: int = 0  # waiting + in-flight jobs (orders equal priorities)
    wanted: int | None = None  # replicas demand asks for; from backlog when None


def _meta(obj: Mapping[str, Any], field: str) -> Any:
    meta = obj.get("metadata") or {}
    return meta.get(field)


def _wanted(w: GPUWorker) -> int:
    s = w.spec.scaling
    want = w.wanted
    if want is None:
        want = math.ceil(w.backlog / s.target_backlog_per_replica)
    return min(max(want, s.min_replicas), s.max_replicas)


def _owns(w: GPUWorker, pod: Mapping[str, Any]) -> bool:
    labels = _meta(pod, "labels") or {}
    return bool(w.selector) and all(labels.get(k) == v for k, v in w.selector.items())


def node_free(
    nodes: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]], resource: str
) -> dict[str, int]:
    """Free units of `resource` per node name (nodes that advertise it)."""
    free: dict[str, int] = {}
    for n in nodes:
        alloc = ((n.get("status") or {}).get("allocatable") or {}).get(resource)
        if alloc is not None:
            free[str(_meta(n, "name"))] = resources.units(alloc)
    for p in pods:
        node = (p.get("spec") or {}).get("nodeName")
        if node in free and (p.get("status") or {}).get("phase") not in TERMINAL:
            free[node] -= resources.pod_request(p.get("spec") or {}, resource)
    return {k: max(0, v) for k, v in free.items()}


def _take(free: dict[str, int], eligible: list[str], per: int, count: int) -> int:
    """Place up to `count` replicas of `per` units each; returns how many fit."""
    got = 0
    # Fullest nodes first (best fit): keeps whole nodes free for bigger pods.
    for n in sorted(eligible, key=lambda n: (free[n], n)):
        while got < count and free[n] >= per:
            free[n] -= per
            got += 1
    return got


def _pending(pod: Mapping[str, Any]) -> bool:
    return (
        not (pod.get("spec") or {}).get("nodeName")
        and (pod.get("status") or {}).get("phase") not in TERMINAL
        and not _meta(pod, "deletionTimestamp")
    )


def _place_pending(
    nodes_by_name: Mapping[str, Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    resource: str,
    free: dict[str, int],
) -> set[int]:
    """Reserve room for every Pending pod that wants `resource`, oldest first.

    They are already in the scheduler's queue and will get the next free GPUs
    before any replica we add now. Returns the ids (id()) of those that fit.
    """
    placed: set[int] = set()
    waiting = [p for p in pods if _pending(p)]
    waiting.sort(key=lambda p: str(_meta(p, "creationTimestamp") or ""))
    for p in waiting:
        spec = p.get("spec") or {}
        need = resources.pod_request(spec, resource)
        if need <= 0:
            continue
        fits = [n for n in free if placement.can_land(spec, nodes_by_name[n])]
        if _take(free, fits, need, 1):
            placed.add(id(p))
    return placed


def capacities(
    nodes: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    workers: Sequence[GPUWorker],
) -> dict[str, GPUCapacity]:
    """GPUCapacity for every worker whose template asks for a GPU-like resource.

    Pending pods (anyone's) are placed first; then each worker, by priority and
    backlog, is granted the replicas it wants out of what is left.
    """
    by_name = {str(_meta(n, "name")): n for n in nodes}
    free_by_res: dict[str, dict[str, int]] = {}
    placed_by_res: dict[str, set[int]] = {}
    out: dict[str, GPUCapacity] = {}
    order = sorted(workers, key=lambda w: (-w.spec.gpu.priority, -w.backlog, w.key))
    for w in order:
        tmpl = w.spec.template.to_wire()["spec"]
        resource = w.spec.gpu.resource_name or resources.find_gpu_resource(tmpl)
        if resource is None:
            continue
        per = resources.pod_request(tmpl, resource)
        if per <= 0:
            continue
        if resource not in free_by_res:
            free_by_res[resource] = node_free(nodes, pods, resource)
            placed_by_res[resource] = _place_pending(
                by_name, pods, resource, free_by_res[resource]
            )
        free, placed_ids = free_by_res[resource], placed_by_res[resource]
        eligible = [n for n in free if placement.can_land(tmpl, by_name[n])]
        mine = [
            p for p in pods
            if _owns(w, p) and (p.get("status") or {}).get("phase") not in TERMINAL
            and not _meta(p, "deletionTimestamp")
        ]
        pending = [p for p in mine if _pending(p)]
        bound = len(mine) - len(pending)
        placed = sum(1 for p in pending if id(p) in placed_ids)
        available = sum(free[n] for n in eligible)
        want = _wanted(w)
        grant = _take(free, eligible, per, max(0, want - len(mine)))
        max_replicas = bound + placed + grant
        out[w.key] = GPUCapacity(
            resource_name=resource,
            per_replica=per,
            max_replicas=max_replicas,
            free=available,
            pending=len(pending),
            wanted=want,
            shortfall=max(0, want - max_replicas),
        )
    return out


def cap(
    spec: QueueWorkerSpec, obs: Observation, wanted: int, desired: int
) -> tuple[int, int, str]:
    """decide's last step, the free-GPU cap: (desired, shortfall, reason part)."""
    gpu = obs.gpu
    if gpu is None or not spec.gpu.cap_to_free_capacity:
        return desired, 0, ""
    # minReplicas is the user's promise and wins over the cap (the extra pods
    # wait Pending and the shortfall is reported).
    allowed = max(gpu.max_replicas, spec.scaling.min_replicas)
    shortfall = max(0, wanted - allowed)
    if desired <= allowed:
        return desired, shortfall, (
            f"; GPUs short by {shortfall} ({gpu.resource_name} free {gpu.free})"
            if shortfall
            else ""
        )
    return allowed, shortfall, (
        f"; capped at {allowed} by free GPUs ({gpu.resource_name} free {gpu.free}, "
        f"{gpu.per_replica} per replica, {gpu.pending} pending), short by {shortfall}"
    )
