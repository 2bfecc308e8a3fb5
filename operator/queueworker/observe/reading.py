"""The operator's seams to the engine and the depth readers, and heartbeats.

The poller (poller.py) calls the engine's ``decide`` and the layout readers
(queueworker.observe.layouts) through these. Heartbeat reading lives here
too: it is operator-side, reading the native worker's keys
(queueworker.worker.keys).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio

from queueworker import engine
from queueworker.engine.types import PodState, QueueDepth
from queueworker.observe import layouts
from queueworker.operator import api
from queueworker.worker import heartbeat as worker_heartbeat

# ------------------------------------------------------------------ decide, depth

decide = engine.decide


class QueueReadError(Exception):
    """Redis answered, but some queue could not be read (wrong key type, bad data)."""


async def read_depths(client: redis.asyncio.Redis, queues: Sequence[api.QueueSpec],
                      now: float) -> tuple[QueueDepth, ...]:
    """Every queue in one round trip; raises when any of them cannot be read.

    Scaling on part of the queues would under-count demand, so a queue that
    fails makes the whole observation unreadable (fallback replicas apply).
    """
    results = await layouts.read_depths(client, queues, now)
    errors = [r for r in results if isinstance(r, layouts.DepthError)]
    if errors:
        raise QueueReadError("; ".join(str(e) for e in errors))
    return tuple(r for r in results if isinstance(r, QueueDepth))


# --------------------------------------------------------------------- heartbeats


@dataclass(frozen=True)
class Heartbeat:
    pod: str
    state: str
    in_flight: int


async def read_heartbeats(client: redis.asyncio.Redis, prefix: str) -> dict[str, Heartbeat]:
    """Pod name -> latest heartbeat of the native workers, through the worker's own reader
    (one round trip; liveness is the beat key's TTL, so no clock comparison is needed)."""
    out: dict[str, Heartbeat] = {}
    for beat in await worker_heartbeat.aread_heartbeats(client, prefix):
        if beat.pod:
            out[beat.pod] = Heartbeat(beat.pod, beat.state, len(beat.in_flight))
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
