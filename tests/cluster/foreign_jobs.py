"""Jobs that other libraries' workers run in e2e_foreign.py; each logs its own start and end.

Worker pods import this module from tests/ (the harness's kubelet puts tests/ on
PYTHONPATH): RQ by its dotted name, Celery through cluster/foreign_celery.py. A job
pushes one JSON line to `<JOBS_LOG>:start` when it begins and one to `<JOBS_LOG>:done`
when it ends (one log per QueueWorker), in the Redis named by JOBS_REDIS_URL, with its
name, the pod it ran in (`socket.gethostname()`: the pod's name under the kubelet,
podhost/sitecustomize.py) and this machine's clock, the one the test's pod watcher notes
deletions with.
"""

from __future__ import annotations

import json
import os
import socket
import time

import redis


def _log(what: str, entry: dict[str, object]) -> None:
    client = redis.Redis.from_url(os.environ["JOBS_REDIS_URL"])
    try:
        client.rpush(f"{os.environ['JOBS_LOG']}:{what}", json.dumps(entry))
    finally:
        client.close()


def sleep_job(name: str, seconds: float) -> str:
    pod, start = socket.gethostname(), time.time()
    _log("start", {"name": name, "pod": pod, "at": start})
    time.sleep(seconds)
    _log("done", {"name": name, "pod": pod, "start": start, "end": time.time()})
    return name
