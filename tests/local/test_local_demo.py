"""`queueworker demo` in its short form: 0 -> N -> 0 workers, every job done, 0 lost."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow


def test_short_demo_loses_nothing_and_returns_to_zero() -> None:
    env = {**os.environ, "DEMO_SECONDS": "20"}
    res = subprocess.run([sys.executable, "-m", "queueworker.cli", "demo", "--no-ui"],
                         capture_output=True, text=True, timeout=150, env=env, check=False)
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    sent = int(re.search(r"jobs sent\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"jobs done\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    assert sent >= 20
    assert done == sent
    assert re.search(r"^\s+lost\s+0$", out, re.M), out
    peak = re.search(r"replicas\s+0 -> (\d+) -> 0 ", out)
    assert peak, out
    assert int(peak.group(1)) >= 2, out
    assert re.search(r"scale up 0 -> \d+: \S", out), "the scale decisions and reasons are shown"
    assert re.search(r"p95 \d+\.\d+s", out)
    assert "kubectl apply -f crds/" in out
    assert "helm install" in out


def test_ctrl_c_in_the_demo_drains_and_counts_handed_back_jobs_apart() -> None:
    from support.local_proc import LocalProc

    demo = LocalProc([sys.executable, "-m", "queueworker.cli", "demo", "--no-ui",
                      "--seconds", "40"])
    try:
        demo.wait_for("scale up 0 -> ", timeout=60)  # the first burst is being worked on
        code = demo.interrupt(timeout=60)
    finally:
        demo.kill()
    out = demo.output
    assert code == 0, out
    assert "demo summary  (interrupted)" in out
    assert re.search(r"^\s+lost\s+0$", out, re.M), out
    sent = int(re.search(r"jobs sent\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"jobs done\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    queued = re.search(r"still queued\s+(\d+)", out)
    assert done + (int(queued.group(1)) if queued else 0) == sent, out
