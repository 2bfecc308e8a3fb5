"""The operator's seams to the engine, the depth readers and GPU accounting.

The poller (poller.py) calls only these functions, so the operator's loop does
not depend on how the engine, the layout readers or the GPU capacity code are
organised. Heartbeat reading lives here too: it is operator-side, reading the
native worker's keys (queueworker.worker.keys).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio

from queueworker.operator import api
from queueworker.operator.engine.types import (
    Decision,
    GPUCapacity,
    Observation,
    PodState,
    QueueDepth,
)

HEARTBEAT_STALE_SECONDS = 30.0


# ------------------------------------------------------------------------- decide


def decide(spec: api.QueueWorkerSpec, obs: Observation, memory: dict[str, Any] | None
           ) -> Decision:
    """Minimal stand-in for queueworker.operator.engine.decide until it lands."""
    s = spec.scaling
    mem = dict(memory or {})
    current = obs.current_replicas
    if s.paused:
        desired = obs.manual_replicas if obs.manual_replicas is not None else current
        return _decision(desired, f"paused: spec.replicas -> {desired}", obs, mem)
    if obs.queues is None:
        desired = s.fallback_replicas if s.fallback_replicas is not None else current
        return _decision(desired, f"queues unreadable: fallback -> {desired}", obs, mem)
    jobs = sum(q.waiting + q.in_flight for q in obs.queues)
    want = -(-jobs // s.target_backlog_per_replica)
    want = min(max(want, s.min_replicas), s.max_replicas)
    if want < current:
        since = float(mem.get("lower_since", obs.now))
        mem["lower_since"] = since
        if obs.now - since < s.scale_down.stabilization_seconds:
            want = current
    else:
        mem.pop("lower_since", None)
    limited = False
    if obs.gpu is not None and want > obs.gpu.max_replicas and spec.gpu.cap_to_free_capacity:
        want, limited = max(obs.gpu.max_replicas, s.min_replicas), True
    return _decision(want, f"backlog {jobs} -> {want}", obs, mem, limited)


def _decision(desired: int, reason: str, obs: Observation, mem: dict[str, Any],
              gpu_limited: bool = False) -> Decision:
    current = obs.current_replicas
    idle_first = sorted((p for p in obs.pods if not p.terminating),
                        key=lambda p: (p.busy, p.ready, p.name))
    remove = tuple(p.name for p in idle_first[: max(0, current - desired)])
    direction = "up" if desired > current else "down" if desired < current else "none"
    return Decision(desired=desired, reason=reason, remove_first=remove,
                    gpu_limited=gpu_limited, memory=mem, direction=direction)


# -------------------------------------------------------------------------- depth


async def read_depths(client: redis.asyncio.Redis, queues: Sequence[api.QueueSpec],
                      now: float) -> tuple[QueueDepth, ...]:
    """Stand-in reader (native and list layouts) until queueworker.operator.layouts lands."""
    pipe = client.pipeline(transaction=False)
    for q in queues:
        if q.layout == api.QueueLayout.native:
            p = q.key_prefix or "qw"
            pipe.llen(f"{p}:{{{q.name}}}:waiting")
            pipe.zcard(f"{p}:{{{q.name}}}:inflight")
            pipe.zcard(f"{p}:{{{q.name}}}:delayed")
            pipe.lindex(f"{p}:{{{q.name}}}:waiting", -1)
        elif q.layout == api.QueueLayout.list:
            pipe.llen(q.name)
        else:
            raise ValueError(f"layout {q.layout.value!r} is not supported yet")
    results = list(await pipe.execute())
    out: list[QueueDepth] = []
    for q in queues:
        if q.layout == api.QueueLayout.native:
            waiting, inflight, delayed, oldest = results[:4]
            del results[:4]
            age = None
            if oldest:
                head = (oldest.decode() if isinstance(oldest, bytes) else str(oldest))[:13]
                if head.isdigit():
                    age = max(0.0, now - int(head) / 1000.0)
            out.append(QueueDepth(q.name, q.layout.value, int(waiting), int(inflight),
                                  int(delayed), age))
        else:
            out.append(QueueDepth(q.name, q.layout.value, int(results.pop(0)), 0))
    return tuple(out)


# --------------------------------------------------------------------- heartbeats


@dataclass(frozen=True)
class Heartbeat:
    pod: str
    state: str
    in_flight: int


async def read_heartbeats(client: redis.asyncio.Redis, prefix: str, now: float | None = None
                          ) -> dict[str, Heartbeat]:
    """Pod name -> latest heartbeat of the native workers (stale ones ignored)."""
    now = time.time() if now is None else now
    ids = await client.zrangebyscore(f"{prefix}:workers", now - HEARTBEAT_STALE_SECONDS, "+inf")
    if not ids:
        return {}
    names = [i.decode() if isinstance(i, bytes) else str(i) for i in ids]
    raw = await client.mget([f"{prefix}:worker:{i}" for i in names])
    out: dict[str, Heartbeat] = {}
    for item in raw:
        if not item:
            continue
        try:
            doc = json.loads(item)
        except ValueError:
            continue
        if not isinstance(doc, dict) or not doc.get("pod"):
            continue
        in_flight = doc.get("in_flight")
        count = len(in_flight) if isinstance(in_flight, list) else 0
        out[str(doc["pod"])] = Heartbeat(str(doc["pod"]), str(doc.get("state", "")), count)
    return out


def pod_states(pods: Iterable[Mapping[str, Any]], beats: Mapping[str, Heartbeat]
               ) -> tuple[PodState, ...]:
    """PodState per pod from the pod index and the heartbeats.

    A pod with no heartbeat counts as idle: it is either starting or runs a
    worker that does not beat, and either way holds no job we know of.
    """
    out = []
    for pod in pods:
        beat = beats.get(str(pod["name"]))
        busy = beat is not None and (beat.state in ("busy", "draining") or beat.in_flight > 0)
        out.append(PodState(
            name=str(pod["name"]), busy=busy, in_flight=beat.in_flight if beat else 0,
            ready=bool(pod.get("ready")), terminating=bool(pod.get("terminating")),
        ))
    return tuple(sorted(out, key=lambda p: p.name))


# ---------------------------------------------------------------------------- gpu


def gpu_capacity(
    resource: str,
    per_replica: int,
    nodes: Iterable[Mapping[str, Any]],
    used_by_node: Mapping[str, int],
    own_pods: Iterable[Mapping[str, Any]],
    node_selector: Mapping[str, str] | None = None,
) -> GPUCapacity:
    """Free units on eligible nodes and how many replicas they (and ours) can hold."""
    free = 0
    for node in nodes:
        if not node.get("schedulable", True) or not node.get("ready", True):
            continue
        labels = node.get("labels") or {}
        if node_selector and any(labels.get(k) != v for k, v in node_selector.items()):
            continue
        alloc = int((node.get("allocatable") or {}).get(resource, 0))
        free += max(0, alloc - int(used_by_node.get(str(node.get("name")), 0)))
    placed = pending = 0
    for pod in own_pods:
        if pod.get("terminating"):
            continue
        if pod.get("node"):
            placed += 1
        else:
            pending += 1
    per = max(1, per_replica)
    return GPUCapacity(resource_name=resource, per_replica=per,
                       max_replicas=placed + free // per, free=free, pending=pending)
