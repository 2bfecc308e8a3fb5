"""Worker heartbeats as the autoscaler sees them, and the one "busy" rule.

The native workers beat under their prefix (queueworker.worker.heartbeat;
`layouts.native.heartbeat_prefix` says which prefix). The operator (`aread`)
and local mode (`read`) both keep, per pod, the newest beat as a `PodBeat`,
and both turn a pod and its beat into the engine's `PodState` through
`pod_state`, so a worker is busy or idle by the same rule in every world.
Other libraries' workers reach the same rule as `PodBeat`s built from their
registries (observe/busy/), joined to the native beats by `merge`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import redis
import redis.asyncio

from queueworker.engine.types import PodState
from queueworker.worker import heartbeat as worker_heartbeat


def busy(state: str, in_flight: int) -> bool:
    """Whether a worker that says `state` with `in_flight` jobs counts as busy.

    Busy means running at least one job (engine.types.PodState.busy). A
    draining worker with no job in hand is not busy: it got SIGTERM and exits
    as soon as it holds nothing, and whatever it handed back is waiting in the
    queue again. Counting it busy would hold the engine's "not below the busy
    pods" floor and its idle-before-zero clock for a pod that is already
    leaving. A draining worker that still runs a job is busy through that job.
    """
    return in_flight > 0 or state == "busy"


@dataclass(frozen=True)
class PodBeat:
    """What the autoscaler keeps of a pod's newest heartbeat."""

    pod: str
    state: str  # idle | busy | draining
    in_flight: int
    beat_at: float = 0.0
    slots: int | None = None  # the worker's concurrency, where its beat says
    buffered: int = 0  # jobs it holds prefetched beyond its slots, where its beat says
    oldest_started: float | None = None  # start of its longest-running job, where it says

    @property
    def busy(self) -> bool:
        return busy(self.state, self.in_flight)


def by_pod(beats: Iterable[worker_heartbeat.Heartbeat]) -> dict[str, PodBeat]:
    """Pod name -> its newest beat (a worker restarted in the same pod beats anew
    while its old beat key has yet to expire)."""
    out: dict[str, PodBeat] = {}
    for beat in beats:
        pod = beat.pod or beat.id
        if pod not in out or out[pod].beat_at < beat.beat_at:
            out[pod] = PodBeat(pod, beat.state, len(beat.in_flight), beat.beat_at,
                               _count(beat.extra.get("concurrency")) or None,
                               _count(beat.extra.get("buffered")),
                               min((j.started_at for j in beat.in_flight if j.started_at > 0),
                                   default=None))
    return out


def _count(value: object) -> int:
    """A non-negative count from a beat's JSON (0 for anything else)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def merge(native: Mapping[str, PodBeat], foreign: Mapping[str, PodBeat]) -> dict[str, PodBeat]:
    """Beats of native workers and reports of other libraries' workers
    (observe/busy/), by pod; a native beat wins where a pod has both (it
    counts the pod's own leases, the freshest thing we have)."""
    return {**foreign, **native}


def read(client: redis.Redis, prefix: str) -> dict[str, PodBeat]:
    """Live beats by pod, in one round trip (liveness is the beat key's TTL)."""
    return by_pod(worker_heartbeat.read_heartbeats(client, prefix))


async def aread(client: redis.asyncio.Redis, prefix: str) -> dict[str, PodBeat]:
    """The same as `read`, for redis.asyncio."""
    return by_pod(await worker_heartbeat.aread_heartbeats(client, prefix))


# The beat age of a pod nobody reports on: older than any beat, so that among
# pods that look idle the engine removes the known idle ones first
# (engine/victims.py: the freshest beat goes first) and the unknown ones last.
UNKNOWN_AGE = 1e9


def pod_state(name: str, beat: PodBeat | None, *, ready: bool,
              terminating: bool = False, now: float | None = None) -> PodState:
    """The engine's view of one pod; a pod with no beat counts as not busy.

    Without a beat the pod is starting or runs a worker whose busy state is
    unknown; either way it holds no job we know of (the engine's in-flight
    count keeps the replicas its jobs need). ``now`` gives the beat's age (the
    engine removes the idle pod with the freshest beat first: the one least
    likely to have taken a job since); beats with no time (other libraries'
    reports) have no age, and a pod with no beat the oldest (``UNKNOWN_AGE``).
    """
    age = (max(0.0, now - beat.beat_at)
           if now is not None and beat is not None and beat.beat_at > 0 else None)
    if beat is None and now is not None:
        age = UNKNOWN_AGE
    job_age = (max(0.0, now - beat.oldest_started)
               if now is not None and beat is not None and beat.oldest_started else None)
    return PodState(name=name, busy=beat is not None and beat.busy,
                    in_flight=beat.in_flight if beat is not None else 0,
                    ready=ready, terminating=terminating, beat_age_seconds=age,
                    slots=beat.slots if beat is not None else None,
                    buffered=beat.buffered if beat is not None else 0,
                    job_age_seconds=job_age)
