"""Prometheus metrics of one worker process, and its HTTP endpoint.

The worker's metric names (the contract with dashboards and alerts; a test
checks this list against what the endpoint serves):

=================================================  =========  ========================
name                                               type       labels
=================================================  =========  ========================
queueworker_worker_jobs_started_total              counter    queue
queueworker_worker_jobs_completed_total            counter    queue
queueworker_worker_jobs_failed_total               counter    queue, reason
queueworker_worker_jobs_retried_total              counter    queue
queueworker_worker_jobs_handed_back_total          counter    queue
queueworker_worker_jobs_released_total             counter    queue  (``Release``: control.py)
queueworker_worker_job_duration_seconds            histogram  queue
queueworker_worker_job_wait_seconds                histogram  queue  (enqueue -> start)
queueworker_worker_jobs_in_flight                  gauge
queueworker_worker_busy_ratio                      gauge      (in flight / concurrency)
queueworker_worker_last_job_timestamp_seconds      gauge      queue (a job ended, any way)
queueworker_worker_concurrency                     gauge
queueworker_worker_prefetch                        gauge      (jobs taken beyond free slots)
queueworker_worker_queue_waiting_jobs              gauge      queue, priority (at each beat)
queueworker_worker_state                           gauge      state (1 for the current)
queueworker_worker_leases_recovered_total          counter    (by this worker's reaper)
queueworker_worker_redis_errors_total              counter
queueworker_worker_gpu_memory_used_bytes           gauge      gpu  (only with a GPU)
queueworker_worker_gpu_memory_total_bytes          gauge      gpu
queueworker_worker_gpu_utilization_ratio           gauge      gpu  (0..1)
=================================================  =========  ========================

``reason`` is one of ``exception``, ``timeout``, ``bad_payload``,
``no_job_hash``, ``bad_entry``, ``undecodable`` (what a FETCH found in a queue
that is no runnable job: filed in the failed store, see scripts.py ``junk``),
``unknown_handler``, ``failed_by_handler`` (``Fail``), ``bad_result`` (not JSON
or over the limit), ``max_exceptions`` (final failures; a retried failure
counts in retried).
``jobs_failed_total`` is the dead-letter count: every job it counts is in the
failed store (``queueworker failed list``).

The HTTP server answers ``/metrics``, ``/healthz`` (also ``/readyz``): 200
while the worker runs and its last Redis round trip succeeded recently (idle
or busy alike), 503 otherwise (not yet connected, Redis unreachable,
draining); and ``/livez``: 200 while the process serves HTTP at all.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

STATES = ("starting", "idle", "busy", "draining", "stopped")
FAIL_REASONS = ("exception", "timeout", "bad_payload", "unknown_handler", "no_job_hash",
                "bad_entry", "undecodable", "failed_by_handler",
                "bad_result", "max_exceptions")

METRIC_NAMES = (
    "queueworker_worker_jobs_started_total",
    "queueworker_worker_jobs_completed_total",
    "queueworker_worker_jobs_failed_total",
    "queueworker_worker_jobs_retried_total",
    "queueworker_worker_jobs_handed_back_total",
    "queueworker_worker_jobs_released_total",
    "queueworker_worker_job_duration_seconds",
    "queueworker_worker_job_wait_seconds",
    "queueworker_worker_jobs_in_flight",
    "queueworker_worker_busy_ratio",
    "queueworker_worker_last_job_timestamp_seconds",
    "queueworker_worker_concurrency",
    "queueworker_worker_prefetch",
    "queueworker_worker_queue_waiting_jobs",
    "queueworker_worker_state",
    "queueworker_worker_leases_recovered_total",
    "queueworker_worker_redis_errors_total",
)
GPU_METRIC_NAMES = (
    "queueworker_worker_gpu_memory_used_bytes",
    "queueworker_worker_gpu_memory_total_bytes",
    "queueworker_worker_gpu_utilization_ratio",
)

_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)
_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400)


class _PerQueue:
    """One queue's metrics. The five a job touches on its way (started, completed, wait,
    duration, last job) are plain numbers here, written by the worker's loop only and read
    at scrape by ``_HotCollector``: a prometheus_client child takes a lock per update (and a
    histogram one per bucket), ~2 µs a job in all, against ~0.3 µs here. The rare ones
    (failed, retried, ...) are prometheus_client children, resolved once per queue."""

    def __init__(self, m: WorkerMetrics, queue: str) -> None:
        self.started = _Count()
        self.completed = _Count()
        self.wait = _Buckets(_WAIT_BUCKETS)
        self.duration = _Buckets(_DURATION_BUCKETS)
        self.last_job = 0.0
        self.created = time.time()
        self.retried = m.retried.labels(queue)
        self.handed_back = m.handed_back.labels(queue)
        self.released = m.released.labels(queue)
        self.failed = {r: m.failed.labels(queue, r) for r in FAIL_REASONS}

    def job_started(self, wait: float | None) -> None:
        self.started.value += 1
        if wait is not None:
            self.wait.observe(wait)

    def job_ended(self, duration: float, at: float) -> None:
        self.duration.observe(duration)
        self.last_job = at


class _Count:
    """A counter's value; one writer thread (the worker's loop)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class _Buckets:
    """A histogram's counts per bucket (not cumulative) and sum; one writer thread."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> tuple[list[tuple[str, float]], float]:
        counts = list(self.counts)  # one copy: a consistent view for the scrape
        out, total = [], 0
        for bound, n in zip((*map(floatToGoString, self.bounds), "+Inf"), counts, strict=True):
            total += n
            out.append((bound, float(total)))
        return out, self.sum


class _HotCollector(Collector):
    """Exposes ``_PerQueue``'s plain numbers under the metric names of METRIC_NAMES."""

    def __init__(self, m: WorkerMetrics) -> None:
        self.m = m

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        started, completed, duration, wait, last = self._families()
        for name, q in list(self.m._queues.items()):
            started.add_metric([name], q.started.value, created=q.created)
            completed.add_metric([name], q.completed.value, created=q.created)
            buckets, total = q.duration.cumulative()
            duration.add_metric([name], buckets, total)
            buckets, total = q.wait.cumulative()
            wait.add_metric([name], buckets, total)
            last.add_metric([name], q.last_job)
        yield from (started, completed, duration, wait, last)

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, CounterMetricFamily, HistogramMetricFamily,
                             HistogramMetricFamily, GaugeMetricFamily]:
        p = "queueworker_worker_"
        started = CounterMetricFamily(p + "jobs_started", "Jobs a handler started.",
                                      labels=["queue"])
        completed = CounterMetricFamily(p + "jobs_completed", "Jobs finished and acked.",
                                        labels=["queue"])
        duration = HistogramMetricFamily(p + "job_duration_seconds", "Handler run time.",
                                         labels=["queue"])
        wait = HistogramMetricFamily(p + "job_wait_seconds", "Enqueue to start.",
                                     labels=["queue"])
        last = GaugeMetricFamily(p + "last_job_timestamp_seconds",
                                 "When a job of this queue last ended (done, retried or failed).",
                                 labels=["queue"])
        return started, completed, duration, wait, last


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        p = "queueworker_worker_"
        # jobs_started, jobs_completed, job_duration_seconds, job_wait_seconds and
        # last_job_timestamp_seconds: _HotCollector (plain numbers per queue, _PerQueue).
        self._queues: dict[str, _PerQueue] = {}
        r.register(_HotCollector(self))
        self.failed = Counter(p + "jobs_failed", "Jobs moved to the failed store.",
                              ["queue", "reason"], registry=r)
        self.retried = Counter(p + "jobs_retried", "Failed attempts scheduled for a retry.",
                               ["queue"], registry=r)
        self.handed_back = Counter(p + "jobs_handed_back",
                                   "Jobs handed back to their queue on drain.", ["queue"],
                                   registry=r)
        self.released = Counter(p + "jobs_released", "Jobs their handler put back on their "
                                "queue (Release), not counted as a failed try.", ["queue"],
                                registry=r)
        self.in_flight = Gauge(p + "jobs_in_flight", "Jobs running now.", registry=r)
        self.concurrency = Gauge(p + "concurrency", "Jobs this worker runs at once.",
                                 registry=r)
        self.prefetch = Gauge(p + "prefetch", "Jobs it may take beyond its free slots now "
                              "(adaptive: only for jobs of a few ms; fetcher.py).", registry=r)
        self.waiting = Gauge(p + "queue_waiting_jobs", "Jobs waiting in its queues, per "
                             "priority, as its last heartbeat read them.", ["queue", "priority"],
                             registry=r)
        # The runtime binds it to its running set (read at scrape, nothing in the hot path).
        self.busy_ratio = Gauge(p + "busy_ratio", "Jobs running / concurrency (0..1).",
                                registry=r)
        self.state = Gauge(p + "state", "1 for the worker's current state.", ["state"],
                           registry=r)
        self.leases_recovered = Counter(p + "leases_recovered",
                                        "Expired leases put back by this worker's reaper.",
                                        registry=r)
        self.redis_errors = Counter(p + "redis_errors", "Failed Redis round trips.",
                                    registry=r)
        self.set_state("starting")

    def queue(self, name: str) -> _PerQueue:
        q = self._queues.get(name)
        if q is None:
            q = self._queues[name] = _PerQueue(self, name)
        return q

    def set_state(self, state: str) -> None:
        for s in STATES:
            self.state.labels(s).set(1 if s == state else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def serve(metrics: WorkerMetrics, port: int, healthy: Callable[[], tuple[bool, str]],
          host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Serve /metrics and /healthz on a daemon thread; returns the server (``.shutdown()``)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, metrics.render(), CONTENT_TYPE_LATEST)
            elif path == "/livez":
                self._send(200, b"alive\n", "text/plain")
            elif path in ("/healthz", "/readyz"):
                ok, why = healthy()
                self._send(200 if ok else 503, (why + "\n").encode(), "text/plain")
            else:
                self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
