"""What the operator reads each poll, through the shared observe rules.

The controller loop (queueworker.operator.controller.loop) calls these with
redis.asyncio: queue depths (depths.py: one unreadable queue makes the whole
reading unusable), heartbeats and PodStates (heartbeats.py: the one busy
rule), and the engine's ``decide``. Local mode reads the same way through
reading_sync.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from queueworker import engine
from queueworker.engine.types import PodState
from queueworker.observe.depths import QueueReadError
from queueworker.observe.depths import read as read_depths
from queueworker.observe.heartbeats import PodBeat, pod_state
from queueworker.observe.heartbeats import aread as read_heartbeats
from queueworker.observe.layouts.native import heartbeat_prefix

__all__ = ["Heartbeat", "QueueReadError", "decide", "heartbeat_prefix", "pod_states",
           "read_depths", "read_heartbeats"]

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
