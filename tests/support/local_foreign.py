"""One burst run for other libraries' real workers under `queueworker local`.

A few long jobs among short ones, scaled 0 -> N -> 0; every job logs its own
start and finish (`<marks>/<name>.start|.done`, one line per run with the pid).
What must hold: none lost (every job done), none cut or run twice (one start,
one finish each), no replica SIGKILLed at the grace, and no scale to zero
while a long job runs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from support.local_proc import LocalProc, local_cmd
from support.worker_proc import wait_until

HERE = Path(__file__).resolve().parents[1] / "local"  # the job modules
LONG, SHORT = 6.0, 0.5
NAMES = [f"long{i}" for i in range(2)] + [f"short{i}" for i in range(6)]


def manifest(tmp_path: Path, redis_url: str, name: str, queue: dict[str, Any],
             command: list[str], env: dict[str, str], grace: int = 15) -> Path:
    doc: dict[str, Any] = {
        "apiVersion": "queueworker.dev/v1alpha1", "kind": "QueueWorker",
        "metadata": {"name": name},
        "spec": {
            "redis": {"url": redis_url},
            "queues": [queue],
            "scaling": {"minReplicas": 0, "maxReplicas": 4, "targetBacklogPerReplica": 1,
                        "pollIntervalSeconds": 0.5, "idleSecondsBeforeZero": 2,
                        "scaleDown": {"stabilizationSeconds": 1}},
            "drain": {"graceSeconds": grace, "deadlineMarginSeconds": 2},
            "template": {"spec": {"containers": [{
                "name": "worker", "image": "local", "command": command,
                "env": [{"name": "PYTHONPATH", "value": str(HERE)}]
                + [{"name": k, "value": v} for k, v in env.items()],
            }]}},
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _runs(marks: Path, suffix: str) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for f in marks.glob(f"*.{suffix}"):
        out[f.stem] = [(int(p), float(t)) for p, t in
                       (line.split() for line in f.read_text().splitlines())]
    return out


def _zero_at(output: str) -> list[float]:
    """Epoch times of local mode's scale-downs to 0 (its structured `scaled` lines)."""
    out = []
    for m in re.finditer(r"ts=(\S+) .*event=scaled direction=down .*desired=0 ", output):
        out.append(time.mktime(time.strptime(m[1][:19], "%Y-%m-%dT%H:%M:%S"))
                   - time.timezone + float("0" + m[1][19:-1]))
    return out


def run_burst(manifest_path: Path, marks: Path, send: Callable[[str, float], None]) -> str:
    """Run the burst; returns local mode's output after checking what must hold."""
    local = LocalProc(local_cmd(manifest_path))
    try:
        local.wait_for("status ")
        for n in NAMES:
            send(n, LONG if n.startswith("long") else SHORT)
        local.wait_for(" -> 4: ", timeout=20)
        wait_until(lambda: set(_runs(marks, "done")) == set(NAMES), 60, 0.2,
                   "every job finished")
        local.wait_for(" -> 0: ", timeout=30, start=0)
        wait_until(lambda: "running=0 " in local.lines[-1], 30, 0.2, "every replica stopped")
        code = local.interrupt(timeout=60)
    finally:
        local.kill()
    assert code == 0, local.output
    starts, dones = _runs(marks, "start"), _runs(marks, "done")
    assert {n: len(r) for n, r in starts.items()} == dict.fromkeys(NAMES, 1), "run twice"
    assert {n: [p for p, _ in r] for n, r in dones.items()} == {
        n: [p for p, _ in r] for n, r in starts.items()}, "a job was cut"
    assert "past grace" not in local.output, "a worker was SIGKILLed mid-job"
    last_long = max(dones[n][0][1] for n in NAMES if n.startswith("long"))
    zeros = _zero_at(local.output)
    assert zeros, local.output
    assert min(zeros) >= last_long - 1.0, "went to 0 while a long job ran"
    return local.output
