"""The no-op job and worker settings for arq (its defaults, burst mode to end)."""

import os
from typing import Any

from arq.connections import RedisSettings


async def noop(ctx: dict[str, Any], i: int) -> None:
    return None


class WorkerSettings:
    functions = [noop]
    redis_settings = RedisSettings.from_dsn(os.environ["BENCH_REDIS_URL"])
    burst = True


class FastPollSettings:
    functions = [noop]
    redis_settings = WorkerSettings.redis_settings
    burst = True
    poll_delay = 0.01
