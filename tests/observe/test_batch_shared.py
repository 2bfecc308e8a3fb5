"""The operator's side of observe/batch.py (controller/context.Shared): one batcher and one
poll grid per Redis, and one heartbeat read for all the loops that poll together."""

from __future__ import annotations

import asyncio

import redis
import redis.asyncio

from queueworker.observe import batch
from queueworker.operator.cluster.client import KubeClient
from queueworker.operator.controller.context import OperatorConfig, Shared


def no_api() -> KubeClient:
    raise AssertionError("these tests make no API call")


async def test_one_batcher_and_one_grid_per_redis(redis_url: str) -> None:
    shared = Shared(OperatorConfig(), no_api)
    a = redis.asyncio.Redis.from_url(redis_url)
    b = redis.asyncio.Redis(host="127.0.0.1", port=1)  # another server
    try:
        assert shared.batcher(a) is shared.batcher(a)
        assert shared.batcher(a) is not shared.batcher(b)
        now = 1_000_000.0
        port = a.connection_pool.connection_kwargs["port"]
        expected = batch.slot(now, 5.0, batch.phase_of(f"127.0.0.1:{port}"))
        assert shared.poll_slot(a, now, 5.0) == expected
        # Another client of the same server (another loop's, another process's): same grid.
        again = redis.asyncio.Redis(host="127.0.0.1", port=port)
        # Same grid: a whole number of intervals from `expected` (which one depends on
        # where the port's phase falls against slot()'s min_gap, so not asserted).
        later = shared.poll_slot(again, now + 1.3, 5.0)
        steps = (later - expected) / 5.0
        assert later >= now + 1.3
        assert abs(steps - round(steps)) < 1e-6, (later, expected)
        await again.aclose()
        unix = redis.asyncio.Redis(unix_socket_path="/run/redis.sock")
        assert shared.poll_slot(unix, now, 5.0) == batch.slot(
            now, 5.0, batch.phase_of("/run/redis.sock"))
        await unix.aclose()
    finally:
        await shared.close()
        await a.aclose()
        await b.aclose()


async def test_loops_polling_together_share_one_heartbeat_read(redis_url: str) -> None:
    shared = Shared(OperatorConfig(), no_api)
    client = redis.asyncio.Redis.from_url(redis_url)
    counter = redis.Redis.from_url(redis_url)
    try:
        counter.config_resetstat()
        results = await asyncio.gather(*[shared.heartbeats(client, "qw") for _ in range(50)])
        assert all(r == {} for r in results)
        calls = int((counter.info("commandstats").get("cmdstat_eval") or {}).get("calls", 0))
        assert calls == 1  # 50 loops, one read
        await asyncio.sleep(0.6)  # past SHARED_READ_SECONDS: the next tick reads again
        await shared.heartbeats(client, "qw")
        calls = int((counter.info("commandstats").get("cmdstat_eval") or {}).get("calls", 0))
        assert calls == 2
    finally:
        await shared.close()
        await client.aclose()
