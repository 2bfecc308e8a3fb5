"""Job handler for the operator tests on the real control plane (e2e_operator.py).

Worker pods run it as ``--handler cluster.operator_jobs:handle`` (the harness's
kubelet puts tests/ on PYTHONPATH). Per job number ``n`` it counts deliveries
(``t:started``) and completions (``t:runs``), adds ``n`` to ``t:done``, and logs
one JSON line to ``t:log``: the pod, the ``VERSION`` env of its template, and
when the job started and ended (this machine's clock, as the test's pod watcher).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from queueworker.worker.config import worker_redis


def handle(payload: dict[str, Any]) -> None:
    client = worker_redis()
    n = str(payload["n"])
    client.hincrby("t:started", n, 1)
    started = time.time()
    time.sleep(float(payload.get("seconds", 0.1)))
    entry = {"n": int(n), "pod": os.environ.get("POD_NAME", ""),
             "version": os.environ.get("VERSION", ""), "start": started, "end": time.time()}
    pipe = client.pipeline(transaction=False)
    pipe.sadd("t:done", n)
    pipe.hincrby("t:runs", n, 1)
    pipe.rpush("t:log", json.dumps(entry))
    pipe.execute()
