"""Local mode exports the operator's own Prometheus metrics (`queueworker.operator.
metrics`): same names and labels as in a cluster, so dashboards and alerts can be
tried against a laptop. The namespace label is ``local``.
"""

from __future__ import annotations

import re

from queueworker.engine.types import QueueDepth
from queueworker.operator import metrics

NAMESPACE = "local"


def reason_label(reason: str) -> str:
    """A low-cardinality label from a free-text reason: its first words, no numbers."""
    head = re.split(r"[:;(,=]", reason, maxsplit=1)[0]
    words = re.findall(r"[A-Za-z][A-Za-z_-]*", head)[:3]
    return "_".join(w.lower() for w in words) or "unknown"


class LocalMetrics:
    def __init__(self, name: str) -> None:
        self.name = name

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        metrics.serve(port, addr=addr)

    def replicas(self, desired: int, current: int, ready: int, maximum: int) -> None:
        metrics.desired_replicas.labels(NAMESPACE, self.name).set(desired)
        metrics.current_replicas.labels(NAMESPACE, self.name).set(current)
        metrics.ready_replicas.labels(NAMESPACE, self.name).set(ready)
        metrics.max_replicas.labels(NAMESPACE, self.name).set(maximum)

    def queues(self, depths: tuple[QueueDepth, ...] | None) -> None:
        metrics.redis_up.labels(NAMESPACE, self.name).set(0 if depths is None else 1)
        if depths is None:
            metrics.redis_errors.labels(NAMESPACE, self.name).inc()
            return
        for q in depths:
            for state, value in (("waiting", q.waiting), ("in_flight", q.in_flight),
                                 ("delayed", q.delayed)):
                metrics.queue_jobs.labels(NAMESPACE, self.name, q.name, state).set(value)
            metrics.queue_oldest_age.labels(NAMESPACE, self.name, q.name).set(
                q.oldest_age_seconds or 0.0)
            metrics.queue_paused.labels(NAMESPACE, self.name, q.name).set(1 if q.paused else 0)

    def scale_event(self, direction: str, reason: str) -> None:
        metrics.scale_events.labels(NAMESPACE, self.name, direction, reason_label(reason)).inc()

    def polled(self, at: float) -> None:
        metrics.last_poll.labels(NAMESPACE, self.name).set(at)
