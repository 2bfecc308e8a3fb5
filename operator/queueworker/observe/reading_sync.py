"""What local mode sees each poll, through the shared observe rules.

The same reading as the operator's (reading.py), with redis-py instead of
redis.asyncio: queue depths by the layout readers with the one "unreadable
reading" rule (depths.py), heartbeats and PodStates with the one busy rule
(heartbeats.py), all under the prefix the workers were told
(`layouts.native.heartbeat_prefix`). Each beat names its pod (``POD_NAME``,
which the local pool sets to the replica's name). Other libraries' workers
are mapped to replicas by process id (`read_queues_and_busy`, observe/busy/).
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from queueworker.engine.types import PodState, QueueDepth
from queueworker.observe import busy, depths, heartbeats
from queueworker.observe.heartbeats import PodBeat
from queueworker.observe.layouts.native import heartbeat_prefix, queue_prefix
from queueworker.operator import api
from queueworker.worker import keys


def read_queues(client: redis.Redis, spec: api.QueueWorkerSpec,
                now: float) -> tuple[tuple[QueueDepth, ...] | None, str | None]:
    """(depths, None) of every queue of the spec in one round trip, or (None, why)."""
    try:
        return depths.read_sync(client, spec.queues, now), None
    except depths.QueueReadError as exc:
        return None, str(exc)
    except (redis.RedisError, OSError) as exc:
        return None, f"redis: {type(exc).__name__}: {exc}"


def read_queues_and_busy(client: redis.Redis, spec: api.QueueWorkerSpec, now: float,
                         pods: Sequence[busy.PodRef]
                         ) -> tuple[tuple[QueueDepth, ...] | None, str | None, busy.BusyReading]:
    """`read_queues` and the foreign workers' busy reports (observe/busy/) in one round
    trip. A registry that cannot be read leaves its pods unknown (`BusyReading.errors`)."""
    try:
        queues, reading = busy.read_sync(client, spec.queues, now, pods)
        return queues, None, reading
    except depths.QueueReadError as exc:
        return None, str(exc), busy.BusyReading()
    except (redis.RedisError, OSError) as exc:
        return None, f"redis: {type(exc).__name__}: {exc}", busy.BusyReading()


def read_beats(client: redis.Redis, spec: api.QueueWorkerSpec) -> dict[str, PodBeat]:
    """Live heartbeats of the spec's native workers, by pod (the newest wins)."""
    return heartbeats.read(client, heartbeat_prefix(spec))


def pod_states(active: list[str], stopping: list[str], beats: dict[str, PodBeat],
               heartbeats_expected: bool = True, now: float | None = None
               ) -> tuple[PodState, ...]:
    """PodStates for the engine: the replicas running, then those asked to stop.

    A native worker is ready once it has beaten; a command that never beats
    (`heartbeats_expected` False) is ready while its process runs.
    """
    running = [heartbeats.pod_state(name, beats.get(name),
                                    ready=name in beats or not heartbeats_expected, now=now)
               for name in active]
    leaving = [heartbeats.pod_state(name, beats.get(name), ready=False, terminating=True,
                                    now=now)
               for name in stopping]
    return (*running, *leaving)


def read_counters(client: redis.Redis, spec: api.QueueWorkerSpec) -> tuple[int, int, int]:
    """(completed, failed, retried) summed over the native queues' monotonic counters."""
    native = [q for q in spec.queues if q.layout == api.QueueLayout.native]
    if not native:
        return 0, 0, 0
    pipe = client.pipeline(transaction=False)
    for q in native:
        pipe.hmget(keys.stats(q.name, queue_prefix(q)), ["completed", "failed", "retried"])
    completed = failed = retried = 0
    for done, bad, again in pipe.execute():
        completed += int(done or 0)
        failed += int(bad or 0)
        retried += int(again or 0)
    return completed, failed, retried
