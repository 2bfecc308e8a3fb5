"""Run `queueworker api` as a subprocess (the real uvicorn server) for a test."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

from support.api_client import SECRET
from support.redis_server import free_port
from support.worker_proc import ROOT, wait_until, worker_env


class ApiServer:
    def __init__(self, redis_url: str, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "queueworker.cli", "api", "--host", "127.0.0.1",
               "--port", str(self.port), *args]
        # Its log goes to a file, not a pipe: nobody reads a pipe while the test runs, and
        # once its 64 KiB fill up, the server's next access-log line blocks its event loop.
        self.log = tempfile.TemporaryFile(mode="w+", prefix="qw-api-")  # noqa: SIM115 - kept
        # open for output(); the OS removes it when the test process ends
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=worker_env(redis_url, QUEUEWORKER_API_JWT_SECRET=SECRET.decode()),
            stdout=self.log, stderr=subprocess.STDOUT, text=True)
        try:
            wait_until(self._up, timeout=30, interval=0.1, what="queueworker api to answer")
        except AssertionError:
            self.stop()
            raise

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"queueworker api exited:\n{self.output()}")
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> str:
        """Stop it (SIGTERM, then SIGKILL after 15 s); its whole log."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.output()
