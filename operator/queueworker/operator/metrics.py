"""Prometheus metrics of the operator (names are a contract with the dashboards).

Labels never carry a Redis URL or anything secret: only namespace, QueueWorker
name, queue name, resource name, direction/reason and API operation.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)
QW = ("namespace", "queueworker")

desired_replicas = Gauge("queueworker_desired_replicas", "Replicas the autoscaler wants.",
                         QW, registry=REGISTRY)
current_replicas = Gauge("queueworker_current_replicas", "Replicas of the worker Deployment.",
                         QW, registry=REGISTRY)
ready_replicas = Gauge("queueworker_ready_replicas", "Ready worker replicas.", QW,
                       registry=REGISTRY)
max_replicas = Gauge("queueworker_max_replicas", "spec.scaling.maxReplicas.", QW,
                     registry=REGISTRY)
queue_jobs = Gauge("queueworker_queue_jobs", "Jobs per queue and state.",
                   (*QW, "queue", "state"), registry=REGISTRY)
queue_oldest_age = Gauge("queueworker_queue_oldest_job_age_seconds",
                         "Age of the oldest waiting job.", (*QW, "queue"), registry=REGISTRY)
queue_waiting_by_priority = Gauge(
    "queueworker_queue_waiting_jobs_by_priority",
    "Jobs in the waiting list of each priority level (native queues: 1..10, 10 first).",
    (*QW, "queue", "priority"), registry=REGISTRY)
queue_paused = Gauge("queueworker_queue_paused",
                     "1 while the queue is paused (queueworker queue pause): no demand.",
                     (*QW, "queue"), registry=REGISTRY)
gpu_free = Gauge("queueworker_gpu_free", "Free units of the GPU resource on eligible nodes.",
                 (*QW, "resource"), registry=REGISTRY)
gpu_needed = Gauge("queueworker_gpu_needed", "GPU units the wanted replicas need.",
                   (*QW, "resource"), registry=REGISTRY)
gpu_limited = Gauge("queueworker_gpu_limited", "1 when free GPUs cap the replicas.", QW,
                    registry=REGISTRY)
scale_events = Counter("queueworker_scale_events_total", "Replica changes made.",
                       (*QW, "direction", "reason"), registry=REGISTRY)
decision_duration = Histogram("queueworker_decision_duration_seconds",
                              "Time to observe and decide, per poll.", QW, registry=REGISTRY,
                              buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                       0.5, 1, 2.5))
reconcile_duration = Histogram("queueworker_reconcile_duration_seconds",
                               "Time to reconcile the worker Deployment.", QW,
                               registry=REGISTRY)
redis_errors = Counter("queueworker_redis_errors_total", "Failed Redis reads.", QW,
                       registry=REGISTRY)
api_errors = Counter("queueworker_api_errors_total", "Failed Kubernetes API calls.",
                     ("operation",), registry=REGISTRY)
api_requests = Counter("queueworker_api_requests_total",
                       "Kubernetes API calls made by the operator's loops (kopf's own aside).",
                       ("operation",), registry=REGISTRY)
redis_up = Gauge("queueworker_redis_up", "1 when the last Redis read worked.", QW,
                 registry=REGISTRY)
spec_valid = Gauge("queueworker_spec_valid", "1 when the spec is usable.", QW,
                   registry=REGISTRY)
last_poll = Gauge("queueworker_last_poll_timestamp_seconds", "Time of the last poll.", QW,
                  registry=REGISTRY)
# observe/batch.py: pipelines sent and the QueueWorker reads in them (reads / pipelines
# is how many loops shared one round trip).
redis_pipelines = Counter("queueworker_redis_pipelines_total",
                          "Read pipelines sent to Redis (one per Redis per poll tick).",
                          registry=REGISTRY)
redis_batched_reads = Counter("queueworker_redis_batched_reads_total",
                              "QueueWorker reads carried by those pipelines.", registry=REGISTRY)

_PER_QW = (desired_replicas, current_replicas, ready_replicas, max_replicas, gpu_limited,
           redis_up, spec_valid, last_poll)
_WITH_EXTRA = (queue_jobs, queue_oldest_age, queue_waiting_by_priority, queue_paused, gpu_free,
               gpu_needed, scale_events)


def count_api_request(operation: str) -> None:
    api_requests.labels(operation=operation).inc()


def count_api_error(operation: str) -> None:
    api_errors.labels(operation=operation).inc()


def forget(namespace: str, name: str) -> None:
    """Drop the series of a deleted QueueWorker so dashboards do not show ghosts."""
    for gauge in _PER_QW:
        try:
            gauge.remove(namespace, name)
        except KeyError:
            pass
    for metric in _WITH_EXTRA:
        for labels in list(_label_sets(metric)):
            if labels[:2] == (namespace, name):
                try:
                    metric.remove(*labels)
                except KeyError:
                    pass


def _label_sets(metric: Gauge | Counter) -> list[tuple[str, ...]]:
    # prometheus_client keeps children in a private dict; read it under its lock.
    with metric._lock:
        return [tuple(k) for k in metric._metrics]


def serve(port: int, addr: str = "0.0.0.0") -> None:
    start_http_server(port, addr=addr, registry=REGISTRY)
