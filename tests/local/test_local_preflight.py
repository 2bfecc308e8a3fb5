"""Checked before any replica starts: one clear error, not a crash loop; and a
warning before a temporary embedded Redis with jobs in it is deleted."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from queueworker.local import preflight
from queueworker.local.embedded_redis import free_port
from queueworker.worker.producer import Producer

from support.local_proc import LocalProc, local_cmd, manifest_doc

pytestmark = pytest.mark.slow


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "qw.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = doc["spec"]["template"]["spec"]["containers"][0]
    return container


def test_a_handler_that_cannot_be_imported_stops_local_mode_before_any_replica(
        tmp_path: Path, redis_url: str) -> None:
    doc = manifest_doc(redis_url, handler="no_such_module_here:handle")
    local = LocalProc(local_cmd(_write(tmp_path, doc)))
    try:
        code = local.wait(timeout=60)
    finally:
        local.kill()
    assert code == 1, local.output
    assert "cannot import handler module 'no_such_module_here'" in local.output
    assert "replica.started" not in local.output
    assert "crashed" not in local.output


def test_a_command_that_is_not_installed_is_one_error(tmp_path: Path, redis_url: str) -> None:
    doc = manifest_doc(redis_url)
    _container(doc)["args"] = ["no-such-worker-binary", "run"]
    local = LocalProc(local_cmd(_write(tmp_path, doc)))
    try:
        code = local.wait(timeout=30)
    finally:
        local.kill()
    assert code == 1, local.output
    assert "'no-such-worker-binary' is not installed or not on PATH" in local.output
    assert "replica.started" not in local.output


def test_check_passes_a_working_native_worker_and_names_a_bad_attribute() -> None:
    base = [sys.executable, "-m", "queueworker.cli", "worker", "--redis-url",
            "redis://127.0.0.1:1/0", "--queue", "q"]
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    assert preflight.check([*base, "--handler", "support.local_jobs:handle"], env) is None
    why = preflight.check([*base, "--handler", "support.local_jobs:nope"], env)
    assert why is not None
    assert "has no 'nope'" in why


def test_a_check_killed_from_outside_is_checked_again(tmp_path: Path) -> None:
    # The chaos harness (or the OOM killer) may SIGKILL the check itself: exit -9
    # says nothing about the command, so it must neither stop local mode nor pass
    # a broken handler unchecked.
    python = tmp_path / "python-killed-once"
    python.write_text(f"""#!/bin/sh
if [ ! -e "$QW_MARK" ]; then touch "$QW_MARK"; kill -9 $$; fi
exec {sys.executable} "$@"
""")
    python.chmod(0o755)
    args = ["-m", "queueworker.cli", "worker", "--redis-url", "redis://127.0.0.1:1/0",
            "--queue", "q", "--handler"]
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           "QW_MARK": str(tmp_path / "killed")}
    why = preflight.check([str(python), *args, "support.local_jobs:nope"], env)
    assert (tmp_path / "killed").exists()
    assert why is not None
    assert "has no 'nope'" in why  # the second check ran and gave the real verdict
    (tmp_path / "killed").unlink()
    assert preflight.check([str(python), *args, "support.local_jobs:handle"], env) is None


def test_ctrl_c_warns_with_a_count_before_discarding_a_temporary_embedded_redis(
        tmp_path: Path) -> None:
    doc = manifest_doc(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    doc["spec"]["scaling"]["paused"] = True  # no worker takes the jobs
    local = LocalProc(local_cmd(_write(tmp_path, doc), "--embedded-redis"))
    try:
        line = local.wait_for("started an embedded redis-server at ")
        match = re.search(r"redis-server at (redis://\S+)", line)
        assert match is not None
        producer = Producer(redis.Redis.from_url(match.group(1)))
        for n in range(3):
            producer.enqueue("work", {"n": n})
        local.wait_for("status ", start=len(local.lines))
        code = local.interrupt(timeout=60)
    finally:
        local.kill()
    assert code == 0, local.output
    assert "discarding the temporary embedded Redis with 3 jobs in it (waiting 3" in local.output
