"""arq workers' busy state per pod, from real arq Workers that keep a health record
per pod (`health_check_key=f"{queue}:health-check:{pod}"`, the opt-in of
docs/workers/arq.md): `j_ongoing` says how many jobs each runs."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis

from queueworker.observe import busy
from queueworker.observe.busy import PodRef
from queueworker.observe.busy.arq import ArqAdapter, health_key
from queueworker.observe.layouts.base import LayoutError
from queueworker.operator.api import QueueLayout, QueueSpec

QUEUES = [QueueSpec(name="arq:queue", layout=QueueLayout.arq)]
PODS = [PodRef("pod-a"), PodRef("pod-b"), PodRef("pod-c")]


async def block(ctx: dict[str, Any]) -> None:  # runs until released
    ctx["started"].set()
    await ctx["release"].wait()


def _states(r: redis.Redis) -> dict[str, str]:
    _, reading = busy.read_sync(r, QUEUES, time.time(), PODS)
    assert not reading.errors
    return {p.name: reading.beats[p.name].state if p.name in reading.beats else "unknown"
            for p in PODS}


async def _until(r: redis.Redis, want: dict[str, str], what: str) -> None:
    deadline = time.monotonic() + 15
    while (got := await asyncio.to_thread(_states, r)) != want:
        assert time.monotonic() < deadline, f"{what}: {got}"
        await asyncio.sleep(0.05)


async def scenario(redis_url: str) -> None:
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.worker import Worker, func

    r = redis.Redis.from_url(redis_url)
    ctx: dict[str, Any] = {"started": asyncio.Event(), "release": asyncio.Event()}
    workers = []
    for pod in ("pod-a", "pod-b"):
        pool = await create_pool(RedisSettings.from_dsn(redis_url))
        workers.append(Worker(functions=[func(block, name="block")], redis_pool=pool,
                              max_jobs=1, poll_delay=0.05, handle_signals=False, ctx=ctx,
                              health_check_key=health_key("arq:queue", pod),
                              health_check_interval=0.2))
    # pod-a starts alone and takes the job; pod-b starts once it runs.
    tasks = [asyncio.create_task(workers[0].main())]
    try:
        await workers[0].pool.enqueue_job("block")
        await asyncio.wait_for(ctx["started"].wait(), 10)
        tasks.append(asyncio.create_task(workers[1].main()))
        # pod-c's worker keeps arq's default key (not opted in): unknown.
        await _until(r, {"pod-a": "busy", "pod-b": "idle", "pod-c": "unknown"},
                     "pod-a runs the job")
        assert b"j_ongoing=1 " in r.get("arq:queue:health-check:pod-a")
        ctx["release"].set()
        await _until(r, {"pod-a": "idle", "pod-b": "idle", "pod-c": "unknown"}, "done")
    finally:
        for t in tasks:
            t.cancel()
        for w in workers:
            await w.close()
    # Closed: arq deletes its record, the pods are unknown again.
    assert await asyncio.to_thread(_states, r) == {p.name: "unknown" for p in PODS}


def test_per_pod_health_records_busy_idle_unknown(redis_url: str) -> None:
    asyncio.run(scenario(redis_url))


def test_no_pods_no_command_and_a_foreign_record_is_an_error() -> None:
    assert busy.plan(QUEUES) == []
    ((_, cmd),) = busy.plan(QUEUES, PODS)
    assert cmd.args[2:] == (3, *(health_key("arq:queue", p.name) for p in PODS))
    with pytest.raises(LayoutError, match="no j_ongoing"):
        ArqAdapter().parse([b"arq:queue:health-check:pod-a", b"up"], cmd.key)
