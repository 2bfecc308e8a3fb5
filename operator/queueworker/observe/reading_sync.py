"""What local mode sees each poll: queue depths and worker heartbeats.

Queue depths come from the operator's layout readers (`queueworker.operator.
layouts`), the same ones a cluster uses. Heartbeats come from the native
runtime's reader (`queueworker.worker.heartbeat`); each names its pod
(``POD_NAME``, which the local pool sets to the replica's name), its state and
its jobs in flight.
"""

from __future__ import annotations

import logging

import redis

from queueworker.engine.types import PodState, QueueDepth
from queueworker.observe.layouts import DepthError, read_depths_sync
from queueworker.operator import api
from queueworker.worker import keys
from queueworker.worker.heartbeat import Heartbeat, read_heartbeats

log = logging.getLogger("queueworker.local.observe")


def read_queues(client: redis.Redis, spec: api.QueueWorkerSpec,
                now: float) -> tuple[tuple[QueueDepth, ...] | None, str | None]:
    """Depths of every queue of the spec in one round trip; (None, why) when any fails.

    One unreadable queue makes the whole observation unreadable, as in the
    operator: the engine then keeps the current replicas (or fallbackReplicas)
    instead of scaling on a partial picture.
    """
    try:
        results = read_depths_sync(client, spec.queues, now)
    except (redis.RedisError, OSError) as exc:
        return None, f"redis: {type(exc).__name__}: {exc}"
    errors = [str(r) for r in results if isinstance(r, DepthError)]
    if errors:
        return None, "; ".join(errors)
    return tuple(r for r in results if isinstance(r, QueueDepth)), None


def read_beats(client: redis.Redis, prefix: str = keys.DEFAULT_PREFIX) -> dict[str, Heartbeat]:
    """Live heartbeats by pod name; when a pod's worker restarted, the newest beat wins."""
    out: dict[str, Heartbeat] = {}
    for beat in read_heartbeats(client, prefix):
        pod = beat.pod or beat.id
        if pod not in out or out[pod].beat_at < beat.beat_at:
            out[pod] = beat
    return out


def pod_states(active: list[str], stopping: list[str], beats: dict[str, Heartbeat],
               heartbeats: bool = True) -> tuple[PodState, ...]:
    """PodStates for the engine: busy/idle from heartbeats; no beat yet counts as idle.

    A native worker is ready once it has beaten; a command that never beats
    (`heartbeats` False) is ready while its process runs.
    """
    out: list[PodState] = []
    for name in active:
        beat = beats.get(name)
        out.append(PodState(name=name, busy=beat is not None and beat.busy,
                            in_flight=len(beat.in_flight) if beat else 0,
                            ready=beat is not None or not heartbeats))
    for name in stopping:
        beat = beats.get(name)
        out.append(PodState(name=name, busy=beat is not None and beat.busy,
                            in_flight=len(beat.in_flight) if beat else 0, ready=False,
                            terminating=True))
    return tuple(out)


def read_counters(client: redis.Redis, spec: api.QueueWorkerSpec,
                  prefix: str = keys.DEFAULT_PREFIX) -> tuple[int, int, int]:
    """(completed, failed, retried) summed over the native queues' monotonic counters."""
    native = [q for q in spec.queues if q.layout == api.QueueLayout.native]
    if not native:
        return 0, 0, 0
    pipe = client.pipeline(transaction=False)
    for q in native:
        pipe.hmget(keys.stats(q.name, prefix), ["completed", "failed", "retried"])
    completed = failed = retried = 0
    for done, bad, again in pipe.execute():
        completed += int(done or 0)
        failed += int(bad or 0)
        retried += int(again or 0)
    return completed, failed, retried
