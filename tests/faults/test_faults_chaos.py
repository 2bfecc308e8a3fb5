"""The chaos benchmark in its short form: every fault kind at least once, nothing lost.

Worker SIGKILLs, a Redis restart (AOF), a Redis freeze (SIGSTOP) longer than the client
timeouts, and a crash of local mode together with its workers (the operator's engine and its
replicas gone mid-scale), then a fresh local mode. The long run's figures are in
benchmarks/RELIABILITY.md.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_short_chaos_run_loses_nothing() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "chaos" / "chaos.py"), "--jobs", "240",
         "--seconds", "36", "--kill-every", "2", "--restart-every", "14", "--pause-every",
         "20", "--pause", "6.5", "--crash-every", "25", "--seed", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=400)
    out = run.stdout + run.stderr
    row = next(line for line in run.stdout.splitlines() if line.startswith("| 240 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    _jobs, kills, restarts, pauses, crashes, lost = cells[:6]
    assert int(kills) >= 5 and int(restarts) >= 2, row
    assert pauses.startswith("1 "), row
    assert re.match(r"[1-9]\d* \(\d+\)", crashes), row  # local mode crashed at least once
    assert lost == "**0**", out[-3000:]
    assert cells[7] == "0", f"a job ran twice without a redelivery: {row}"
    assert run.returncode == 0, out[-3000:]
