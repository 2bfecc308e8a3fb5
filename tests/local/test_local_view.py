"""The live view and the plain lines show what the brief promises."""

from __future__ import annotations

import io
import time

from rich.console import Console

from queueworker.engine.types import QueueDepth
from queueworker.local.view import PlainView, ScaleRecord, Snapshot, render
from queueworker.observe.reading_sync import pod_states


def _snap() -> Snapshot:
    snap = Snapshot(name="demo", redis="redis://127.0.0.1:1234/0", started_at=time.time())
    snap.queues = (QueueDepth("urgent", "native", waiting=7, in_flight=3,
                              oldest_age_seconds=4.25),
                   QueueDepth("bulk", "native", waiting=0, in_flight=0))
    snap.desired, snap.running, snap.ready, snap.busy = 3, 2, 2, 2
    snap.done, snap.failed, snap.retried, snap.rate = 41, 1, 2, 3.5
    snap.decisions.append(ScaleRecord(time.time(), 0, 3, "up", "backlog 10 / target 4 -> 3"))
    return snap


def test_live_view_shows_queues_replicas_decisions_and_counts() -> None:
    console = Console(record=True, width=120, file=io.StringIO())
    console.print(render(_snap()))
    text = console.export_text()
    for expected in ("urgent", "4.2s", "desired 3", "running 2", "busy 2", "jobs done 41",
                     "failed 1", "retried 2", "0 -> 3", "backlog 10 / target 4 -> 3"):
        assert expected in text, f"{expected!r} missing from:\n{text}"


def test_plain_view_prints_each_decision_once_and_a_status_line() -> None:
    out = io.StringIO()
    view = PlainView(out=out, every=3600)
    snap = _snap()
    view.update(snap)
    view.update(snap)
    lines = out.getvalue().splitlines()
    assert lines.count("scale up 0 -> 3: backlog 10 / target 4 -> 3") == 1
    status = [line for line in lines if line.startswith("status ")]
    assert len(status) == 1
    assert "backlog=10" in status[0]
    assert "oldest=4.2s" in status[0]
    assert "urgent=7+3" in status[0]


def test_replicas_without_heartbeats_are_ready_only_for_non_native_commands() -> None:
    native = pod_states(["a"], ["b"], {}, heartbeats_expected=True)
    other = pod_states(["a"], ["b"], {}, heartbeats_expected=False)
    assert [p.ready for p in native] == [False, False]
    assert [p.ready for p in other] == [True, False]
    assert [p.terminating for p in other] == [False, True]
