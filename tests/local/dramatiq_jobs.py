"""A Dramatiq actor for the local-mode tests: logs its own start and finish.

Workers run `dramatiq dramatiq_jobs` with this folder on PYTHONPATH and the
broker in DRAMATIQ_REDIS_URL; the test sends messages with `sleep_job.send`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import dramatiq
from dramatiq.brokers.redis import RedisBroker

dramatiq.set_broker(RedisBroker(url=os.environ.get("DRAMATIQ_REDIS_URL",
                                                   "redis://127.0.0.1:6379/0")))


@dramatiq.actor(queue_name="work", max_retries=0)  # type: ignore[misc]
def sleep_job(marker_dir: str, name: str, seconds: float) -> None:
    d = Path(marker_dir)
    with open(d / f"{name}.start", "a", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()} {time.time()}\n")
    time.sleep(seconds)
    with open(d / f"{name}.done", "a", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()} {time.time()}\n")
