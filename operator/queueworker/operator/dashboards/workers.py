"""The Workers dashboard: the worker runtime's metrics (worker/queueworker/worker/metrics.py)."""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from queueworker.operator.dashboards.panels import SELECTED, Board, Series, query_variable

# Job counters and histograms carry a queue label; the dashboard's $queue filters them.
PER_QUEUE = f'{SELECTED}, queue=~"$queue"'


def _rate(by: str, metric: str) -> str:
    return f"sum by ({by}) (rate({metric}{{{PER_QUEUE}}}[$__rate_interval]))"


def _quantiles(metric: str) -> list[tuple[str, str]]:
    return [(f"histogram_quantile({q}, sum by (le) "
             f"(rate({metric}{{{PER_QUEUE}}}[$__rate_interval])))", f"p{round(q * 100)}")
            for q in (0.5, 0.95, 0.99)]


def _sum(by: str, metric: str) -> str:
    return f"sum by ({by}) ({metric}{{{SELECTED}}})"


COMPLETED = _rate("queue", "queueworker_worker_jobs_completed_total")
FAILED = _rate("queue", "queueworker_worker_jobs_failed_total")
IN_FLIGHT = _sum("queueworker", "queueworker_worker_jobs_in_flight")
SLOTS = _sum("queueworker", "queueworker_worker_concurrency")

JOBS: list[Series] = [
    Series("Throughput", "Jobs completed (finished and acked) and started per second, per queue.",
           12, "ops", [(COMPLETED, "{{queue}} completed"),
                       (_rate("queue", "queueworker_worker_jobs_started_total"),
                        "{{queue}} started")], min=0),
    Series("Failures, retries, hand-backs",
           "Per second: jobs that failed for good (moved to the failed store, by reason), "
           "attempts scheduled for a retry, jobs handed back on drain.",
           12, "ops", [(_rate("queue, reason", "queueworker_worker_jobs_failed_total"),
                        "{{queue}} failed ({{reason}})"),
                       (_rate("queue", "queueworker_worker_jobs_retried_total"),
                        "{{queue}} retried"),
                       (_rate("queue", "queueworker_worker_jobs_handed_back_total"),
                        "{{queue}} handed back")], min=0),
    Series("Failure ratio",
           "Jobs that failed for good over all finished jobs (completed + failed), per queue.",
           12, "percentunit", [(f"{FAILED} / ({COMPLETED} + {FAILED})", "{{queue}}")],
           min=0, max=1),
    Series("Jobs in flight",
           "Jobs the workers run now, against the slots they have (sum of --concurrency).",
           12, "short", [(IN_FLIGHT, "{{queueworker}} in flight"),
                         (SLOTS, "{{queueworker}} slots")], min=0),
]

LATENCY: list[Series] = [
    Series("Run time p50 / p95 / p99", "Job run time quantiles: the handler's run time.",
           12, "s", _quantiles("queueworker_worker_job_duration_seconds_bucket"), min=0),
    Series("Wait time p50 / p95 / p99",
           "Job wait time quantiles: from enqueue (or due time) to start.",
           12, "s", _quantiles("queueworker_worker_job_wait_seconds_bucket"), min=0),
]

WORKERS: list[Series] = [
    Series("Busy ratio", "Share of the workers' concurrency slots busy with a job (1 = saturated).",
           8, "percentunit", [(f"{IN_FLIGHT} / clamp_min({SLOTS}, 1)", "{{queueworker}}")],
           min=0, max=1),
    Series("Workers by state", "Worker processes starting, idle, busy, draining.",
           8, "short", [(_sum("state", "queueworker_worker_state"), "{{state}}")],
           min=0, stacked=True),
    Series("Redis errors and recovered leases",
           "Per second: failed Redis round trips of the workers, and expired leases (jobs of "
           "crashed workers) put back by the reapers.",
           8, "ops", [(f"sum by (queueworker) (rate({metric}{{{SELECTED}}}[$__rate_interval]))",
                       f"{{{{queueworker}}}} {legend}")
                      for metric, legend in (
                          ("queueworker_worker_redis_errors_total", "redis errors"),
                          ("queueworker_worker_leases_recovered_total", "leases recovered"))],
           min=0),
]

GPUS: list[Series] = [
    Series("GPU memory", "GPU memory used and total, per worker pod and GPU.",
           12, "bytes", [(f"max by (pod, gpu) (queueworker_worker_gpu_memory_{kind}_bytes"
                          f"{{{SELECTED}}})", f"{{{{pod}}}} gpu {{{{gpu}}}} {kind}")
                         for kind in ("used", "total")], min=0),
    Series("GPU utilization", "Share of time the GPU was busy, per worker pod and GPU.",
           12, "percentunit", [(f"avg by (pod, gpu) (queueworker_worker_gpu_utilization_ratio"
                                f"{{{SELECTED}}})", "{{pod}} gpu {{gpu}}")], min=0, max=1),
]


def build() -> Dashboard:
    return Board(
        uid="queueworker-workers",
        title="Workers",
        description="Worker runtime: throughput, failures, run and wait time, in flight, "
                    "busy ratio, states, GPUs.",
        variables=[
            query_variable("namespace", "Namespace", "queueworker_worker_state"),
            query_variable("queueworker", "QueueWorker",
                           'queueworker_worker_state{namespace=~"$namespace"}'),
            query_variable("queue", "Queue", "queueworker_worker_jobs_started_total"
                                             f"{{{SELECTED}}}"),
        ],
        rows=[("Jobs", JOBS), ("Latency", LATENCY), ("Workers", WORKERS), ("GPUs", GPUS)],
    ).build()
