"""Properties of GPU capacity over random clusters: never promise a GPU twice."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from queueworker.engine.capacity import GPUWorker, capacities, node_free

from support.engine_specs import spec

GPU = "nvidia.com/gpu"


@st.composite
def clusters(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                       list[GPUWorker]]:
    nodes = [
        {"metadata": {"name": f"n{i}"}, "spec": {},
         "status": {"allocatable": {GPU: str(draw(st.integers(0, 8)))},
                    "conditions": [{"type": "Ready", "status": "True"}]}}
        for i in range(draw(st.integers(1, 4)))
    ]
    workers = [
        GPUWorker(f"w{i}", spec({"maxReplicas": 20}, gpu={"priority": draw(st.integers(-2, 2))},
                                limits={GPU: draw(st.integers(1, 3))}),
                  {"qw": f"w{i}"}, backlog=draw(st.integers(0, 30)))
        for i in range(draw(st.integers(1, 3)))
    ]
    pods = []
    for j in range(draw(st.integers(0, 8))):
        owner = draw(st.sampled_from([*(w.key for w in workers), "other"]))
        node = draw(st.sampled_from([None, *(n["metadata"]["name"] for n in nodes)]))
        # A QueueWorker's pods come from its template; other pods ask for anything.
        template = {w.key: w.spec.template.to_wire()["spec"] for w in workers}
        containers = template[owner]["containers"] if owner in template else [
            {"name": "c", "resources": {"limits": {GPU: str(draw(st.integers(1, 3)))}}}]
        p: dict[str, Any] = {
            "metadata": {"name": f"p{j}", "labels": {"qw": owner}},
            "spec": {"containers": containers},
            "status": {"phase": "Running" if node else "Pending"},
        }
        if node:
            p["spec"]["nodeName"] = node
        pods.append(p)
    return nodes, pods, workers


@settings(max_examples=150, deadline=None)
@given(clusters())
def test_grants_never_exceed_free_gpus(cluster: tuple[Any, Any, Any]) -> None:
    nodes, pods, workers = cluster
    caps = capacities(nodes, pods, workers)
    free_total = sum(node_free(nodes, pods, GPU).values())
    granted = 0
    for w in workers:
        c = caps[w.key]
        mine = [p for p in pods if p["metadata"]["labels"]["qw"] == w.key]
        bound = sum(1 for p in mine if p["spec"].get("nodeName"))
        assert bound <= c.max_replicas <= bound + c.pending + max(0, c.wanted - len(mine))
        assert c.shortfall == max(0, c.wanted - c.max_replicas)
        granted += (c.max_replicas - bound) * c.per_replica
    # New replicas and placed pending pods of QueueWorkers fit in what is free.
    assert granted <= free_total
