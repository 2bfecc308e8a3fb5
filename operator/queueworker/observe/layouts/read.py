"""Read every queue of a poll in one pipelined round trip per Redis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio

from queueworker.engine.types import QueueDepth
from queueworker.observe.layouts.arq import ArqReader
from queueworker.observe.layouts.base import Command, DepthError, LayoutError, Reader
from queueworker.observe.layouts.bullmq import BullMQReader
from queueworker.observe.layouts.celery import CeleryReader
from queueworker.observe.layouts.dramatiq import DramatiqReader
from queueworker.observe.layouts.laravel import LaravelReader
from queueworker.observe.layouts.native import NativeReader
from queueworker.observe.layouts.rq import RQReader
from queueworker.observe.layouts.sidekiq import SidekiqReader
from queueworker.observe.layouts.simple import ListReader, StreamReader
from queueworker.operator.api import QueueLayout, QueueSpec

READERS: dict[QueueLayout, Reader] = {
    r.layout: r
    for r in (
        NativeReader(), ListReader(), StreamReader(), CeleryReader(), RQReader(),
        LaravelReader(), BullMQReader(), SidekiqReader(), DramatiqReader(), ArqReader(),
    )
}

Plan = list[tuple[QueueSpec, Reader, list[Command]]]


def plan(queues: Sequence[QueueSpec], now: float) -> Plan:
    return [(q, READERS[q.layout], READERS[q.layout].commands(q, now)) for q in queues]


def _one(
    q: QueueSpec, reader: Reader, cmds: list[Command], replies: Sequence[Any], now: float
) -> QueueDepth | DepthError:
    clean: list[Any] = []
    for cmd, reply in zip(cmds, replies, strict=True):
        if isinstance(reply, Exception):
            msg = str(reply)
            if any(e in msg for e in cmd.empty_on):
                clean.append(None)
                continue
            if "WRONGTYPE" in msg:
                msg = f"{cmd.key} holds the wrong kind of value for layout {q.layout.value!r}"
            else:
                msg = f"{cmd.key}: {msg}"
            return DepthError(q.name, q.layout.value, cmd.key, msg)
        clean.append(reply)
    try:
        return reader.parse(q, cmds, clean, now)
    except LayoutError as exc:
        return DepthError(q.name, q.layout.value, exc.key, str(exc))


def collect(p: Plan, replies: Sequence[Any], now: float) -> list[QueueDepth | DepthError]:
    out: list[QueueDepth | DepthError] = []
    i = 0
    for q, reader, cmds in p:
        out.append(_one(q, reader, cmds, replies[i : i + len(cmds)], now))
        i += len(cmds)
    return out


async def read_depths(
    client: redis.asyncio.Redis, queues: Sequence[QueueSpec], now: float
) -> list[QueueDepth | DepthError]:
    """Depth of every queue, in order; a queue that fails is a DepthError, not a raise.

    `now` is epoch seconds (due delayed jobs and ages are relative to it).
    Connection errors do raise: then no queue could be read at all.
    """
    p = plan(queues, now)
    pipe = client.pipeline(transaction=False)
    for _, _, cmds in p:
        for c in cmds:
            pipe.execute_command(*c.args)
    replies = await pipe.execute(raise_on_error=False)
    return collect(p, replies, now)


def read_depths_sync(
    client: redis.Redis, queues: Sequence[QueueSpec], now: float
) -> list[QueueDepth | DepthError]:
    """The same as `read_depths`, for callers without an event loop."""
    p = plan(queues, now)
    pipe = client.pipeline(transaction=False)
    for _, _, cmds in p:
        for c in cmds:
            pipe.execute_command(*c.args)  # type: ignore[no-untyped-call]
    replies = pipe.execute(raise_on_error=False)
    return collect(p, replies, now)

