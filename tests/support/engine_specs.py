"""Small builders for engine tests: a valid spec with scaling overrides, observations."""

from __future__ import annotations

import json
from typing import Any

from queueworker.engine import Decision, GPUCapacity, Observation, PodState, QueueDepth, decide
from queueworker.operator.api import QueueWorkerSpec
from queueworker.operator.validation import parse_spec


def spec(
    scaling: dict[str, Any] | None = None,
    gpu: dict[str, Any] | None = None,
    queues: list[dict[str, Any]] | None = None,
    limits: dict[str, Any] | None = None,
) -> QueueWorkerSpec:
    container: dict[str, Any] = {"name": "w", "image": "example/worker:1"}
    if limits:
        container["resources"] = {"limits": limits}
    raw: dict[str, Any] = {
        "redis": {"url": "redis://localhost:6379/0"},
        "queues": queues or [{"name": "default"}],
        "template": {"spec": {"containers": [container]}},
        "scaling": scaling or {},
    }
    if gpu is not None:
        raw["gpu"] = gpu
    return parse_spec(raw)


def obs(
    now: float,
    waiting: int = 0,
    in_flight: int = 0,
    current: int = 0,
    pods: tuple[PodState, ...] | None = None,
    gpu: GPUCapacity | None = None,
    enqueued: int | None = None,
    completed: int | None = None,
    queues_ok: bool = True,
    manual: int | None = None,
) -> Observation:
    if pods is None:
        # Busy pods first, one job each, as many as jobs in flight allow.
        pods = tuple(
            PodState(name=f"p{i}", busy=i < in_flight, in_flight=1 if i < in_flight else 0)
            for i in range(current)
        )
    depth = QueueDepth(
        name="default",
        layout="native",
        waiting=waiting,
        in_flight=in_flight,
        enqueued_total=enqueued,
        completed_total=completed,
    )
    return Observation(
        now=now,
        queues=(depth,) if queues_ok else None,
        current_replicas=current,
        ready_replicas=current,
        pods=pods,
        gpu=gpu,
        error=None if queues_ok else "connection refused",
        manual_replicas=manual,
    )


def feed(s: QueueWorkerSpec, steps: list[dict[str, Any]]) -> list[Decision]:
    """Feed observations (`obs` keywords) in order, carrying memory and the replica
    count from one decision to the next as the operator does."""
    memory: dict[str, Any] | None = None
    current = steps[0].get("current", 0)
    out = []
    for step in steps:
        kw = dict(step)
        kw.setdefault("current", current)
        d = decide(s, obs(**kw), memory)
        json.dumps(d.memory)  # must stay JSON-safe: the operator persists it
        memory, current = d.memory, d.desired
        out.append(d)
    return out

