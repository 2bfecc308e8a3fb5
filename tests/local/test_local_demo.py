"""`queueworker demo` in its short form: 0 -> N -> 0 workers, every job done, 0 lost."""

from __future__ import annotations

import os
import re
import subprocess
import sys


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
    assert peak and int(peak.group(1)) >= 2, out
    assert re.search(r"scale up 0 -> \d+: \S", out), "the scale decisions and reasons are shown"
    assert re.search(r"p95 \d+\.\d+s", out)
    assert "kubectl apply -f crds/" in out and "helm install" in out
