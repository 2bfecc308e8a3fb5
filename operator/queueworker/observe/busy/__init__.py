"""Busy / idle / unknown per pod for other libraries' workers, read in the poll's pipeline.

One adapter per library whose workers register themselves in Redis (`rq.py`,
`sidekiq.py`, behind `base.Adapter`), BullMQ's `pb` job field (`bullmq.py`,
named workers), Dramatiq's per-broker ack sets and arq's health records where
the app names them after the pod (`dramatiq.py`, `arq.py`: opt-in, `OPT_IN`),
and CLIENT LIST for the libraries whose idle workers block
waiting for work (`clients.py`: Laravel, BullMQ). `read_sync` / `aread` put the adapters'
commands into the same pipeline as the queue depths (observe/layouts/read.py),
so busy pods cost no extra round trip; a registry that cannot be read leaves
its pods unknown and never spoils the depths. Celery keeps no worker state
in Redis: `celery.py` listens to its heartbeat events instead (a pub/sub
subscription the caller runs, `LISTENED`). Pods nothing reports on (Dramatiq
and arq workers not named after their pod, plain lists, a Laravel or BullMQ
worker busy or between polls) are *unknown*: the engine keeps the replicas
the in-flight count needs, and removes pods known idle before unknown ones (heartbeats.pod_state).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio

from queueworker.engine.types import QueueDepth
from queueworker.observe import depths, pipeline
from queueworker.observe.busy import clients
from queueworker.observe.busy.arq import ArqAdapter
from queueworker.observe.busy.base import Adapter, PodRef, WorkerReport, assign
from queueworker.observe.busy.bullmq import BullMQAdapter, hide_named_idle
from queueworker.observe.busy.dramatiq import DramatiqAdapter
from queueworker.observe.busy.rq import RQAdapter
from queueworker.observe.busy.sidekiq import SidekiqAdapter
from queueworker.observe.heartbeats import PodBeat
from queueworker.observe.layouts import read as layouts_read
from queueworker.observe.layouts.base import Command, LayoutError
from queueworker.operator.api import QueueLayout, QueueSpec

__all__ = ["ADAPTERS", "LISTENED", "OPT_IN", "BusyReading", "PodRef", "WorkerReport", "aread",
           "covered", "describe", "listened", "plan", "pod_refs", "read_sync"]

ADAPTERS: dict[QueueLayout, Adapter] = {a.layout: a for a in (
    RQAdapter(), SidekiqAdapter(), BullMQAdapter(), DramatiqAdapter(), ArqAdapter())}
# Adapters that see only workers the app names after their pod (docs/workers/).
OPT_IN: frozenset[QueueLayout] = frozenset({QueueLayout.dramatiq, QueueLayout.arq})
CLIENTS = clients.ClientsAdapter()

# Layouts whose busy state comes from a subscription (celery.CeleryHeartbeats), not a read.
LISTENED: frozenset[QueueLayout] = frozenset({QueueLayout.celery})

Plan = list[tuple[Adapter, Command]]


@dataclass(frozen=True)
class BusyReading:
    """What the worker registries said this poll."""

    beats: dict[str, PodBeat] = field(default_factory=dict)  # pods whose state is known
    reports: tuple[WorkerReport, ...] = ()  # every registered worker, mapped or not
    errors: tuple[str, ...] = ()  # registries that could not be read

    def unknown(self, pods: Sequence[str]) -> list[str]:
        """Pods whose busy state nobody reported (say "unknown" in status)."""
        return [p for p in pods if p not in self.beats]

    def heard(self, reports: Sequence[WorkerReport], pods: Sequence[PodRef]) -> BusyReading:
        """This reading plus reports that came another way (Celery's heartbeat events)."""
        if not reports:
            return self
        return BusyReading({**self.beats, **assign(reports, pods)},
                           (*self.reports, *reports), self.errors)


def pod_refs(pods: Iterable[Mapping[str, Any]]) -> list[PodRef]:
    """The operator's pod index entries as PodRefs: by name (a pod's hostname is its
    name unless its spec sets `hostname`) and IP; pids mean nothing across pods."""
    return [PodRef(str(p["name"]), ip=str(p["ip"]) if p.get("ip") else None) for p in pods]


def describe(reading: BusyReading, pods: Sequence[str], queues: Sequence[QueueSpec]) -> str:
    """One line for status and logs: whose busy state is known, and why not."""
    missing = sorted({q.layout.value for q in queues if q.layout not in ADAPTERS
                      and q.layout not in LISTENED and q.layout not in clients.LAYOUTS
                      and q.layout != QueueLayout.native})
    partial = sorted({q.layout.value for q in queues if q.layout in clients.LAYOUTS
                      and q.layout not in ADAPTERS})
    unknown = reading.unknown(pods)
    parts = [f"busy known for {len(pods) - len(unknown)} of {len(pods)} pods"]
    if missing:
        parts.append(f"no busy adapter for layout {', '.join(missing)}")
    if partial:
        parts.append(f"{', '.join(partial)}: idle only when blocked waiting (CLIENT LIST)")
    opt_in = sorted({q.layout.value for q in queues if q.layout in OPT_IN})
    if opt_in and unknown:
        parts.append(f"{', '.join(opt_in)}: known only for workers named after their pod "
                     "(opt-in, docs/workers/)")
    if reading.errors:
        parts.append("; ".join(reading.errors))
    return "; ".join(parts)


def listened(queues: Sequence[QueueSpec]) -> bool:
    """True when a queue's busy state comes from a subscription (Celery)."""
    return any(q.layout in LISTENED for q in queues)


def covered(queues: Sequence[QueueSpec]) -> bool:
    """True when every queue's library has a busy adapter."""
    return bool(queues) and all(q.layout in ADAPTERS for q in queues)


def plan(queues: Sequence[QueueSpec], pods: Sequence[PodRef] = ()) -> Plan:
    """One command per worker registry (queues of one library share it); an adapter
    that reads a key per pod (arq) reads the keys of `pods`, and nothing without."""
    out: Plan = []
    seen: set[tuple[QueueLayout, str]] = set()
    for q in queues:
        adapter = ADAPTERS.get(q.layout)
        if (adapter is None or (q.layout, adapter.registry(q)) in seen
                or (adapter.per_pod and not pods)):
            continue
        seen.add((q.layout, adapter.registry(q)))
        out.append((adapter, adapter.command_for(q, pods)))
    if any(q.layout in clients.LAYOUTS for q in queues):
        out.append((CLIENTS, CLIENTS.command(queues[0])))
    return out


def collect(p: Plan, replies: Sequence[Any], pods: Sequence[PodRef]) -> BusyReading:
    reports: list[WorkerReport] = []
    errors: list[str] = []
    for (adapter, cmd), reply in zip(p, replies, strict=True):
        try:
            if isinstance(reply, Exception):
                raise LayoutError(cmd.key, str(reply))
            reports += adapter.parse(reply, cmd.key)
        except LayoutError as exc:
            errors.append(f"{adapter.label or adapter.layout.value + ' workers'}: {exc}")
    reports = hide_named_idle(reports)
    return BusyReading(assign(reports, pods), tuple(reports), tuple(errors))


def _split(queues: Sequence[QueueSpec], now: float, pods: Sequence[PodRef]
           ) -> tuple[layouts_read.Plan, Plan, list[Command]]:
    depth_plan = layouts_read.plan(queues, now)
    busy_plan = plan(queues, pods)
    cmds = [c for _, _, cs in depth_plan for c in cs] + [c for _, c in busy_plan]
    return depth_plan, busy_plan, cmds


def read_sync(client: redis.Redis, queues: Sequence[QueueSpec], now: float,
              pods: Sequence[PodRef]) -> tuple[tuple[QueueDepth, ...], BusyReading]:
    """Queue depths (depths.whole: QueueReadError when a queue fails) and busy pods,
    in one round trip. Connection errors raise as they are."""
    depth_plan, busy_plan, cmds = _split(queues, now, pods)
    replies = pipeline.execute(client, [c.args for c in cmds])
    n = len(cmds) - len(busy_plan)
    reading = collect(busy_plan, replies[n:], pods)
    return depths.whole(layouts_read.collect(depth_plan, replies[:n], now)), reading


async def aread(client: redis.asyncio.Redis, queues: Sequence[QueueSpec], now: float,
                pods: Sequence[PodRef]) -> tuple[tuple[QueueDepth, ...], BusyReading]:
    """The same as `read_sync`, for redis.asyncio (the operator's observe step)."""
    depth_plan, busy_plan, cmds = _split(queues, now, pods)
    replies = await pipeline.aexecute(client, [c.args for c in cmds])
    n = len(cmds) - len(busy_plan)
    reading = collect(busy_plan, replies[n:], pods)
    return depths.whole(layouts_read.collect(depth_plan, replies[:n], now)), reading
