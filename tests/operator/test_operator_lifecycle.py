"""Template changes, hand edits, pause and kubectl scale, deletion, operator restart."""

from __future__ import annotations

import asyncio

import pytest

from support.operator_cluster import QW, Cluster, wait_for
from support.operator_specs import fast_config, push_jobs, spec

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

POLL = 0.5


def pod_names(c: Cluster, name: str) -> set[str]:
    return {p["metadata"]["name"] for p in c.pods(name)}


async def test_template_change_rolls_pods_scaling_change_does_not(redis_url: str) -> None:
    async with Cluster(config=fast_config()) as c:
        await c.start_operator()
        await c.create_qw("roll", spec(redis_url, poll=POLL, minReplicas=2, maxReplicas=5))
        await wait_for(lambda: len(c.pods("roll")) == 2, 10, "2 pods")
        before = pod_names(c, "roll")
        hash_before = c.deployment("roll")["metadata"]["annotations"][  # type: ignore[index]
            "queueworker.dev/spec-hash"]

        # A scaling change: more replicas, the same pods stay.
        await c.patch_qw("roll", {"spec": {"scaling": {"minReplicas": 3}}})
        await wait_for(lambda: len(c.pods("roll")) == 3, 10, "3 pods")
        assert before < pod_names(c, "roll")
        d = c.deployment("roll")
        assert d is not None
        assert d["metadata"]["annotations"]["queueworker.dev/spec-hash"] == hash_before

        # A template change: every pod is replaced.
        await c.patch_qw("roll", {"spec": {"template": {"spec": {"containers": [
            {"name": "worker", "image": "example.org/worker:2"}]}}}})
        await wait_for(lambda: (c.deployment("roll") or {}).get("spec", {}).get("template", {})
                       .get("spec", {}).get("containers", [{}])[0].get("image")
                       == "example.org/worker:2", 10, "the new image in the Deployment")
        await wait_for(lambda: len(c.pods("roll")) == 3 and not (pod_names(c, "roll") & before),
                       15, "all pods replaced")
        assert c.replicas("roll") == 3
        # observedGeneration follows the spec's generation.
        qw = await wait_for(lambda: c.qw("roll")["status"].get("observedGeneration")
                            == c.qw("roll")["metadata"]["generation"] and c.qw("roll"), 5,
                            "observedGeneration")
        assert qw["metadata"]["generation"] >= 3


async def test_hand_edit_of_the_deployment_is_corrected(redis_url: str) -> None:
    async with Cluster(config=fast_config()) as c:
        await c.start_operator()
        await c.create_qw("drift", spec(redis_url, poll=POLL, minReplicas=1))
        await wait_for(lambda: c.deployment("drift"), 10, "the Deployment")
        await c.patch_deployment("drift", {"spec": {"template": {"spec": {"containers": [
            {"name": "worker", "image": "evil.example/other:1"}]}}}})
        await wait_for(lambda: (c.deployment("drift") or {})["spec"]["template"]["spec"]
                       ["containers"][0]["image"] == "example.org/worker:1", 10,
                       "the image restored")
        await wait_for(lambda: c.events("drift", "DriftCorrected"), 5, "a DriftCorrected Event")
        # Replicas changed by hand are taken back by the autoscaler too.
        await c.patch_deployment("drift", {"spec": {"replicas": 7}})
        await wait_for(lambda: c.replicas("drift") == 1, 10, "replicas back to 1")


async def test_paused_honours_kubectl_scale(redis_url: str) -> None:
    async with Cluster(config=fast_config()) as c:
        await c.start_operator()
        push_jobs(redis_url, "jobs", 100)
        await c.create_qw("p", spec(redis_url, poll=POLL, maxReplicas=10,
                                    targetBacklogPerReplica=20),
                          annotations={"queueworker.dev/paused": "true"})
        await wait_for(lambda: c.deployment("p"), 10, "the Deployment")
        await asyncio.sleep(3 * POLL)
        assert c.replicas("p") == 0  # paused and no spec.replicas: the backlog is ignored
        cond = await wait_for(lambda: c.condition("p", "Scaling"), 5, "Scaling condition")
        assert cond["reason"] == "Paused"
        # `kubectl scale qw/p --replicas=2` writes spec.replicas through the scale subresource.
        await c.patch_qw("p", {"spec": {"replicas": 2}})
        await wait_for(lambda: c.replicas("p") == 2, 5, "2 replicas from spec.replicas")
        assert "Manual" in c.qw("p")["status"]["lastScaleReason"]
        # Unpaused: the autoscaler owns replicas again (100 jobs / 20 per replica).
        await c.patch_qw("p", {"metadata": {"annotations": {"queueworker.dev/paused": None}}})
        await wait_for(lambda: c.replicas("p") == 5, 10, "5 replicas from the backlog")


async def test_delete_removes_the_owned_deployment_and_pods(redis_url: str) -> None:
    async with Cluster(config=fast_config()) as c:
        await c.start_operator()
        await c.create_qw("gone", spec(redis_url, poll=POLL, minReplicas=2))
        await wait_for(lambda: len(c.pods("gone")) == 2, 10, "2 pods")
        await c.delete_qw("gone")
        await wait_for(lambda: c.get(QW, "gone") is None, 10, "the QueueWorker gone")
        await wait_for(lambda: c.deployment("gone") is None, 10, "the Deployment collected")
        await wait_for(lambda: not c.pods("gone"), 10, "its pods collected")


async def test_operator_restart_does_not_flap(redis_url: str) -> None:
    async with Cluster(config=fast_config()) as c:
        await c.start_operator()
        push_jobs(redis_url, "jobs", 60)
        await c.create_qw("steady", spec(
            redis_url, poll=POLL, maxReplicas=10, targetBacklogPerReplica=10,
            scaleDown={"stabilizationSeconds": 30}))
        await wait_for(lambda: c.replicas("steady") == 6, 10, "6 replicas")
        # Demand drops; the 30 s scale-down window holds 6 replicas.
        from support.operator_specs import clear_queue

        clear_queue(redis_url, "jobs")
        push_jobs(redis_url, "jobs", 20)
        await asyncio.sleep(3 * POLL)
        assert c.replicas("steady") == 6
        await wait_for(lambda: "down" in (c.qw("steady")["status"].get("engineMemory") or {}),
                       5, "the window in status.engineMemory")

        await c.stop_operator()
        patches_before = len(c.history("apps/v1/deployments", "steady"))
        await c.start_operator()
        await asyncio.sleep(6 * POLL)
        # The restarted operator read the window back: still 6, no patch of the Deployment.
        assert c.replicas("steady") == 6
        replicas_seen = {(v or {}).get("spec", {}).get("replicas")
                         for v in c.history("apps/v1/deployments", "steady")[patches_before:]}
        assert replicas_seen <= {6}
