"""QueueWorker specs and Redis helpers for the operator tests."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import redis

from queueworker.operator.controller.context import OperatorConfig


def fast_config() -> OperatorConfig:
    """Operator knobs for tests: quick status refresh and deletion-cost wait."""
    return OperatorConfig(status_refresh_seconds=0.5, deletion_cost_margin_seconds=0.2,
                          secret_cache_seconds=0.5, redis_timeout_seconds=1.0,
                          retry_seconds=0.5)


def spec(redis_url: str, queues: list[str] | None = None, *, poll: float = 0.5,
         template: dict[str, Any] | None = None, **scaling: Any) -> dict[str, Any]:
    return {
        "redis": {"url": redis_url},
        "queues": [{"name": q} for q in (queues or ["jobs"])],
        "template": template or {"spec": {"containers": [
            {"name": "worker", "image": "example.org/worker:1"}]}},
        "scaling": {"pollIntervalSeconds": poll, **scaling},
        "drain": {"graceSeconds": 60, "deadlineMarginSeconds": 5},
    }


def push_jobs(redis_url: str, queue: str, count: int, prefix: str = "qw") -> None:
    r = redis.Redis.from_url(redis_url)
    now_ms = int(time.time() * 1000)
    ids = [f"{now_ms:013d}-{secrets.token_hex(4)}" for _ in range(count)]
    r.lpush(f"{prefix}:{{{queue}}}:waiting", *ids)


def clear_queue(redis_url: str, queue: str, prefix: str = "qw") -> None:
    r = redis.Redis.from_url(redis_url)
    r.delete(f"{prefix}:{{{queue}}}:waiting", f"{prefix}:{{{queue}}}:inflight")


def heartbeat(redis_url: str, pod: str, state: str, prefix: str = "qw") -> None:
    r = redis.Redis.from_url(redis_url)
    now = time.time()
    worker_id = f"w-{pod}"
    doc = {"id": worker_id, "pod": pod, "state": state, "beat_at": now,
           "in_flight": [{"id": "x", "queue": "jobs", "started_at": now}] if state == "busy"
           else []}
    r.set(f"{prefix}:worker:{worker_id}", json.dumps(doc), ex=30)
    r.zadd(f"{prefix}:workers", {worker_id: now})
