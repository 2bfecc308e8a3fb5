"""Queue depths for one poll, and the one rule on a partial reading.

The layout readers (layouts/) answer per queue: a `QueueDepth`, or a
`DepthError` for a queue that could not be read. `whole` turns those answers
into what the engine may use; the operator (`read`, asyncio) and local mode
(`read_sync`) both go through it, so both worlds treat a half-read poll alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis
import redis.asyncio

from queueworker.common.errors import QueueworkerError
from queueworker.engine.types import QueueDepth
from queueworker.observe.layouts import DepthError, read_depths, read_depths_sync
from queueworker.operator.api import QueueSpec


class QueueReadError(QueueworkerError):
    """Redis answered, but some queue could not be read (wrong key type, bad data)."""


def whole(results: Sequence[QueueDepth | DepthError]) -> tuple[QueueDepth, ...]:
    """Every queue's depth, or QueueReadError naming each queue that failed.

    One unreadable queue makes the whole reading unusable: scaling on the
    queues that did answer would under-count demand and shrink the fleet under
    the one that did not, so the engine then keeps the current replicas (or
    fallbackReplicas) instead.
    """
    errors = [str(r) for r in results if isinstance(r, DepthError)]
    if errors:
        raise QueueReadError("; ".join(errors))
    return tuple(r for r in results if isinstance(r, QueueDepth))


async def read(client: redis.asyncio.Redis, queues: Sequence[QueueSpec],
               now: float) -> tuple[QueueDepth, ...]:
    """Every queue in one round trip (`whole`); Redis and connection errors raise as they are."""
    return whole(await read_depths(client, queues, now))


def read_sync(client: redis.Redis, queues: Sequence[QueueSpec],
              now: float) -> tuple[QueueDepth, ...]:
    """The same as `read`, for callers without an event loop (local mode)."""
    return whole(read_depths_sync(client, queues, now))
