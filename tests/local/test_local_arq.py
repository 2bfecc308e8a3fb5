"""Real arq workers under `queueworker local`: a burst, 0 -> 4 -> 0, none lost or cut.

arq keeps no worker registry and polls its queue ZSET, so busy replicas are
*unknown*: the in-flight count (`arq:in-progress:<job>` keys) keeps the
replicas the running jobs need. On SIGTERM arq cancels running jobs (they run
again later) unless `job_completion_wait` gives them time: the workers here set
it below the drain grace, so a replica stopped while busy finishes its job.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from arq import create_pool
from arq.connections import RedisSettings

from support.local_foreign import LONG, NAMES, SHORT, manifest, run_burst

pytestmark = pytest.mark.slow

ARQ = str(Path(sys.executable).with_name("arq"))


def test_real_arq_workers_burst_none_lost_none_cut(tmp_path: Path, redis_url: str) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    path = manifest(tmp_path, redis_url, "aq", {"name": "arq:queue", "layout": "arq"},
                    [ARQ, "arq_jobs.WorkerSettings"],
                    {"ARQ_REDIS_URL": redis_url, "ARQ_JOB_COMPLETION_WAIT": "12"})

    async def enqueue() -> None:
        pool = await create_pool(RedisSettings.from_dsn(redis_url))
        for n in NAMES:
            await pool.enqueue_job("sleep_job", str(marks), n,
                                   LONG if n.startswith("long") else SHORT)
        await pool.aclose()

    sent: list[bool] = []

    def send(name: str, seconds: float) -> None:
        if not sent:  # one pool for the whole burst
            asyncio.run(enqueue())
            sent.append(True)

    output = run_burst(path, marks, send)
    assert "busy replicas: unknown for layout arq" in output
    # arq cancels jobs on SIGTERM: the spec is warned about whatever the settings say.
    assert "arq cancels running jobs on SIGTERM" in output
