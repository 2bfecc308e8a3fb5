"""Per-replica environment: each replica gets its own Celery node name (local/pool.py
`named`, observe/busy/celery.py `NODE_NAME`), unless the template sets it already."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from queueworker.local.pool import ProcessPool
from queueworker.observe.busy.celery import NODE_NAME

# Multi-process: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow


def _run(tmp_path: Path, env: dict[str, str]) -> dict[str, str]:
    # Each replica writes the variable it got to a file named after itself.
    code = ("import os, pathlib, sys; pathlib.Path(sys.argv[1], os.environ['HOSTNAME'])"
            ".write_text(os.environ.get('CELERY_WORKER_HOSTNAME', '-'))")
    pool = ProcessPool("n", [sys.executable, "-c", code, str(tmp_path)], env, grace_seconds=5,
                       named=NODE_NAME)
    try:
        pool.scale_to(2)
        deadline = time.monotonic() + 20
        while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        pool.drain_all(timeout=10)
    return {f.name: f.read_text() for f in tmp_path.iterdir()}


def test_each_replica_gets_its_own_celery_node_name(tmp_path: Path) -> None:
    assert _run(tmp_path, {}) == {"n-1": "celery@n-1", "n-2": "celery@n-2"}


def test_a_node_name_the_template_sets_is_kept(tmp_path: Path) -> None:
    got = _run(tmp_path, {"CELERY_WORKER_HOSTNAME": "mine@host"})
    assert got == {"n-1": "mine@host", "n-2": "mine@host"}
