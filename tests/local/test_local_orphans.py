"""A SIGKILLed local mode leaves nothing behind: workers drain, Redis stops."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
import redis

from queueworker.local.embedded_redis import free_port, port_is_free
from queueworker.worker.producer import Producer

from support.local_proc import LocalProc, children, local_cmd, write_manifest

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def test_sigkill_of_local_mode_stops_its_workers_and_redis(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, f"redis://127.0.0.1:{free_port()}/0", max_replicas=2,
                              target=1)
    local = LocalProc([*local_cmd(manifest), "--embedded-redis", "--data-dir",
                       str(tmp_path / "redis")])
    try:
        line = local.wait_for("started an embedded redis-server")
        match = re.search(r"embedded redis-server at redis://127\.0\.0\.1:(\d+)/0", line)
        assert match, line
        port = int(match.group(1))
        producer = Producer(redis.Redis(port=port))
        for n in range(4):
            producer.enqueue("work", {"n": n, "seconds": 3.0})
        local.wait_for(" -> 2: ", timeout=20)
        deadline = time.monotonic() + 20
        kids: list[int] = []
        while len(kids) < 3 and time.monotonic() < deadline:  # 2 workers + redis-server
            kids = children(local.proc.pid)
            time.sleep(0.1)
        assert len(kids) >= 3, kids
    finally:
        local.kill()  # SIGKILL: none of local mode's cleanup runs
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in kids if _alive(p)], "children outlived local mode"
    assert port_is_free(port)
