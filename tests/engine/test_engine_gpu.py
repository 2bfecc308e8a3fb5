"""GPU capacity from Node and Pod dicts as the Kubernetes API returns them."""

from __future__ import annotations

from typing import Any

import pytest

from queueworker.engine import decide
from queueworker.engine.capacity import GPUWorker, capacities, node_free

from support.engine_specs import obs, spec

GPU = "nvidia.com/gpu"


def node(name: str, gpus: int, *, ready: bool = True, unschedulable: bool = False,
         labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None,
         resource: str = GPU) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"unschedulable": unschedulable, "taints": taints or []},
        "status": {
            "allocatable": {resource: str(gpus), "cpu": "8"},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def pod(name: str, gpus: int, node_name: str | None, *, phase: str = "Running",
        labels: dict[str, str] | None = None, deleting: bool = False,
        extra_spec: dict[str, Any] | None = None, resource: str = GPU) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels or {}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    pod_spec: dict[str, Any] = {
        "containers": [{"name": "c", "resources": {"limits": {resource: str(gpus)}}}],
        **(extra_spec or {}),
    }
    if node_name:
        pod_spec["nodeName"] = node_name
    return {"metadata": meta, "spec": pod_spec,
            "status": {"phase": phase if node_name or phase != "Running" else "Pending"}}


def worker(key: str, gpus: int = 1, *, priority: int = 0, backlog: int = 0,
           wanted: int | None = None, template: dict[str, Any] | None = None,
           resource: str = GPU, max_replicas: int = 50) -> GPUWorker:
    s = spec({"maxReplicas": max_replicas}, gpu={"priority": priority},
             limits={resource: gpus})
    if template:
        raw = s.model_dump(by_alias=True, exclude_none=True, mode="json")
        raw["template"]["spec"].update(template)
        from queueworker.operator.validation import parse_spec
        s = parse_spec(raw)
    return GPUWorker(key=key, spec=s, selector={"qw": key}, backlog=backlog, wanted=wanted)


@pytest.mark.parametrize(
    ("nodes", "pods", "expected"),
    [
        ([node("a", 4), node("b", 4)], [pod("x", 3, "a")], {"a": 1, "b": 4}),
        # Finished pods free their GPUs; terminating ones still hold them.
        ([node("a", 4)], [pod("x", 2, "a", phase="Succeeded"), pod("y", 1, "a", deleting=True)],
         {"a": 3}),
        # Pending pods (no node) are demand, not usage.
        ([node("a", 2)], [pod("x", 1, None)], {"a": 2}),
        # Init container peak and overhead: max(1 + 0, 3) + 1 = 4.
        ([node("a", 8)], [pod("x", 1, "a", extra_spec={
            "initContainers": [{"name": "i", "resources": {"limits": {GPU: "3"}}}],
            "overhead": {GPU: "1"}})], {"a": 4}),
    ],
)
def test_node_free(nodes: list[dict[str, Any]], pods: list[dict[str, Any]],
                   expected: dict[str, int]) -> None:
    assert node_free(nodes, pods, GPU) == expected


@pytest.mark.parametrize(
    ("nodes", "template", "expected_max"),
    [
        ([node("a", 4), node("b", 4)], None, 8),
        ([node("a", 4, ready=False), node("b", 4, unschedulable=True), node("c", 2)], None, 2),
        ([node("a", 4, taints=[{"key": GPU, "effect": "NoSchedule"}]), node("b", 1)], None, 1),
        ([node("a", 4, taints=[{"key": GPU, "effect": "NoSchedule"}]), node("b", 1)],
         {"tolerations": [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]}, 5),
        ([node("a", 4, taints=[{"key": "x", "value": "1", "effect": "PreferNoSchedule"}])],
         None, 4),
        ([node("a", 4, labels={"gpu": "a100"}), node("b", 4, labels={"gpu": "t4"})],
         {"nodeSelector": {"gpu": "a100"}}, 4),
        ([node("a", 4, labels={"gpu": "a100"}), node("b", 2, labels={"gpu": "t4"}),
          node("c", 1)],
         {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
             "nodeSelectorTerms": [{"matchExpressions": [
                 {"key": "gpu", "operator": "In", "values": ["t4", "l4"]}]},
                 {"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}]}}}}, 3),
    ],
)
def test_eligible_nodes(nodes: list[dict[str, Any]], template: dict[str, Any] | None,
                        expected_max: int) -> None:
    caps = capacities(nodes, [], [worker("w", template=template, wanted=50)])
    assert caps["w"].max_replicas == expected_max
    assert caps["w"].shortfall == 50 - expected_max


def test_whole_replicas_per_node() -> None:
    # 3 free on a, 3 free on b: replicas of 2 GPUs fit one per node, not 3.
    caps = capacities([node("a", 3), node("b", 3)], [], [worker("w", gpus=2, wanted=5)])
    c = caps["w"]
    assert (c.per_replica, c.max_replicas, c.free, c.shortfall) == (2, 2, 6, 3)


def test_pending_pods_claim_capacity() -> None:
    mine = {"qw": "w"}
    pods = [pod("w-1", 1, "a", labels=mine), pod("w-2", 1, None, labels=mine),
            pod("w-3", 1, None, labels=mine)]
    caps = capacities([node("a", 3)], pods, [worker("w", wanted=10)])
    # One bound, two pending: the two free GPUs are theirs; nothing more to add.
    assert (caps["w"].max_replicas, caps["w"].pending, caps["w"].shortfall) == (3, 2, 7)
    caps = capacities([node("a", 2)], pods, [worker("w", wanted=10)])
    assert caps["w"].max_replicas == 2  # one pending pod cannot fit


def test_priority_then_backlog_split() -> None:
    nodes = [node("a", 4)]
    low, high = worker("low", priority=0, wanted=3), worker("high", priority=5, wanted=3)
    caps = capacities(nodes, [], [low, high])
    assert (caps["high"].max_replicas, caps["low"].max_replicas) == (3, 1)
    assert (caps["high"].shortfall, caps["low"].shortfall) == (0, 2)
    small, big = worker("small", backlog=5), worker("big", backlog=50)
    caps = capacities(nodes, [], [small, big])
    assert (caps["big"].max_replicas, caps["small"].max_replicas) == (4, 0)


def test_mig_and_non_gpu_workers() -> None:
    mig = "nvidia.com/mig-1g.5gb"
    nodes = [node("a", 7, resource=mig)]
    cpu_only = GPUWorker("cpu", spec({}), {"qw": "cpu"}, backlog=3)
    caps = capacities(nodes, [], [worker("m", resource=mig, wanted=9), cpu_only])
    assert "cpu" not in caps
    assert (caps["m"].resource_name, caps["m"].max_replicas) == (mig, 7)


def test_decide_respects_capacity() -> None:
    s = spec({"maxReplicas": 20}, limits={GPU: 1})
    caps = capacities([node("a", 4)], [], [GPUWorker("w", s, {"qw": "w"}, backlog=12)])
    d = decide(s, obs(0, waiting=12, current=0, gpu=caps["w"]), None)
    assert (d.desired, d.gpu_limited, d.gpu_shortfall) == (4, True, 8)


def test_pending_pods_of_others_are_placed_before_new_replicas() -> None:
    # Another QueueWorker (lower priority) already has 2 pods waiting: the
    # scheduler gives them the 2 free GPUs first, whatever our priority.
    pods = [pod(f"low-{i}", 1, None, labels={"qw": "low"}) for i in (1, 2)]
    caps = capacities([node("a", 3)], pods,
                      [worker("high", priority=9, wanted=3), worker("low", wanted=2)])
    assert (caps["high"].max_replicas, caps["high"].shortfall) == (1, 2)
    assert (caps["low"].max_replicas, caps["low"].pending) == (2, 2)
