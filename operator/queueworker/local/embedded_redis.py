"""A throwaway redis-server for local mode and the demo, when no Redis is reachable.

It binds to loopback only, on a free port, with AOF on (``appendfsync always``:
a demo that restarts it, or the chaos test, must not lose acknowledged jobs) and
keeps its data in a folder. `stop()` shuts it down (SHUTDOWN, then SIGTERM,
then SIGKILL) and removes the folder when this object created it.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from queueworker.common.errors import QueueworkerError
from queueworker.common.log import log_event
from queueworker.local.orphans import die_with_parent
from queueworker.worker.connection import sync_client

log = logging.getLogger("queueworker.local.redis")


class EmbeddedRedisError(QueueworkerError, RuntimeError):
    pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """True when a server could listen on the port now (TIME_WAIT leftovers do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen(1)
        except OSError:
            return False
        return True


def reachable(url: str, timeout: float = 1.0) -> bool:
    """True when a Redis answers PING at `url` (a wrong password counts as reachable)."""
    client = sync_client(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
        return True
    except redis.AuthenticationError:
        return True
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


class EmbeddedRedis:
    """One redis-server child process. Use as a context manager or start()/stop()."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None,
                 binary: str | None = None) -> None:
        found = binary or shutil.which("redis-server")
        if found is None:
            raise EmbeddedRedisError(
                "redis-server not found on PATH: run `make setup` (scripts/ensure-tools.sh) "
                "or install Debian's redis-server"
            )
        self.binary = found
        self.port = port or free_port()
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="queueworker-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def owns_data_dir(self) -> bool:
        """True when the data folder is a temp dir that `stop()` deletes."""
        return self._own_dir

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.data_dir), "--save", "", "--protected-mode", "yes",
            "--appendonly", "yes", "--appendfsync", "always",
            "--logfile", str(self.data_dir / "redis.log"),
        ]
        # Own session: a Ctrl-C in the terminal reaches local mode, which then
        # stops Redis last, after the workers have handed their jobs back.
        self.proc = subprocess.Popen(die_with_parent(args), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            self._wait_ready(self.proc, timeout)
        except BaseException:
            self._terminate()  # also on Ctrl-C: never leave a redis-server behind
            raise
        log_event(log, "redis.embedded_started", url=self.url, pid=self.proc.pid,
                  dir=str(self.data_dir))
        return self

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited with {proc.returncode} "
                    f"(see {self.data_dir / 'redis.log'})"
                )
            if reachable(self.url, timeout=0.5):
                return
            time.sleep(0.05)
        raise EmbeddedRedisError(f"redis-server did not answer on port {self.port}")

    def _terminate(self, timeout: float = 10.0) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                # SHUTDOWN fsyncs the AOF before exiting; SIGTERM does the same,
                # it is the fallback when the connection fails.
                redis.Redis(port=self.port, socket_timeout=2).shutdown(nosave=False)
            except (redis.RedisError, OSError):
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.proc = None

    def restart(self) -> None:
        """Stop and start on the same port and data folder (the AOF brings the data back)."""
        self._terminate()
        self.start()

    def stop(self) -> None:
        self._terminate()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        log_event(log, "redis.embedded_stopped", port=self.port)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
