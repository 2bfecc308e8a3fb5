"""The QueueWorkers dashboard: what the operator sees and decides, per QueueWorker."""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from queueworker.operator.dashboards.panels import SELECTED, Board, Series, Stat, query_variable


def _sum(by: str, metric: str, extra: str = "") -> str:
    return f"sum by ({by}) ({metric}{{{SELECTED}{extra}}})"


def _p95(metric: str) -> str:
    return (f"histogram_quantile(0.95, sum by (le) "
            f"(rate({metric}{{{SELECTED}}}[$__rate_interval])))")


WAITING = _sum("namespace, queueworker", "queueworker_queue_jobs", ', state="waiting"')

QUEUES: list[Series | Stat] = [
    Series("Backlog (waiting jobs)", "Jobs waiting in the queues of each QueueWorker.",
           12, "short", [(WAITING, "{{namespace}}/{{queueworker}}")]),
    Series("Jobs by state",
           "Waiting, in flight (taken by a worker) and delayed (retry later) jobs.",
           12, "short", [(_sum("queueworker, state", "queueworker_queue_jobs"),
                          "{{queueworker}} {{state}}")], stacked=True),
    Series("Oldest job age", "Age of the oldest waiting job per queue: how late the queue is.",
           12, "s", [(f"max by (namespace, queueworker, queue) "
                      f"(queueworker_queue_oldest_job_age_seconds{{{SELECTED}}})",
                      "{{namespace}}/{{queueworker}} {{queue}}")], min=0),
    Series("Backlog per ready replica",
           "Waiting jobs divided by ready workers (what the autoscaler targets).",
           12, "short", [(f"{WAITING} / clamp_min("
                          f"{_sum('namespace, queueworker', 'queueworker_ready_replicas')}, 1)",
                          "{{namespace}}/{{queueworker}}")]),
]

SCALING: list[Series | Stat] = [
    Series("Desired vs current vs ready replicas",
           "What the autoscaler decided, what the Deployment has, what is ready; "
           "the dashed line is maxReplicas.",
           16, "short",
           [(_sum("queueworker", f"queueworker_{kind}_replicas"), f"{{{{queueworker}}}} {kind}")
            for kind in ("desired", "current", "ready", "max")],
           min=0, dashed=".* max"),
    Series("Scale events by reason",
           "Scale-ups and scale-downs in each interval, by direction and the autoscaler's reason.",
           8, "short",
           [(f"sum by (queueworker, direction, reason) (increase("
             f"queueworker_scale_events_total{{{SELECTED}}}[$__rate_interval]))",
             "{{queueworker}} {{direction}} ({{reason}})")],
           stacked=True, bars=True, calcs=("sum",)),
]

GPUS: list[Series | Stat] = [
    Series("GPUs free vs needed",
           "Free GPUs of each resource the QueueWorker asks for, against the GPUs its "
           "desired replicas need.",
           12, "short",
           [(f"max by (queueworker, resource) (queueworker_gpu_{kind}{{{SELECTED}}})",
             f"{{{{queueworker}}}} {{{{resource}}}} {kind}") for kind in ("free", "needed")],
           min=0),
    Series("GPU-limited", "1 while the free GPUs cap the replicas below what the backlog asks for.",
           6, "short", [(f"max by (queueworker) (queueworker_gpu_limited{{{SELECTED}}})",
                         "{{queueworker}}")], min=0, max=1),
    Stat("GPU-limited time",
         "Share of the selected time range each QueueWorker spent capped by free GPUs.",
         6, "percentunit",
         f"max by (queueworker) (avg_over_time(queueworker_gpu_limited{{{SELECTED}}}[$__range]))",
         "{{queueworker}}"),
]

HEALTH: list[Series | Stat] = [
    Stat("Redis reachable", "1 when the operator reached the QueueWorker's Redis on its last poll.",
         6, "short", f"min by (queueworker) (queueworker_redis_up{{{SELECTED}}})",
         "{{queueworker}}"),
    Stat("Spec valid", "1 when the operator accepted the QueueWorker's spec.",
         6, "short", f"min by (queueworker) (queueworker_spec_valid{{{SELECTED}}})",
         "{{queueworker}}"),
    Series("Since last poll", "Seconds since the operator last polled each QueueWorker.",
           12, "s", [(f"time() - max by (queueworker) "
                      f"(queueworker_last_poll_timestamp_seconds{{{SELECTED}}})",
                      "{{queueworker}}")], min=0),
    Series("Errors",
           "Redis errors per QueueWorker and Kubernetes API errors per operation, per second.",
           12, "reqps",
           [(f"sum by (queueworker) "
             f"(rate(queueworker_redis_errors_total{{{SELECTED}}}[$__rate_interval]))",
             "redis {{queueworker}}"),
            # API errors are per operator process: they carry no QueueWorker labels.
            ("sum by (operation) (rate(queueworker_api_errors_total[$__rate_interval]))",
             "api {{operation}}")],
           min=0),
    Series("Decision and reconcile time (p95)",
           "95th percentile of the time one autoscaling decision and one reconcile take.",
           12, "s", [(_p95("queueworker_decision_duration_seconds_bucket"), "decision p95"),
                     (_p95("queueworker_reconcile_duration_seconds_bucket"), "reconcile p95")],
           min=0),
]


def build() -> Dashboard:
    return Board(
        uid="queueworker-queueworkers",
        title="QueueWorkers",
        description="Per QueueWorker: backlog, oldest job, replicas, scale events, GPUs, "
                    "operator health.",
        variables=[
            query_variable("namespace", "Namespace", "queueworker_desired_replicas"),
            query_variable("queueworker", "QueueWorker",
                           'queueworker_desired_replicas{namespace=~"$namespace"}'),
        ],
        rows=[("Queues", QUEUES), ("Replicas and scaling", SCALING), ("GPUs", GPUS),
              ("Operator health", HEALTH)],
    ).build()
