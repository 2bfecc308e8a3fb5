"""Free GPUs cap the replicas, from Node and Pod objects the operator watches."""

from __future__ import annotations

import asyncio

from queueworker.operator import api

from support.operator_cluster import Cluster, wait_for
from support.operator_specs import fast_config, push_jobs, spec

POLL = 0.5
GPU_TEMPLATE = {"spec": {"containers": [{
    "name": "worker", "image": "example.org/gpu-worker:1",
    "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}


async def test_three_free_gpus_cap_replicas_at_three(redis_url: str) -> None:
    async with Cluster(config=fast_config()) as c:
        await c.add_node("gpu-a", {"nvidia.com/gpu": "2", "cpu": "8"})
        await c.add_node("gpu-b", {"nvidia.com/gpu": "2", "cpu": "8"})
        await c.start_operator()
        # Another workload already holds one GPU on gpu-b.
        await c.client.create("/api/v1/namespaces/other/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "trainer", "namespace": "other"},
            "spec": {"nodeName": "gpu-b", "containers": [{
                "name": "t", "image": "t", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
            "status": {"phase": "Running"}}, operation="test")
        push_jobs(redis_url, "jobs", 500)
        await c.create_qw("gpu", spec(redis_url, poll=POLL, maxReplicas=10,
                                      targetBacklogPerReplica=10, template=GPU_TEMPLATE))
        await wait_for(lambda: c.replicas("gpu") == 3, 10, "3 replicas (3 free GPUs)")
        cond = await wait_for(
            lambda: (c.condition("gpu", "GPULimited") or {}).get("status") == "True"
            and c.condition("gpu", "GPULimited"), 5, "GPULimited=True")
        assert cond["reason"] == "InsufficientGPUs"
        st = c.qw("gpu")["status"]
        api.QueueWorkerStatus.model_validate(st)  # the CRD's status schema accepts it
        assert st["gpuLimited"] is True
        assert st["gpu"]["resourceName"] == "nvidia.com/gpu"
        # Never above 3 while the backlog stays, across many polls.
        for _ in range(8):
            await asyncio.sleep(POLL / 2)
            assert (c.replicas("gpu") or 0) <= 3
        assert len([p for p in c.pods("gpu") if p["spec"].get("nodeName")]) == 3
        # A new node with 2 GPUs lifts the cap to 5.
        await c.add_node("gpu-c", {"nvidia.com/gpu": "2"})
        await wait_for(lambda: c.replicas("gpu") == 5, 10, "5 replicas with a new node")
        await wait_for(lambda: len([p for p in c.pods("gpu") if p["spec"].get("nodeName")]) == 5,
                       10, "5 pods on GPUs")
        d = c.deployment("gpu")
        assert d is not None
        assert d["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
        # Every GPU is now taken: a redeploy must not surge a pod that no GPU can hold.
        await c.patch_qw("gpu", {"spec": {"template": {"spec": {"containers": [{
            **GPU_TEMPLATE["spec"]["containers"][0], "image": "example.org/gpu-worker:2"}]}}}})
        await wait_for(lambda: (c.deployment("gpu") or {})["spec"]["strategy"]["rollingUpdate"]
                       == {"maxSurge": 0, "maxUnavailable": 1}, 10, "no surge on full GPUs")
