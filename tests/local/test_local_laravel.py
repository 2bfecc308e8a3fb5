"""Real Laravel `queue:work` replicas under `queueworker local`: 0 -> 4 -> 0, none lost or cut.

Debian's php-laravel-framework (tests/support/laravel_app.py). Laravel's worker
registers nothing, but with `block_for` an idle one waits in BLPOP on a
connection named after its replica (`'name' => env('POD_NAME')`): CLIENT LIST
says which replicas are idle, and they are stopped first; the others are
unknown, and the in-flight count (`:reserved`) keeps the replicas the running
jobs need. A replica stopped anyway finishes its job on SIGTERM: `--timeout`
(10 s, the longest a job may run) is below the grace (15 s).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from support.laravel_app import PREFIX, make_app
from support.local_foreign import NAMES, _runs, manifest, run_burst

pytestmark = pytest.mark.slow


def test_real_laravel_workers_burst_none_lost_none_cut(tmp_path: Path, redis_url: str) -> None:
    app = make_app(tmp_path, redis_url, QUEUE_BLOCK_FOR="2")
    marks = tmp_path / "marks"
    marks.mkdir()
    path = manifest(tmp_path, redis_url, "lv",
                    {"name": "default", "layout": "laravel", "keyPrefix": PREFIX},
                    app.worker("--sleep=0", "--timeout=10", "--tries=1"), app.env, grace=15)
    jobs: list[str] = []

    def send(name: str, seconds: float) -> None:
        jobs.append(f"{name}:{seconds}")
        if len(jobs) == len(NAMES):  # one artisan process dispatches the burst
            app.dispatch(marks, *jobs)

    output = run_burst(path, marks, send)
    assert "busy replicas: laravel workers count idle while blocked" in output
    assert "warning:" not in output, "--timeout is below the grace"
    # Busy replicas outlive idle ones: none was asked to stop while it ran a long job
    # (queue:work runs its jobs in its own process: a job's pid is its replica's).
    pids = dict(re.findall(r"event=replica\.started name=(\S+) pid=(\d+)", output))
    stops = [(pids[name], when) for when, name in _draining(output)]
    assert len(stops) == 4, output
    starts, dones = _runs(marks, "start"), _runs(marks, "done")
    assert {starts[n][0][0] for n in NAMES} <= {int(p) for p, _ in stops}, "pids are replicas'"
    for n in NAMES:
        if n.startswith("long"):
            (pid, began), (_, ended) = starts[n][0], dones[n][0]
            cut = [t for p, t in stops if int(p) == pid and began < t < ended - 0.2]
            assert not cut, f"replica of {n} (pid {pid}) asked to stop while it ran"


def _draining(output: str) -> list[tuple[float, str]]:
    """(epoch, replica) of each replica local mode asked to stop."""
    return [(datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp(),
             name) for ts, name in
            re.findall(r"ts=(\S+) .*event=replica\.draining name=(\S+)", output)]
