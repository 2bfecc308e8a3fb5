"""End to end with the real kopf operator: it runs against the emulated cluster
of the operator tests (support.operator_cluster: kmock plus a Deployment
controller) and a real redis-server, serves its metrics on a loopback port,
and a real Prometheus scrapes it. Every QueueWorkers-dashboard query, the
Kubernetes-only ones included (spec valid, decision and reconcile time, GPUs
free vs needed, GPU-limited), must return data, and the GPU alert's condition
must hold for the QueueWorker that free GPUs cap.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from support.chart_e2e import has_data
from support.chart_prometheus import Prometheus, label_values
from support.chart_tools import (
    NAMESPACE,
    alert_rules,
    dashboard_targets,
    grafana_to_promql,
    load_dashboard,
    one,
    render,
    variable_queries,
)
from support.operator_cluster import Cluster, wait_for
from support.operator_specs import fast_config, push_jobs, spec
from support.redis_server import free_port

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

CHART_DASHBOARDS = Path(__file__).resolve().parents[2] / "charts/queueworker-operator/dashboards"
POLL = 0.5
GPU_TEMPLATE = {"spec": {"containers": [{
    "name": "worker", "image": "example.org/gpu-worker:1",
    "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}
# Why these have no data here: nothing went wrong.
EXPECTED_EMPTY = {
    "queueworker_api_errors_total": "no Kubernetes API call failed",
    "queueworker_redis_errors_total": "Redis stays up",
}

# The operator's metrics live in one process-wide registry; its HTTP server
# (prometheus_client's) cannot be stopped, so one serves the whole session.
_METRICS_PORT: int | None = None


def _serve_metrics() -> int:
    global _METRICS_PORT
    if _METRICS_PORT is None:
        from queueworker.operator import metrics

        _METRICS_PORT = free_port()
        metrics.serve(_METRICS_PORT, addr="127.0.0.1")
    return _METRICS_PORT


async def _until_data(prom: Prometheus, expr: str, within: float) -> bool:
    deadline = time.monotonic() + within
    while True:
        answer = await asyncio.to_thread(prom.query, expr)
        if has_data(answer):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.5)


@pytest.mark.timeout(180)
async def test_kopf_operator_metrics_feed_every_queueworker_panel(redis_url: str) -> None:
    port = _serve_metrics()
    async with Cluster(config=fast_config()) as c:
        await c.add_node("gpu-a", {"nvidia.com/gpu": "2", "cpu": "8"})
        await c.start_operator()
        push_jobs(redis_url, "jobs", 40)
        push_jobs(redis_url, "render", 100)
        await c.create_qw("jobs", spec(redis_url, ["jobs"], poll=POLL, maxReplicas=4,
                                       targetBacklogPerReplica=20))
        # Wants 10 replicas of one GPU each; 2 GPUs exist: GPU-limited.
        await c.create_qw("render", spec(redis_url, ["render"], poll=POLL, maxReplicas=10,
                                         targetBacklogPerReplica=10, template=GPU_TEMPLATE))
        await wait_for(lambda: c.replicas("jobs") == 2, 15, "2 replicas for jobs")
        await wait_for(lambda: c.replicas("render") == 2, 15, "2 replicas for render (2 GPUs)")

        # Scraped as the chart's ServiceMonitor says: the target carries the
        # operator's namespace (Kubernetes service discovery adds it), and
        # honorLabels decides whether the series keep the QueueWorker's.
        (endpoint,) = one(render(sets=["metrics.serviceMonitor.enabled=true"]),
                          "ServiceMonitor")["spec"]["endpoints"]
        options = {"queueworker-operator": {"labels": {"namespace": NAMESPACE},
                                            "honor_labels": endpoint.get("honorLabels", False)}}
        with Prometheus({"queueworker-operator": [f"127.0.0.1:{port}"]},
                        job_options=options) as prom:
            board = load_dashboard(CHART_DASHBOARDS / "queueworkers.json")
            missing = []
            checked = 0
            for title, expr in dashboard_targets(board):
                query = grafana_to_promql(expr)
                if any(name in query for name in EXPECTED_EMPTY):
                    continue
                checked += 1
                if not await _until_data(prom, query, within=20):
                    missing.append(f"{title}: {query}")
            assert not missing, "no data for:\n" + "\n".join(missing)
            assert checked >= 17

            # Per QueueWorker, with the namespace label kopf's objects have.
            answer = await asyncio.to_thread(
                prom.query, 'queueworker_spec_valid{namespace="default", queueworker="render"}')
            assert has_data(answer)
            # The dashboard's variables list our namespace and QueueWorkers.
            variables = variable_queries(board)
            assert "default" in await asyncio.to_thread(
                label_values, prom, *variables["namespace"])
            assert {"jobs", "render"} <= set(await asyncio.to_thread(
                label_values, prom, *variables["queueworker"]))

            # The registry is process-wide: other operator tests in this session
            # may have left series of their own QueueWorkers; look at ours only.
            ours = {"jobs", "render"}
            rules = {r["alert"]: r for r in alert_rules()}
            gpu = await asyncio.to_thread(prom.query, rules["QueueWorkerGPULimited"]["expr"])
            limited = {r["metric"]["queueworker"] for r in gpu["data"]["result"]}
            assert limited & ours == {"render"}
            for quiet in ("QueueWorkerSpecInvalid", "QueueWorkerRedisUnreachable",
                          "QueueWorkerNotReconciling", "QueueWorkerOperatorDown"):
                answer = await asyncio.to_thread(prom.query, rules[quiet]["expr"])
                firing = [r["metric"] for r in answer["data"]["result"]
                          if r["metric"].get("queueworker", "jobs") in ours]
                assert not firing, (quiet, firing)
            needed = await asyncio.to_thread(
                prom.query, 'queueworker_gpu_needed{queueworker="render"}')
            free = await asyncio.to_thread(
                prom.query, 'queueworker_gpu_free{queueworker="render"}')
            # The backlog wants more GPUs than are free.
            assert float(needed["data"]["result"][0]["value"][1]) > float(
                free["data"]["result"][0]["value"][1])
