"""The no-op task for Celery (Redis broker, no result backend)."""

import os

from celery import Celery

app = Celery("bench", broker=os.environ["BENCH_REDIS_URL"])


@app.task
def noop(i: int) -> None:
    return None
