"""The Grafana dashboards: structure, and every query parses in a real Prometheus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.chart_prometheus import Prometheus
from support.chart_tools import (
    DASHBOARDS,
    alert_rules,
    dashboard_targets,
    grafana_to_promql,
    load_dashboard,
)


def _by_title() -> dict[str, dict[str, Any]]:
    return {load_dashboard(p)["title"]: load_dashboard(p) for p in DASHBOARDS}


@pytest.fixture(scope="module")
def prometheus() -> Iterator[Prometheus]:
    with Prometheus() as prom:
        yield prom


def test_two_dashboards_with_unique_uids() -> None:
    boards = _by_title()
    assert set(boards) == {"QueueWorkers", "Workers"}
    assert len({b["uid"] for b in boards.values()}) == 2


OPERATOR_WIDE = ("queueworker_api_errors_total",)


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_dashboard_structure(path: Path) -> None:
    doc = load_dashboard(path)
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    for name in ("namespace", "queueworker"):
        var = variables[name]
        assert var["type"] == "query" and var["includeAll"] and var["multi"]
        # "All" must also match series without the label (a local worker has none).
        assert var["allValue"] == ".*"
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for panel in doc["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        assert panel["description"], panel["title"]
        for target in panel["targets"]:
            # Exceptions: per-process operator metrics without QueueWorker labels.
            if "queueworker_" in target["expr"] and not any(
                    m in target["expr"] for m in OPERATOR_WIDE):
                # Every per-QueueWorker query follows the dashboard's variables.
                assert 'namespace=~"$namespace"' in target["expr"], target["expr"]
                assert 'queueworker=~"$queueworker"' in target["expr"], target["expr"]
    # No two panels overlap.
    cells: set[tuple[int, int]] = set()
    for panel in doc["panels"]:
        g = panel["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, panel["title"]
                cells.add((x, y))


REQUIRED_METRICS = {
    "QueueWorkers": [
        'queueworker_queue_jobs{namespace=~"$namespace", queueworker=~"$queueworker", '
        'state="waiting"}',
        "queueworker_queue_oldest_job_age_seconds", "queueworker_desired_replicas",
        "queueworker_current_replicas", "queueworker_ready_replicas",
        "queueworker_scale_events_total", "reason", "queueworker_gpu_free",
        "queueworker_gpu_needed", "avg_over_time(queueworker_gpu_limited",
    ],
    "Workers": [
        # Names as the worker runtime serves them (worker/queueworker/worker/metrics.py).
        "queueworker_worker_jobs_completed_total", "queueworker_worker_jobs_failed_total",
        "queueworker_worker_jobs_retried_total", "histogram_quantile(0.5, sum by (le) "
        "(rate(queueworker_worker_job_duration_seconds_bucket", "histogram_quantile(0.99, "
        "sum by (le) (rate(queueworker_worker_job_wait_seconds_bucket",
        "queueworker_worker_jobs_in_flight", "queueworker_worker_concurrency",
        "queueworker_worker_gpu_memory_used_bytes", "queueworker_worker_gpu_memory_total_bytes",
        "queueworker_worker_gpu_utilization_ratio",
    ],
}


def test_dashboards_show_what_the_issue_asks() -> None:
    for title, board in _by_title().items():
        queries = "\n".join(expr for _, expr in dashboard_targets(board))
        for needle in REQUIRED_METRICS[title]:
            assert needle in queries, (title, needle)


def _all_expressions() -> list[tuple[str, str]]:
    out = [(f"{load_dashboard(p)['title']}: {title}", grafana_to_promql(expr))
           for p in DASHBOARDS for title, expr in dashboard_targets(load_dashboard(p))]
    out += [(f"alert {r['alert']}", r["expr"]) for r in alert_rules()]
    return out


def test_every_expression_parses_in_prometheus(prometheus: Prometheus) -> None:
    expressions = _all_expressions()
    assert len(expressions) > 40
    failures = []
    for where, expr in expressions:
        answer = prometheus.query(expr)
        if answer["status"] != "success":
            failures.append(f"{where}: {answer.get('error')}\n  {expr}")
    assert not failures, "\n".join(failures)


def test_a_broken_expression_is_reported(prometheus: Prometheus) -> None:
    # The check above can fail: Prometheus rejects bad PromQL with an error.
    answer = prometheus.query("sum by (queue (rate(queueworker_jobs_failed_total[1m]))")
    assert answer["status"] == "error" and answer["errorType"] == "bad_data"
    with pytest.raises(AssertionError):
        grafana_to_promql("rate(x[$__unknown_var])")
