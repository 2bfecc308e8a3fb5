"""A Celery app for the local-mode tests: a task that logs its own start and finish.

Workers run `celery -A celery_app worker` with this folder on PYTHONPATH and
the broker in CELERY_BROKER_URL (and kombu's global_keyprefix in CELERY_KEY_PREFIX);
the test sends tasks by name.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery import Celery

app = Celery("celery_app", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"))
if os.environ.get("CELERY_KEY_PREFIX"):  # kombu's global_keyprefix (a queue's keyPrefix)
    app.conf.broker_transport_options = {"global_keyprefix": os.environ["CELERY_KEY_PREFIX"]}


@app.task(name="celery_app.sleep_job")  # type: ignore[untyped-decorator]
def sleep_job(marker_dir: str, name: str, seconds: float) -> str:
    d = Path(marker_dir)
    with open(d / f"{name}.start", "a", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()} {time.time()}\n")
    time.sleep(seconds)
    with open(d / f"{name}.done", "a", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()} {time.time()}\n")
    return name
