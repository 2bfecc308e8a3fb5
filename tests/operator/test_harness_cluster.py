"""The test cluster itself: informer lag, pod start-up, graceful deletion, rollouts.

Each test checks one behaviour of support/operator_cluster.py that the operator
tests rely on, without the operator, so a harness that stopped doing it fails here.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import aiohttp
import pytest

from queueworker.operator.cluster import client as kube

from support.operator_cluster import DEPLOYMENTS, PODS, Cluster, PodTiming, pod_ready, wait_for
from support.operator_e2e import ProcessRuntime

GPU = "nvidia.com/gpu"


def pod(name: str, gpus: int = 0, grace: int = 30) -> dict[str, Any]:
    limits = {"limits": {GPU: str(gpus)}} if gpus else {}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"terminationGracePeriodSeconds": grace,
                     "containers": [{"name": "c", "image": "i", "resources": limits}]}}


def deployment(name: str, replicas: int, image: str = "i:1",
               strategy: dict[str, Any] | None = None) -> dict[str, Any]:
    labels = {"app": name}
    body: dict[str, Any] = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {
                     "terminationGracePeriodSeconds": 5,
                     "containers": [{"name": "c", "image": image}]}}}}
    if strategy is not None:
        body["spec"]["strategy"] = strategy
    return body


async def create(c: Cluster, body: dict[str, Any]) -> None:
    path = (kube.deployments_path("default") if body["kind"] == "Deployment"
            else "/api/v1/namespaces/default/pods")
    await c.client.create(path, body, operation="test")


# ------------------------------------------------------------------------- informer lag


async def _first_event(url: str, name: str, annotation: str) -> float:
    """When a pod watch first shows the annotation on the pod."""
    async with aiohttp.ClientSession() as session, session.get(
            f"{url}/api/v1/namespaces/default/pods", params={"watch": "true"}) as resp:
        async for line in resp.content:
            if not line.strip():
                continue
            obj = json.loads(line)["object"]
            if (obj["metadata"]["name"] == name
                    and annotation in (obj["metadata"].get("annotations") or {})):
                return time.monotonic()
    raise AssertionError("the watch ended")


@pytest.mark.parametrize("lag", [0.0, 0.8])
async def test_watches_and_the_controller_store_see_writes_after_the_lag(lag: float) -> None:
    async with Cluster(controllers=False, lags={PODS: lag}) as c:
        await create(c, pod("p"))
        await wait_for(lambda: [n for _, n, _ in c.k.view(PODS)] == ["p"], 3, "p in view")
        watcher = asyncio.create_task(_first_event(c.url, "p", "seen"))
        await asyncio.sleep(0.2)  # the watch is open
        written = time.monotonic()
        await c.client.patch(kube.pod_path("default", "p"),
                             {"metadata": {"annotations": {"seen": "yes"}}}, operation="test")
        assert "seen" in (c.get(PODS, "p") or {})["metadata"]["annotations"]  # stored now
        in_view = c.k.view(PODS)[0][2]["metadata"].get("annotations") or {}
        assert ("seen" in in_view) == (lag == 0)
        arrived = await asyncio.wait_for(watcher, 5)
        if lag:
            assert arrived - written >= lag * 0.95
            await wait_for(lambda: "seen" in (c.k.view(PODS)[0][2]["metadata"].get(
                "annotations") or {}), lag + 1, "the write in the lagging view")
        else:
            assert arrived - written < 0.5
        # Deployments were not given a lag: their store is current.
        await create(c, deployment("d", 0))
        assert [n for _, n, _ in c.k.view(DEPLOYMENTS)] == ["d"]


# ----------------------------------------------------------------------- pod start-up


async def test_pods_go_pending_then_running_then_ready_after_their_delays() -> None:
    timing = PodTiming(start_seconds=0.6, ready_seconds=0.6)
    async with Cluster(timing=timing) as c:
        await create(c, deployment("d", 1))
        first = await wait_for(lambda: c.pods_of_deployment("d"), 3, "a pod")
        name = first[0]["metadata"]["name"]
        await wait_for(lambda: pod_ready(c.get(PODS, name) or {}), 5, "the pod Ready")
        phases = [(v["status"].get("phase"), pod_ready(v)) for v in c.history(PODS, name)
                  if v is not None]
        assert phases[0] == ("Pending", False)
        assert ("Running", False) in phases
        assert phases[-1] == ("Running", True)
        log = c.kubelet
        scheduled, running, ready = (log.at(name, w) for w in ("scheduled", "running", "ready"))
        assert scheduled is not None
        assert running is not None
        assert ready is not None
        assert running - scheduled >= 0.6
        assert ready - running >= 0.6
        conds = {x["type"]: x for x in (c.get(PODS, name) or {})["status"]["conditions"]}
        assert conds["Ready"]["status"] == "True"
        assert conds["Ready"]["lastTransitionTime"]
        # The Deployment counts the pod ready only now.
        await wait_for(lambda: (c.deployment("d") or {}).get("status", {}).get(
            "readyReplicas") == 1, 3, "readyReplicas 1")
        statuses = [(v.get("status") or {}).get("readyReplicas")
                    for v in c.history(DEPLOYMENTS, "d") if v is not None]
        assert 0 in statuses  # it was not ready at first


# -------------------------------------------------------------------- graceful deletion


async def test_deletion_marks_the_pod_and_removes_it_after_the_grace_period() -> None:
    # The containers would take 5 s to stop; the grace period is 1 s.
    async with Cluster(timing=PodTiming(stop_seconds=5)) as c:
        await create(c, pod("slow", grace=1))
        await wait_for(lambda: pod_ready(c.get(PODS, "slow") or {}), 3, "slow Ready")
        await c.client.delete(kube.pod_path("default", "slow"), operation="test")
        deleted_at = time.monotonic()
        meta = (c.get(PODS, "slow") or {})["metadata"]
        assert meta["deletionTimestamp"]
        assert meta["deletionGracePeriodSeconds"] == 1
        await wait_for(lambda: c.get(PODS, "slow") is None, 5, "the pod removed")
        assert time.monotonic() - deleted_at >= 0.9
        # The kubelet logs "removed" after its DELETE returns: the store may be quicker.
        await wait_for(lambda: c.kubelet.events("slow")[-1:] == ["removed"], 5, "logged")
        assert c.kubelet.events("slow")[-3:] == ["sigterm", "sigkill", "removed"]


class _Stubborn(ProcessRuntime):
    """Pods run a Python process; 'stubborn' ones ignore SIGTERM."""

    def command(self, pod: dict[str, Any]) -> list[str] | None:
        ignore = "signal.signal(signal.SIGTERM, signal.SIG_IGN); " if "stubborn" in \
            pod["metadata"]["name"] else ""
        return [sys.executable, "-c", f"import signal, time; {ignore}time.sleep(60)"]


async def test_sigterm_goes_to_the_process_and_sigkill_follows_after_the_grace() -> None:
    runtime = _Stubborn()
    async with Cluster(runtime=runtime) as c:
        await create(c, pod("polite", grace=10))
        await create(c, pod("stubborn", grace=1))
        await wait_for(lambda: len(runtime.alive()) == 2, 5, "two processes")
        started = time.monotonic()
        for name in ("polite", "stubborn"):
            await c.client.delete(kube.pod_path("default", name), operation="test")
        await wait_for(lambda: c.get(PODS, "polite") is None, 5, "polite removed")
        assert time.monotonic() - started < 5  # once it exited, not after its 10 s grace
        assert c.get(PODS, "stubborn") is not None  # still inside its grace period
        await wait_for(lambda: c.get(PODS, "stubborn") is None, 5, "stubborn removed")
        assert time.monotonic() - started >= 0.9
    assert runtime.exit_codes == {"polite": -15, "stubborn": -9}


async def test_a_terminating_pod_holds_its_gpu_until_it_is_removed() -> None:
    async with Cluster(timing=PodTiming(stop_seconds=1.5)) as c:
        await c.add_node("gpu-a", {GPU: "1"})
        await create(c, pod("old", gpus=1))
        await wait_for(lambda: (c.get(PODS, "old") or {})["spec"].get("nodeName"), 3, "old bound")
        await c.client.delete(kube.pod_path("default", "old"), operation="test")
        await create(c, pod("new", gpus=1))
        await asyncio.sleep(0.8)
        assert c.get(PODS, "old") is not None
        new = c.get(PODS, "new") or {}
        assert not new["spec"].get("nodeName")
        assert new["status"]["phase"] == "Pending"
        await wait_for(lambda: (c.get(PODS, "new") or {})["spec"].get("nodeName") == "gpu-a",
                       5, "new bound once old is gone")
        assert c.get(PODS, "old") is None


# ------------------------------------------------------------------------- rolling updates


@pytest.mark.parametrize(("surge", "unavailable"), [(1, 0), (0, 1), (2, 1)])
async def test_rollouts_stay_within_max_surge_and_max_unavailable(
        surge: int, unavailable: int) -> None:
    replicas = 4
    strategy = {"type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}
    async with Cluster(timing=PodTiming(ready_seconds=0.3, stop_seconds=0.3)) as c:
        await create(c, deployment("d", replicas, strategy=strategy))
        await wait_for(lambda: sum(pod_ready(p) for p in c.pods_of_deployment("d")) == replicas,
                       5, "4 ready pods")
        await c.patch_deployment("d", {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "i:2"}]}}}})
        most, fewest_ready, surged = 0, replicas, False
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pods = [p for p in c.pods_of_deployment("d")
                    if not p["metadata"].get("deletionTimestamp")]
            most = max(most, len(pods))
            fewest_ready = min(fewest_ready, sum(pod_ready(p) for p in pods))
            surged = surged or len(pods) > replicas
            images = {p["spec"]["containers"][0]["image"] for p in c.pods_of_deployment("d")}
            if images == {"i:2"} and sum(pod_ready(p) for p in pods) == replicas:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the rollout did not finish")
        assert most <= replicas + surge
        assert fewest_ready >= replicas - unavailable
        assert surged == (surge > 0)


async def test_a_scale_down_removes_the_lowest_ranked_pods_at_once() -> None:
    async with Cluster() as c:
        await create(c, deployment("d", 3))
        pods = await wait_for(lambda: len(c.pods_of_deployment("d")) == 3
                              and c.pods_of_deployment("d"), 3, "3 pods")
        keep = pods[0]["metadata"]["name"]
        for p in pods[1:]:
            await c.client.patch(kube.pod_path("default", p["metadata"]["name"]), {
                "metadata": {"annotations": {
                    "controller.kubernetes.io/pod-deletion-cost": "-5"}}}, operation="test")
        await c.patch_deployment("d", {"spec": {"replicas": 1}})
        await wait_for(lambda: [p["metadata"]["name"] for p in c.pods_of_deployment("d")]
                       == [keep], 3, "the pod with the higher deletion cost left")
