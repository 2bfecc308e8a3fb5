"""Quiet first, the part both worlds share: the registry reports it decides on, the
quiet commands, and the decision it returns (the operator's controller/act.py
`quiet_first` sends the commands with redis.asyncio, local mode's runner.py with
redis-py; engine/quiet.py decides).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import redis

from queueworker.common.log import log_event
from queueworker.engine import quiet
from queueworker.engine.types import Decision
from queueworker.observe.busy import ADAPTERS, BusyReading
from queueworker.observe.busy.base import Adapter, PodRef, WorkerReport, group
from queueworker.observe.layouts.base import Command
from queueworker.operator.api import QueueSpec

logger = logging.getLogger(__name__)

# A process whose report is this much older than its pod's newest one is a ghost
# (SIGKILLed; Sidekiq's hash outlives it by up to 60 s): it will never say quiet.
GHOST_SECONDS = 30.0


@dataclass(frozen=True)
class Step:
    plan: quiet.QuietPlan
    commands: dict[str, list[Command]]  # pod -> the commands that quiet it


def adapters(queues: Sequence[QueueSpec]) -> dict[str, Adapter]:
    """Registry key -> adapter, for the queues whose library can be quieted."""
    return {ADAPTERS[q.layout].registry(q): ADAPTERS[q.layout] for q in queues
            if q.layout in ADAPTERS and ADAPTERS[q.layout].can_quiet}


def quietable(reports: Sequence[WorkerReport]) -> quiet.Quietable:
    newest = max((r.beat_at or 0.0) for r in reports)
    live = [r for r in reports if (r.beat_at or 0.0) >= newest - GHOST_SECONDS]
    return quiet.Quietable(quiet=all(r.quiet for r in live),
                           busy=any(r.busy or r.running > 0 for r in live))


def step(queues: Sequence[QueueSpec], reading: BusyReading, pods: Sequence[PodRef],
         live: Sequence[str], decision: Decision, current: int,
         memory: quiet.Memory, now: float) -> Step | None:
    """The plan for this poll and the commands to send; None when no queue's library
    can be quieted (the decision stands as it is)."""
    by_registry = adapters(queues)
    if not by_registry:
        return None
    reports = [r for r in reading.reports if r.registry in by_registry]
    by_pod = group(reports, pods)
    p = quiet.plan(desired=decision.desired, current=current, victims=decision.remove_first,
                   live=live, workers={pod: quietable(rs) for pod, rs in by_pod.items()},
                   memory=memory, now=now)
    commands = {pod: [c for r in by_pod[pod] for c in by_registry[r.registry].quiet(r) or ()]
                for pod in p.quiet}
    return Step(p, commands)


def sent(s: Step, replies: Sequence[Any]) -> list[str]:
    """The pods quieted, from the pipeline's replies (one per command, or a single
    exception when the pipeline failed): all of them, or none when anything failed
    (logged; they are tried again at the next poll)."""
    pods = ",".join(sorted(s.commands))
    failed = next((r for r in replies if isinstance(r, Exception)), None)
    if failed is not None:
        log_event(logger, "workers.quiet_failed", logging.WARNING, pods=pods,
                  error=f"{type(failed).__name__}: {failed}")
        return []
    log_event(logger, "workers.quieted", pods=pods)
    return sorted(s.commands)


def send_sync(client: redis.Redis, s: Step) -> list[str]:
    """Send the quiet commands in one pipeline (local mode); the pods quieted."""
    if not s.commands:
        return []
    pipe = client.pipeline(transaction=False)
    for cmd in (c for cs in s.commands.values() for c in cs):
        pipe.execute_command(*cmd.args)  # type: ignore[no-untyped-call]
    try:
        replies: list[Any] = pipe.execute(raise_on_error=False)
    except (redis.RedisError, OSError) as exc:
        replies = [exc]
    return sent(s, replies)


def remember(s: Step, done: Sequence[str]) -> quiet.Memory:
    """The memory to keep for the next poll (a pod whose quiet failed is not
    quieted: it is tried again)."""
    m = s.plan.memory
    return quiet.Memory({pod: at for pod, at in m.quieted.items()
                         if pod not in s.plan.quiet or pod in done}, dict(m.released))


def outcome(decision: Decision, s: Step, done: Sequence[str]) -> Decision:
    """The decision to act on: the replicas to set now and only the pods ready to go
    as `remove_first` (marked to go first)."""
    p = s.plan
    if p.replicas == decision.desired and p.ready == decision.remove_first:
        return decision
    why = (f"; quiet first: {len(p.ready)} pods quiet and idle go now"
           + (f", {len(p.waiting) + len(done)} quieted finish their jobs"
              if p.waiting or done else ""))
    return replace(decision, desired=p.replicas, remove_first=p.ready,
                   reason=decision.reason + why)
