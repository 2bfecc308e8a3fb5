"""Real Dramatiq and arq workers named after their replica (the opt-ins of
docs/workers/dramatiq.md and arq.md) under `queueworker local`: busy replicas are
known, so the scale-down stops idle ones and the busy ones outlive them.

The grace (3 s) is shorter than the long jobs (6 s) and nothing else protects a
busy replica: Dramatiq waits up to its 600 s `--worker-shutdown-timeout` (a busy
replica stopped would be SIGKILLed at the grace, "past grace"), and arq, with
`job_completion_wait` 0, cancels its running job at SIGTERM (the job would be
started twice or never finish). run_burst checks none of that happened.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from support.local_foreign import LONG, NAMES, SHORT, manifest, run_burst

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def _busy_seen(output: str) -> None:
    assert re.search(r" busy=[12] ", output), "busy replicas were seen"


def test_named_dramatiq_workers_busy_outlive_idle(tmp_path: Path, redis_url: str) -> None:
    from dramatiq import Message
    from dramatiq.brokers.redis import RedisBroker

    marks = tmp_path / "marks"
    marks.mkdir()
    path = manifest(tmp_path, redis_url, "dqn", {"name": "work", "layout": "dramatiq"},
                    [str(BIN / "dramatiq"), "dramatiq_named_jobs", "--processes", "1",
                     "--threads", "1"], {"DRAMATIQ_REDIS_URL": redis_url}, grace=3)
    broker = RedisBroker(url=redis_url)
    broker.declare_queue("work")

    def send(name: str, seconds: float) -> None:
        broker.enqueue(Message(queue_name="work", actor_name="sleep_job",
                               args=(str(marks), name, seconds), kwargs={}, options={}))

    try:
        output = run_burst(path, marks, send)
    finally:
        broker.close()
    assert "busy replicas: unknown for layout dramatiq unless its workers" in output
    _busy_seen(output)


def test_named_arq_workers_busy_outlive_idle(tmp_path: Path, redis_url: str) -> None:
    from arq import create_pool
    from arq.connections import RedisSettings

    marks = tmp_path / "marks"
    marks.mkdir()
    path = manifest(tmp_path, redis_url, "aqn", {"name": "arq:queue", "layout": "arq"},
                    [str(BIN / "arq"), "arq_named_jobs.WorkerSettings"],
                    {"ARQ_REDIS_URL": redis_url, "ARQ_JOB_COMPLETION_WAIT": "0"}, grace=3)

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
    _busy_seen(output)
