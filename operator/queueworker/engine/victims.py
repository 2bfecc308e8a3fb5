"""Which pods go first when scaling down: idle before busy, always.

The ReplicaSet ranks not-ready pods before ready ones whatever their deletion
cost (Kubernetes pkg/controller/controller_utils.go, `ActivePodsWithRanks.Less`:
unassigned, then pending, then not-ready pods go first, and only then the lower
deletion cost), so a not-ready idle pod is the cheapest
victim, then a ready idle one, then busy pods with the least work in hand.
"""

from __future__ import annotations

from collections.abc import Sequence

from queueworker.engine.types import PodState


def _rank(pod: PodState) -> tuple[int, int, int, float, str]:
    # Among idle pods the freshest beat goes first: a pod may have taken a job
    # since its last beat, and the older the beat the likelier that is. A pod
    # holding prefetched jobs is busy with them.
    age = pod.beat_age_seconds if pod.beat_age_seconds is not None else 0.0
    busy = pod.busy or pod.buffered > 0
    return (int(busy), pod.in_flight + pod.buffered, int(pod.ready), age, pod.name)


def pick(pods: Sequence[PodState], count: int) -> tuple[str, ...]:
    """Names of `count` pods to remove; pods already terminating are not counted."""
    if count <= 0:
        return ()
    live = sorted((p for p in pods if not p.terminating), key=_rank)
    return tuple(p.name for p in live[:count])


def busy_count(pods: Sequence[PodState]) -> int:
    return sum(1 for p in pods if (p.busy or p.buffered > 0) and not p.terminating)
