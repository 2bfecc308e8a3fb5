"""What the operator reads each poll, through the shared observe rules.

The controller loop (queueworker.operator.controller.loop) calls these with
redis.asyncio: queue depths (depths.py: one unreadable queue makes the whole
reading unusable), heartbeats and PodStates (heartbeats.py: the one busy
rule), and the engine's ``decide``. Local mode reads the same way through
reading_sync.py. ``aread_batched`` is the same read as ``busy.aread`` sent through a
``batch.Batcher``: every QueueWorker on one Redis shares the poll's pipeline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from queueworker import engine
from queueworker.engine.types import PodState, QueueDepth
from queueworker.observe import busy, depths
from queueworker.observe.batch import Batcher
from queueworker.observe.depths import QueueReadError
from queueworker.observe.depths import read as read_depths
from queueworker.observe.heartbeats import PodBeat, pod_state
from queueworker.observe.heartbeats import aread as read_heartbeats
from queueworker.observe.layouts import read as layouts_read
from queueworker.observe.layouts.native import heartbeat_prefix
from queueworker.operator.api import QueueSpec

__all__ = ["Heartbeat", "QueueReadError", "aread_batched", "decide", "heartbeat_prefix",
           "pod_states", "read_depths", "read_heartbeats"]

decide = engine.decide
Heartbeat = PodBeat  # the name the controller loop knows it by


def pod_states(pods: Iterable[Mapping[str, Any]], beats: Mapping[str, PodBeat],
               now: float | None = None) -> tuple[PodState, ...]:
    """PodState per pod of the pod index (name, ready, terminating), by name."""
    out = [pod_state(str(pod["name"]), beats.get(str(pod["name"])),
                     ready=bool(pod.get("ready")), terminating=bool(pod.get("terminating")),
                     now=now)
           for pod in pods]
    return tuple(sorted(out, key=lambda p: p.name))


async def aread_batched(batcher: Batcher, queues: Sequence[QueueSpec], now: float,
                        pods: Sequence[busy.PodRef]
                        ) -> tuple[tuple[QueueDepth, ...], busy.BusyReading]:
    """Queue depths (``depths.whole``) and the worker registries, as ``busy.aread``,
    in the Redis's shared pipeline of this poll tick; the replies are this
    QueueWorker's alone. Connection errors raise as they are."""
    depth_plan = layouts_read.plan(queues, now)
    busy_plan = busy.plan(queues, pods)
    cmds = [c.args for _, _, cs in depth_plan for c in cs] + [c.args for _, c in busy_plan]
    replies = await batcher.execute(cmds)
    n = len(cmds) - len(busy_plan)
    found = busy.collect(busy_plan, replies[n:], pods)
    return depths.whole(layouts_read.collect(depth_plan, replies[:n], now)), found
