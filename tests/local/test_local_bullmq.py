"""Real BullMQ workers (node) under `queueworker local`: 0 -> 4 -> 0, idle-first, none cut.

The workers are named after their replica (`name: process.env.HOSTNAME`, which
local mode sets as a pod would), so each job they take says `pb: <replica>`
(observe/busy/bullmq.py) and their connections `...:w:<replica>` say they are
alive (CLIENT LIST): busy replicas are known. The grace (3 s) is shorter than
the long jobs: a busy worker stopped by a scale-down would be SIGKILLed in
`worker.close()` with its job. None may be.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.engine_layouts import NODE_DIR, ensure_node
from support.local_foreign import NAMES, manifest, run_burst

pytestmark = pytest.mark.slow


def test_real_bullmq_workers_burst_idle_first_none_cut(tmp_path: Path, redis_url: str) -> None:
    ensure_node()
    marks = tmp_path / "marks"
    marks.mkdir()
    path = manifest(tmp_path, redis_url, "bq", {"name": "render", "layout": "bullmq"},
                    ["node", str(NODE_DIR / "bullmq_jobs.mjs"), "worker", redis_url, "render",
                     str(marks), "-"], {}, grace=3)
    jobs: list[str] = []

    def send(name: str, seconds: float) -> None:
        jobs.append(f"{name}:{seconds}")
        if len(jobs) == len(NAMES):  # one producer process for the burst
            subprocess.run(["node", "bullmq_jobs.mjs", "add", redis_url, "render", *jobs],
                           cwd=NODE_DIR, check=True, timeout=60)

    output = run_burst(path, marks, send)
    assert "busy replicas: read from the bullmq workers' own reports" in output
    assert " busy=2 " in output or " busy=1 " in output, "busy workers were seen"
