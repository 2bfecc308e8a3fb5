"""The embedded redis-server: starts, keeps data across a restart (AOF), stops cleanly."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import redis

from queueworker.local.embedded_redis import (
    EmbeddedRedis,
    free_port,
    port_is_free,
    reachable,
)
from queueworker.worker.producer import Producer

from support.local_proc import LocalProc, local_cmd, write_manifest
from support.redis_server import RedisServer
from support.worker_proc import wait_until

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); its /proc status says Z.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" in status.read_text()


def test_start_restart_stop(tmp_path: Path) -> None:
    server = EmbeddedRedis(data_dir=tmp_path / "data").start()
    pid, port = server.pid, server.port
    assert pid is not None
    client = redis.Redis.from_url(server.url)
    client.set("kept", "yes")
    server.restart()
    assert server.port == port
    assert client.get("kept") == b"yes", "AOF should bring the key back after a restart"
    assert any((tmp_path / "data").rglob("*.aof")), "AOF files in the data folder"
    server.stop()
    client.close()
    assert _gone(pid)
    assert port_is_free(port)
    assert not reachable(f"redis://127.0.0.1:{port}/0", timeout=0.5)
    # A folder the caller gave is kept: it is their data.
    assert (tmp_path / "data").is_dir()


def test_own_data_dir_is_removed() -> None:
    with EmbeddedRedis() as server:
        data_dir = server.data_dir
        assert data_dir.is_dir()
    assert not data_dir.exists()


def test_local_mode_starts_and_stops_embedded_redis(tmp_path: Path) -> None:
    dead_url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    manifest = write_manifest(tmp_path, redis_url=dead_url)
    local = LocalProc([*local_cmd(manifest), "--embedded-redis"])
    try:
        line = local.wait_for("started an embedded redis-server")
        match = re.search(r"embedded redis-server at redis://127\.0\.0\.1:(\d+)/0", line)
        assert match, line
        port = int(match.group(1))
        assert reachable(f"redis://127.0.0.1:{port}/0")
        local.wait_for("status ")  # the loop has polled it
        code = local.interrupt()
    finally:
        local.kill()
    assert code == 0, local.output
    deadline = time.monotonic() + 10
    while not port_is_free(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert port_is_free(port), "embedded redis should be gone when local mode exits"
    assert "event=redis.embedded_stopped" in local.output


def test_without_flag_an_unreachable_redis_is_an_error(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    res = subprocess.run(local_cmd(manifest), capture_output=True, text=True, timeout=60,
                         check=False)
    assert res.returncode == 1
    assert "--embedded-redis" in res.stdout + res.stderr


def test_wait_redis_gives_a_late_redis_time_to_start(tmp_path: Path) -> None:
    """After a reboot local mode may start before its Redis: --wait-redis waits, then runs."""
    port = free_port()
    manifest = write_manifest(tmp_path, redis_url=f"redis://127.0.0.1:{port}/0")
    local = LocalProc([*local_cmd(manifest), "--wait-redis", "60"])
    server = None
    try:
        local.wait_for("waiting up to 60s for Redis")
        time.sleep(2)
        assert local.proc.poll() is None, local.output  # still waiting, not given up
        server = RedisServer(port=port).start()
        client = redis.Redis.from_url(server.url)
        Producer(client).enqueue("work", {"n": 1, "seconds": 0.05})
        wait_until(lambda: bool(client.sismember("t:done", "1")), 60, what="the job ran")
        assert local.interrupt() == 0, local.output
    finally:
        local.kill()
        if server is not None:
            server.stop()


def test_embedded_redis_dies_with_a_sigkilled_local_mode(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    local = LocalProc([*local_cmd(manifest), "--embedded-redis", "--data-dir",
                       str(tmp_path / "redis")])
    try:
        line = local.wait_for("started an embedded redis-server")
        match = re.search(r"embedded redis-server at redis://127\.0\.0\.1:(\d+)/0", line)
        assert match, line
        port = int(match.group(1))
        assert not port_is_free(port)
    finally:
        local.kill()  # SIGKILL: no cleanup code runs in local mode
    deadline = time.monotonic() + 10
    while not port_is_free(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert port_is_free(port), "the parent-death signal stopped redis-server"
