"""A `queueworker worker` whose scheduler reads a simulated clock (ms) from the Redis key
``test:clock``: `python -m support.schedule_worker` + the worker's options."""

from __future__ import annotations

import asyncio
import sys

import redis.asyncio as aioredis

from queueworker.worker import cli, handlers, log, sidecar
from queueworker.worker.runtime import Worker

CLOCK_KEY = "test:clock"


async def _main(argv: list[str]) -> int:
    args = cli.parser().parse_args(argv)
    settings = cli.settings_from(args)
    log.setup(settings.log_level)
    clock_client = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)

    async def clock() -> int:
        return int(await clock_client.get(CLOCK_KEY) or 0)

    worker = Worker(settings, handlers.load(settings.handlers))
    try:
        return await sidecar.run_worker(worker, sidecar.load_schedules(args.schedules),
                                        clock=clock, interval=0.02)
    finally:
        await clock_client.aclose()


if __name__ == "__main__":
    sys.exit(asyncio.run(_main(sys.argv[1:])))
