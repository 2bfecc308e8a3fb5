"""An arq task for the local-mode tests: logs its own start and finish.

Workers run `arq arq_jobs.WorkerSettings` with this folder on PYTHONPATH and
Redis in ARQ_REDIS_URL. arq cancels running jobs on SIGTERM unless
`job_completion_wait` gives them time: it is set below the test's drain grace,
as docs/workers/arq.md recommends.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any, ClassVar

from arq.connections import RedisSettings


def _mark(path: Path) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()} {time.time()}\n")


async def sleep_job(ctx: dict[str, Any], marker_dir: str, name: str, seconds: float) -> str:
    d = Path(marker_dir)
    _mark(d / f"{name}.start")  # a few bytes to a local file: not worth a thread
    await asyncio.sleep(seconds)
    _mark(d / f"{name}.done")
    return name


class WorkerSettings:
    functions: ClassVar[list[Any]] = [sleep_job]
    redis_settings = RedisSettings.from_dsn(os.environ.get("ARQ_REDIS_URL",
                                                           "redis://127.0.0.1:6379/0"))
    max_jobs = 1
    job_completion_wait = int(os.environ.get("ARQ_JOB_COMPLETION_WAIT", "12"))
    poll_delay = 0.2
