"""Prometheus metrics of ``queueworker api`` (served at ``/metrics``, without auth).

=====================================================  =========  =======================
name                                                   type       labels
=====================================================  =========  =======================
queueworker_api_requests_total                         counter    method, route, status
queueworker_api_request_duration_seconds               histogram  method, route
queueworker_api_auth_failures_total                    counter    reason
queueworker_api_rate_limited_total                     counter
queueworker_api_jobs_enqueued_total                    counter    queue
queueworker_api_open_streams                           gauge      (event streams, waits)
=====================================================  =========  =======================

``route`` is the route's template (``/v1/jobs/{job_id}``), never the raw path, so a
scan of random URLs cannot grow the label set. Each app has its own registry (several
apps in one process, as in tests, do not clash).
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

METRIC_NAMES = (
    "queueworker_api_requests_total",
    "queueworker_api_request_duration_seconds",
    "queueworker_api_auth_failures_total",
    "queueworker_api_rate_limited_total",
    "queueworker_api_jobs_enqueued_total",
    "queueworker_api_open_streams",
)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("queueworker_api_requests_total", "HTTP requests answered",
                                ["method", "route", "status"], registry=r)
        self.duration = Histogram("queueworker_api_request_duration_seconds",
                                  "time to the response's first byte",
                                  ["method", "route"], registry=r,
                                  buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 60))
        self.auth_failures = Counter("queueworker_api_auth_failures_total",
                                     "requests refused for a missing or invalid token",
                                     ["reason"], registry=r)
        self.rate_limited = Counter("queueworker_api_rate_limited_total",
                                    "requests refused by the per-user rate limit", registry=r)
        self.enqueued = Counter("queueworker_api_jobs_enqueued_total",
                                "jobs enqueued through the API", ["queue"], registry=r)
        self.open_streams = Gauge("queueworker_api_open_streams",
                                  "event streams and waits open now", registry=r)


class MetricsMiddleware:
    """Counts every response by its route template, status and time to the first byte."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        method = scope["method"]

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = _route(scope)
                self.metrics.requests.labels(method, route, str(message["status"])).inc()
                self.metrics.duration.labels(method, route).observe(time.perf_counter() - start)
            await send(message)

        await self.app(scope, receive, counted)


def _route(scope: Scope) -> str:
    """The matched route's template: Starlette's router puts the route in the (shared)
    scope before it calls the endpoint, so it is there when the response starts."""
    route = scope.get("route")
    return str(getattr(route, "path", "unmatched"))
