"""dramatiq_jobs.py's actor, with the broker named after its replica: the opt-in of
docs/workers/dramatiq.md (`<HOSTNAME>-<32 hex>`, one id per worker process), which
lets observe/busy/dramatiq.py read each replica's ack set as busy or idle."""

from __future__ import annotations

import os
import socket
from uuid import uuid4

import dramatiq
import dramatiq_jobs  # noqa: F401  (sets the broker, declares sleep_job)

dramatiq.get_broker().broker_id = (  # type: ignore[attr-defined]
    f"{os.environ.get('HOSTNAME') or socket.gethostname()}-{uuid4().hex}")
