"""The GPU ``maxSurge: 0`` path: a redeploy on full GPUs rolls through without a stuck surge pod.

Two GPU workers fill the only GPU node. A template change then rolls them. With
``maxSurge: 1`` the new pod would ask for a GPU the old pods hold and, with
``maxUnavailable: 0``, no old pod would go until it ran: the rollout would hang
on a pod Pending for good. The operator sees no free GPU and writes
``maxSurge: 0, maxUnavailable: 1`` instead; the harness honours the strategy,
and its terminating pods hold their GPU through their stop time, so each new pod
waits (briefly) for an old one to leave, never beside the old ones.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from support.operator_cluster import PODS, Cluster, PodTiming, pod_ready, wait_for
from support.operator_specs import fast_config, push_jobs, spec

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

GPU = "nvidia.com/gpu"
STOP = 1.0  # an old pod's drain: it holds its GPU this long after SIGTERM
CONTAINER = {"name": "worker", "image": "example.org/gpu-worker:1",
             "resources": {"limits": {GPU: "1"}}}


def _image(pod: dict[str, object]) -> str:
    return str(pod["spec"]["containers"][0]["image"])  # type: ignore[index]


async def test_a_redeploy_on_full_gpus_never_surges_and_finishes(redis_url: str) -> None:
    timing = PodTiming(ready_seconds=0.3, stop_seconds=STOP)
    async with Cluster(config=fast_config(), timing=timing) as c:
        await c.add_node("gpu-a", {GPU: "2", "cpu": "8"})
        await c.start_operator()
        push_jobs(redis_url, "jobs", 500)
        await c.create_qw("gpu", spec(redis_url, poll=0.5, maxReplicas=4,
                                      targetBacklogPerReplica=10,
                                      template={"spec": {"containers": [CONTAINER]}}))
        await wait_for(lambda: c.replicas("gpu") == 2, 10, "2 replicas (2 GPUs)")
        await wait_for(lambda: sum(pod_ready(p) for p in c.pods("gpu")) == 2, 10, "2 ready")

        await c.patch_qw("gpu", {"spec": {"template": {"spec": {"containers": [
            {**CONTAINER, "image": "example.org/gpu-worker:2"}]}}}})
        most, longest_pending = 0, 0.0
        pending_since: dict[str, float] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pods = [p for p in c.pods("gpu") if not p["metadata"].get("deletionTimestamp")]
            most = max(most, len(pods))
            now = time.monotonic()
            for p in pods:
                if not p["spec"].get("nodeName"):
                    since = pending_since.setdefault(p["metadata"]["name"], now)
                    longest_pending = max(longest_pending, now - since)
            if ({_image(p) for p in c.pods("gpu")} == {"example.org/gpu-worker:2"}
                    and sum(pod_ready(p) for p in pods) == 2):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the rollout did not finish: {most} pods at most, "
                                 f"one Pending for {longest_pending:.1f}s")
        strategy = (c.deployment("gpu") or {})["spec"]["strategy"]["rollingUpdate"]
        assert strategy == {"maxSurge": 0, "maxUnavailable": 1}
        assert most <= 2, "a surge pod was created on full GPUs"
        # A new pod waits only for an old pod's drain, not for good.
        assert longest_pending < STOP + 5.0


async def test_a_surge_decided_from_a_stale_pod_view_is_taken_back(redis_url: str) -> None:
    """The strategy is chosen from the operator's pod index, which lags: right after
    both pods got their GPUs it still sees a free one and writes ``maxSurge: 1``. The
    surge pod then waits for a GPU that the old pods hold, and with
    ``maxUnavailable: 0`` no old pod goes: the operator must see the new pod
    Unschedulable mid-rollout and switch to ``maxSurge: 0, maxUnavailable: 1``.
    (A 0.4 s lag shows it too; 1 s leaves room for a slow kick on a loaded machine:
    the operator must decide before its index shows the pods.)"""
    timing = PodTiming(stop_seconds=0.3)  # Ready at once: old pods never go unready
    async with Cluster(config=fast_config(), timing=timing, lags={PODS: 1.0}) as c:
        await c.add_node("gpu-a", {GPU: "2", "cpu": "8"})
        await c.start_operator()
        push_jobs(redis_url, "jobs", 500)
        await c.create_qw("gpu", spec(redis_url, poll=0.5, minReplicas=2, maxReplicas=2,
                                      targetBacklogPerReplica=10,
                                      template={"spec": {"containers": [CONTAINER]}}))
        await wait_for(lambda: len([p for p in c.pods("gpu") if p["spec"].get("nodeName")])
                       == 2, 10, "2 pods on the 2 GPUs", interval=0.01)
        await c.patch_qw("gpu", {"spec": {"template": {"spec": {"containers": [
            {**CONTAINER, "image": "example.org/gpu-worker:2"}]}}}})
        # The stale view: the operator saw a free GPU and allowed a surge.
        await wait_for(lambda: _rolling(c) == {"maxSurge": 1, "maxUnavailable": 0}
                       and _image(c.deployment("gpu")["spec"]["template"])  # type: ignore[index]
                       == "example.org/gpu-worker:2", 5, "the new template, with a surge")

        strategies: list[dict[str, object]] = []

        def done() -> bool:
            # Recorded while it runs: once the rollout is over the operator may allow a
            # surge again, so the strategy read after it proves nothing.
            strategies.append(_rolling(c))
            pods = [p for p in c.pods("gpu") if not p["metadata"].get("deletionTimestamp")]
            return ({_image(p) for p in c.pods("gpu")} == {"example.org/gpu-worker:2"}
                    and sum(pod_ready(p) for p in pods) == 2)

        await wait_for(done, 15, "the rollout to finish")
        assert {"maxSurge": 0, "maxUnavailable": 1} in strategies
        events = c.events("gpu", reason="RolloutWithoutSurge")
        assert events, "no Event says why the strategy changed"
        assert GPU in events[0]["message"]


def _rolling(c: Cluster) -> dict[str, object]:
    return dict((c.deployment("gpu") or {})["spec"]["strategy"]["rollingUpdate"])
