"""The process pool with real processes: stop order, crash backoff, SIGKILL after grace."""

from __future__ import annotations

import sys
import time

import pytest

from queueworker.local.pool import ProcessPool

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
# Ignores SIGTERM, like a worker stuck in a job that never checks for a drain.
STUBBORN = [sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "time.sleep(60)"]


def _until(pool: ProcessPool, predicate: object, timeout: float) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        pool.reap()
        time.sleep(0.05)


def test_scale_down_stops_the_named_idle_replicas_first_then_the_newest() -> None:
    pool = ProcessPool("p", SLEEPER, {}, grace_seconds=5)
    try:
        started, _ = pool.scale_to(4)
        assert started == 4
        assert sorted(r.name for r in pool.active()) == ["p-1", "p-2", "p-3", "p-4"]
        _, stopped = pool.scale_to(2, remove_first=("p-1",))
        assert stopped == ["p-1", "p-4"]
        assert sorted(r.name for r in pool.active()) == ["p-2", "p-3"]
        _until(pool, lambda: len(pool.running()) == 2, 10)
        assert sorted(r.name for r in pool.running()) == ["p-2", "p-3"]
        assert pool.stats.exited_failed == 2  # SIGTERM'd sleepers exit -15, not 0
    finally:
        pool.drain_all(timeout=10)
    assert not pool.running()


def test_crashing_replicas_restart_with_backoff() -> None:
    pool = ProcessPool("c", [sys.executable, "-c", "raise SystemExit(3)"], {},
                       grace_seconds=5)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        pool.reap()
        pool.scale_to(1)  # what the runner does every tick to keep the count
        time.sleep(0.05)
    pool.drain_all(timeout=5)
    # Without backoff this would be ~one start per tick (dozens); with it, a handful.
    assert 2 <= pool.stats.started <= 6, pool.stats
    assert set(pool.stats.exit_codes) == {3}


def test_a_replica_that_ignores_sigterm_is_killed_after_grace() -> None:
    pool = ProcessPool("s", STUBBORN, {}, grace_seconds=1)
    replica = pool.start_one()
    time.sleep(1.0)  # let it install its SIGTERM handler
    pool.stop([replica.name])
    _until(pool, lambda: not pool.running(), 10)
    assert not pool.running()
    assert pool.stats.killed_after_grace == 1
    assert replica.exit_code == -9


def test_a_command_that_cannot_run_is_reported_and_retried_with_backoff() -> None:
    pool = ProcessPool("m", ["/nonexistent/queue-worker-binary"], {}, grace_seconds=1)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        started, _ = pool.scale_to(1)
        assert started == 0
        time.sleep(0.05)
    assert pool.last_start_error
    assert "No such file" in pool.last_start_error
    assert 1 <= pool.stats.start_errors <= 4, pool.stats
    assert not pool.running()
