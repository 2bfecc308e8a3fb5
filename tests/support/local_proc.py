"""Run `queueworker local` as a real subprocess in tests and watch its output."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

HANDLER = "support.local_jobs:handle"  # tests/ is on the workers' PYTHONPATH


def local_cmd(manifest: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "queueworker.cli", "local", "-f", str(manifest), "--no-ui",
            *extra]


def manifest_doc(redis_url: str, queues: tuple[str, ...] = ("work",), *,
                 handler: str = HANDLER, concurrency: int = 1, max_replicas: int = 4,
                 target: int = 2, idle: int = 2, grace: int = 20, margin: int = 10,
                 down_window: int = 1, worker_args: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "apiVersion": "queueworker.dev/v1alpha1",
        "kind": "QueueWorker",
        "metadata": {"name": "t"},
        "spec": {
            "redis": {"url": redis_url},
            "queues": [{"name": q} for q in queues],
            "scaling": {
                "minReplicas": 0, "maxReplicas": max_replicas,
                "targetBacklogPerReplica": target, "pollIntervalSeconds": 0.5,
                "idleSecondsBeforeZero": idle,
                "scaleDown": {"stabilizationSeconds": down_window},
            },
            "drain": {"graceSeconds": grace, "deadlineMarginSeconds": margin},
            "template": {"spec": {"containers": [{
                "name": "worker", "image": "local",
                "args": ["queueworker", "worker", "--handler", handler,
                         "--concurrency", str(concurrency), *worker_args],
                "env": [{"name": "PYTHONPATH", "value": str(Path(__file__).parents[1])}],
            }]}},
        },
    }


def write_manifest(tmp_path: Path, redis_url: str, **kw: Any) -> Path:
    path = tmp_path / "qw.yaml"
    path.write_text(yaml.safe_dump(manifest_doc(redis_url, **kw)), encoding="utf-8")
    return path


class LocalProc:
    """A `queueworker local` process whose output lines are collected as they come."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 30.0, start: int = 0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[start:]:
                if text in line:
                    return line
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r} within {timeout}s:\n{self.output[-4000:]}")

    def interrupt(self, timeout: float = 60.0) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def wait(self, timeout: float = 60.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)


def children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (from /proc: no psutil needed)."""
    out: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if fields[0] != "Z" and int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def wait_for_line(proc: subprocess.Popen[str], text: str, timeout: float = 30.0) -> str:
    """Read `proc.stdout` until a line holds `text` (for tests that own the Popen)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if text in line:
            return line
    raise AssertionError(f"no line with {text!r} within {timeout}s")
