"""The Celery app of e2e_foreign.py: its one task is cluster/foreign_jobs.py's sleep_job.

Worker pods run `celery -A cluster.foreign_celery worker` (tests/ on PYTHONPATH) with the
broker in CELERY_BROKER_URL; the test sends the task by name.
"""

from __future__ import annotations

import os

from celery import Celery

from cluster.foreign_jobs import sleep_job as _sleep_job

app = Celery("foreign_celery",
             broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"))


@app.task(name="foreign_celery.sleep_job")  # type: ignore[untyped-decorator]
def sleep_job(name: str, seconds: float) -> str:
    return _sleep_job(name, seconds)
