"""Run `queueworker worker` as a subprocess against a test redis-server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"

FAST = ["--lease", "1", "--heartbeat-interval", "0.5", "--reap-interval", "0.2",
        "--poll-interval", "0.2"]


def worker_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["QUEUEWORKER_REDIS_URL"] = redis_url
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def start_worker(redis_url: str, *args: str, handler: str = "support.worker_handlers:record",
                 queues: str | None = "default", fast: bool = True, **env: str
                 ) -> subprocess.Popen[str]:
    """queues=None: no --queue option (the environment's QUEUEWORKER_QUEUES applies)."""
    cmd = [sys.executable, "-m", "queueworker.cli", "worker",
           *(["--queue", queues] if queues else []),
           "--handler", handler, *(FAST if fast else []), *args]
    return subprocess.Popen(cmd, cwd=ROOT, env=worker_env(redis_url, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_until(cond: Callable[[], bool], timeout: float = 20.0, interval: float = 0.02,
               what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def llen(redis_url: str, key: str) -> int:
    return int(redis.Redis.from_url(redis_url).llen(key))


def entries(redis_url: str, key: str) -> list[str]:
    return [x.decode() for x in redis.Redis.from_url(redis_url).lrange(key, 0, -1)]


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 20.0
         ) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"worker did not exit after {sig}:\n{out}") from None
    return proc.returncode, out
