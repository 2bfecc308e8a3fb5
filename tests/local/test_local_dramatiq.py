"""Real Dramatiq workers under `queueworker local`: a burst, 0 -> 4 -> 0, none lost or cut.

Dramatiq registers no worker a pod can be told by (its `__acks__` sets are per
random worker id) and polls rather than blocks, so busy replicas are *unknown*:
the in-flight count (the acks) keeps the replicas the running jobs need, and a
replica stopped anyway finishes its running message within
`--worker-shutdown-timeout`, set below the drain grace (validation_warnings
warns otherwise), and hands back what it prefetched.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker

from support.local_foreign import manifest, run_burst

pytestmark = pytest.mark.slow

DRAMATIQ = str(Path(sys.executable).with_name("dramatiq"))


def test_real_dramatiq_workers_burst_none_lost_none_cut(tmp_path: Path,
                                                        redis_url: str) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    path = manifest(tmp_path, redis_url, "dq", {"name": "work", "layout": "dramatiq"},
                    [DRAMATIQ, "dramatiq_jobs", "--processes", "1", "--threads", "1",
                     "--worker-shutdown-timeout", "12000"],
                    {"DRAMATIQ_REDIS_URL": redis_url})
    broker = RedisBroker(url=redis_url)
    broker.declare_queue("work")

    def send(name: str, seconds: float) -> None:
        broker.enqueue(Message(queue_name="work", actor_name="sleep_job",
                               args=(str(marks), name, seconds), kwargs={}, options={}))

    try:
        output = run_burst(path, marks, send)
    finally:
        broker.close()
    assert "busy replicas: unknown for layout dramatiq" in output
    assert "warning:" not in output, "the stop timeout is below the grace"
