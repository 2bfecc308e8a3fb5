"""arq_jobs.py's worker, with a health record per replica: the opt-in of
docs/workers/arq.md (`<queue>:health-check:<HOSTNAME>` every second), which lets
observe/busy/arq.py read each replica's `j_ongoing` as busy or idle."""

from __future__ import annotations

import os
import socket

from arq_jobs import WorkerSettings as Plain

HOSTNAME = os.environ.get("HOSTNAME") or socket.gethostname()


class WorkerSettings:
    # arq reads a settings class's own __dict__ (worker.get_kwargs), not inherited names.
    functions = Plain.functions
    redis_settings = Plain.redis_settings
    max_jobs = Plain.max_jobs
    job_completion_wait = Plain.job_completion_wait
    poll_delay = Plain.poll_delay
    health_check_key = f"arq:queue:health-check:{HOSTNAME}"
    health_check_interval = 1
