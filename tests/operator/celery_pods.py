"""A Celery app for the operator's Celery test: a task that logs, in its own files,
which pod ran it, when it started and when it finished.

Workers run `celery -A celery_pods worker` with this folder on PYTHONPATH, the
broker in CELERY_BROKER_URL (kombu's global_keyprefix in CELERY_KEY_PREFIX) and the
pod's name in POD_NAME (the harness's
runtime sets it, as the downward API does in a cluster).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery import Celery

app = Celery("celery_pods", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"))
if os.environ.get("CELERY_KEY_PREFIX"):  # kombu's global_keyprefix (a queue's keyPrefix)
    app.conf.broker_transport_options = {"global_keyprefix": os.environ["CELERY_KEY_PREFIX"]}


@app.task(name="celery_pods.sleep_job")  # type: ignore[untyped-decorator]
def sleep_job(marker_dir: str, name: str, seconds: float) -> str:
    d = Path(marker_dir)
    pod = os.environ.get("POD_NAME", "?")
    with open(d / f"{name}.start", "a", encoding="utf-8") as fh:
        fh.write(f"{pod} {time.time()}\n")
    time.sleep(seconds)
    with open(d / f"{name}.done", "a", encoding="utf-8") as fh:
        fh.write(f"{pod} {time.time()}\n")
    return name
