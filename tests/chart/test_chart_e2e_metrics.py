"""End to end: a real Prometheus scrapes the live operator (`queueworker local`:
the operator's engine and metrics without a cluster) and a live `queueworker
worker` on a real redis-server while jobs flow; every dashboard query must
return data, and every alert must read series that exist and stay quiet or
fire as the traffic says.

Queries that cannot have data in this setup are listed with the reason; the
Kubernetes-only ones are covered by test_chart_e2e_kopf.py.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.chart_e2e import Live, enqueue, has_data, live_system
from support.chart_prometheus import label_values
from support.chart_tools import (
    DASHBOARDS,
    alert_rules,
    dashboard_targets,
    grafana_to_promql,
    load_dashboard,
    variable_queries,
)
from support.redis_server import RedisServer

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

# Metric name -> why no series can exist in this setup.
EXPECTED_EMPTY = {
    "queueworker_gpu_free": "no GPU: the QueueWorker has no spec.gpu and local mode has no Nodes",
    "queueworker_gpu_needed": "no GPU (as above)",
    "queueworker_gpu_limited": "local mode does not export it (the kopf operator does: "
                               "test_chart_e2e_kopf.py)",
    "queueworker_spec_valid": "local mode refuses an invalid manifest at start instead "
                              "(the kopf operator exports it: test_chart_e2e_kopf.py)",
    "queueworker_decision_duration_seconds": "observed by the kopf operator's loop only "
                                             "(test_chart_e2e_kopf.py)",
    "queueworker_reconcile_duration_seconds": "no Deployment to reconcile in local mode "
                                              "(test_chart_e2e_kopf.py)",
    "queueworker_api_errors_total": "no Kubernetes API in local mode, so no API error",
    "queueworker_redis_errors_total": "Redis stays up: the counter starts at the first error",
    "queueworker_worker_gpu_memory_used_bytes": "no GPU on this machine",
    "queueworker_worker_gpu_memory_total_bytes": "no GPU on this machine",
    "queueworker_worker_gpu_utilization_ratio": "no GPU on this machine",
    "kube_pod_container_status_restarts_total": "no kube-state-metrics without a cluster",
    "kube_pod_labels": "no kube-state-metrics without a cluster",
}

# How each alert must behave with the traffic below (healthy system, one queue
# where a third of the jobs fail for good).
ALERTS_FIRING = {"QueueWorkerJobFailureRatioHigh"}
ALERTS_QUIET = {"QueueWorkerOperatorDown", "QueueWorkerNotReconciling",
                "QueueWorkerSpecInvalid", "QueueWorkerRedisUnreachable",
                "QueueWorkerBacklogGrowingAtMaxReplicas", "QueueWorkerOldestJobTooOld",
                "QueueWorkerGPULimited", "QueueWorkerWorkersCrashLooping"}

METRIC = re.compile(r"\b((?:queueworker|kube)_[a-z_]+?)(?:_bucket)?\b(?=\s*[{\[)])")


def metrics_of(expr: str) -> set[str]:
    return set(METRIC.findall(expr))


def _expected_empty(expr: str) -> list[str]:
    return [name for name in metrics_of(expr) if name in EXPECTED_EMPTY]


def _dashboard_queries() -> list[tuple[str, str]]:
    return [(f"{load_dashboard(p)['title']} / {title}", grafana_to_promql(expr))
            for p in DASHBOARDS for title, expr in dashboard_targets(load_dashboard(p))]


def _wait(live: Live, expr: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if has_data(live.prometheus.query(expr)):
            return
        time.sleep(0.5)
    raise AssertionError(f"no data for {expr} after {timeout}s; logs:\n" + "\n".join(
        f"--- {k}\n{p.read_text(errors='replace')[-2000:]}" for k, p in live.logs.items()))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    redis = RedisServer().start()
    try:
        with live_system(redis.url, tmp_path_factory.mktemp("e2e")) as system:
            system.prometheus.wait_for_targets_up()
            # A first few jobs create the worker's per-queue series at 0, so that
            # the failures below show up as an increase in rate().
            enqueue(redis.url, "e2e", json.dumps({"seconds": 0.05}), "--count", "4")
            _wait(system, 'queueworker_worker_jobs_failed_total{queue="e2e"}')
            # Traffic: 20 jobs that work, 10 that fail for good (no retry), 4
            # that fail once and are retried, 1 delayed far into the future.
            enqueue(redis.url, "e2e", json.dumps({"seconds": 0.2}), "--count", "20")
            enqueue(redis.url, "e2e", json.dumps({"fail": True}), "--max-tries", "1",
                    "--count", "10")
            enqueue(redis.url, "e2e-high", json.dumps({"fail": True}), "--max-tries", "2",
                    "--backoff", "0", "--count", "4")
            # For the operator: jobs for its own workers (it scales 0 -> 2 of
            # at most 3) and one delayed far into the future.
            enqueue(redis.url, "ops", json.dumps({"seconds": 0.3}), "--count", "8")
            enqueue(redis.url, "ops", json.dumps({}), "--delay", "3600")
            _wait(system, "sum(queueworker_worker_jobs_failed_total) >= 14", timeout=60)
            _wait(system, "sum(queueworker_worker_jobs_completed_total) >= 24", timeout=60)
            _wait(system, "sum(queueworker_scale_events_total) > 0", timeout=60)
            yield system
    finally:
        redis.cleanup()


def test_both_targets_are_scraped(live: Live) -> None:
    targets = {t["labels"]["job"]: t["health"] for t in live.prometheus.active_targets()}
    assert targets == {"queueworker-operator": "up", "queueworker-worker": "up"}


def test_every_dashboard_query_returns_data(live: Live) -> None:
    queries = _dashboard_queries()
    missing: list[str] = []
    checked = 0
    deadline = time.monotonic() + 30
    for where, expr in queries:
        if _expected_empty(expr):
            assert live.prometheus.query(expr)["status"] == "success", expr
            continue
        checked += 1
        # rate() needs two samples in its window: give slow series a few scrapes.
        while not has_data(live.prometheus.query(expr)) and time.monotonic() < deadline:
            time.sleep(0.5)
        if not has_data(live.prometheus.query(expr)):
            missing.append(f"{where}: {expr}")
    assert not missing, "no data for:\n" + "\n".join(missing)
    # Most queries are checked for data, not excused.
    assert checked >= 28, checked


def test_dashboard_variables_list_live_values(live: Live) -> None:
    boards = {load_dashboard(p)["title"]: load_dashboard(p) for p in DASHBOARDS}
    workers = variable_queries(boards["Workers"])
    assert label_values(live.prometheus, *workers["namespace"]) == ["local"]
    assert label_values(live.prometheus, *workers["queueworker"]) == ["e2e"]
    assert set(label_values(live.prometheus, *workers["queue"])) == {"e2e", "e2e-high"}
    queueworkers = variable_queries(boards["QueueWorkers"])
    # Local mode's namespace label is "local".
    assert label_values(live.prometheus, *queueworkers["namespace"]) == ["local"]
    assert label_values(live.prometheus, *queueworkers["queueworker"]) == ["e2e"]


def test_every_expected_empty_metric_is_used_and_explained() -> None:
    used = set().union(*(metrics_of(e) for _, e in _dashboard_queries()),
                       *(metrics_of(r["expr"]) for r in alert_rules()))
    assert set(EXPECTED_EMPTY) <= used, set(EXPECTED_EMPTY) - used
    assert all(reason for reason in EXPECTED_EMPTY.values())


def test_every_metric_the_alerts_read_exists(live: Live) -> None:
    missing = []
    for rule in alert_rules():
        for name in sorted(metrics_of(rule["expr"])):
            if name in EXPECTED_EMPTY:
                continue
            if not has_data(live.prometheus.query(f"count({name})")):
                missing.append(f"{rule['alert']}: {name}")
    assert not missing, missing


def test_alerts_fire_or_stay_quiet_on_live_metrics(live: Live) -> None:
    rules = {r["alert"]: r for r in alert_rules()}
    assert set(rules) == ALERTS_FIRING | ALERTS_QUIET
    for name in sorted(ALERTS_QUIET):
        answer = live.prometheus.query(rules[name]["expr"])
        assert answer["status"] == "success", (name, answer)
        assert not has_data(answer), f"{name} would fire on a healthy system: {answer}"
    for name in sorted(ALERTS_FIRING):
        # Its condition holds now (the `for:` duration is promtool's to test).
        answer = live.prometheus.query(rules[name]["expr"])
        assert has_data(answer), f"{name} does not see the failures: {answer}"
        labels = answer["data"]["result"][0]["metric"]
        assert (labels["namespace"], labels["queueworker"], labels["queue"]) == (
            "local", "e2e", "e2e")


def test_the_harness_sees_a_missing_metric(live: Live) -> None:
    # has_data() can say no: a metric nobody exports has no data.
    assert not has_data(live.prometheus.query("queueworker_no_such_metric"))
    assert metrics_of('rate(queueworker_worker_job_wait_seconds_bucket{queue="x"}[1m])') == {
        "queueworker_worker_job_wait_seconds"}


def test_logs_show_no_crash(live: Live) -> None:
    for name, path in live.logs.items():
        text = path.read_text(errors="replace")
        assert "Traceback" not in text, f"{name}:\n{text[-3000:]}"


def test_expected_empty_paths_exist() -> None:
    # The other end-to-end file the reasons point to.
    assert (Path(__file__).parent / "test_chart_e2e_kopf.py").is_file()
