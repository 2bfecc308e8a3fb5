"""The chaos benchmark in its short form: every fault kind at least once, nothing lost.

Worker SIGKILLs, a Redis restart (AOF), a Redis freeze (SIGSTOP) longer than the client
timeouts, and a crash of local mode together with its workers (the operator's engine and its
replicas gone mid-scale), then a fresh local mode. The long run's figures are in
benchmarks/RELIABILITY.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_short_chaos_run_loses_nothing() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "chaos" / "chaos.py"), "--jobs", "240",
         "--seconds", "36", "--kill-every", "2", "--restart-every", "14", "--pause-every",
         "20", "--pause", "6.5", "--crash-every", "25", "--seed", "3", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=400)
    out = run.stdout + run.stderr
    result = json.loads(run.stdout)  # --json: stdout is exactly one JSON object
    assert result["jobs"] == 240, result
    assert result["kills"] >= 5, result
    assert result["restarts"] >= 2, result
    assert result["pauses"] == 1, result
    assert result["crashes"] >= 1, result  # local mode crashed (with its workers) at least once
    assert result["lost"] == 0, out[-3000:]
    assert result["duplicates_without_redelivery"] == 0, f"a job ran twice: {result}"
    assert result["drain_exit"] == 0, result
    assert run.returncode == 0, out[-3000:]
