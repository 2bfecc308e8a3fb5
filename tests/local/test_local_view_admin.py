"""Local mode's views show a paused queue and its next schedule tick (issue 16)."""

from __future__ import annotations

import io
import time

from rich.console import Console

from queueworker.engine.types import QueueDepth
from queueworker.local.view import Snapshot, render, status_line


def _snap() -> Snapshot:
    snap = Snapshot(name="demo", redis="redis://127.0.0.1:1234/0", started_at=time.time())
    snap.queues = (QueueDepth("mail", "native", waiting=9, in_flight=1, paused=True),
                   QueueDepth("reports", "native", waiting=0, in_flight=0,
                              schedule_due_in=12.4),
                   QueueDepth("late", "native", waiting=0, in_flight=0, schedule_due_in=-3.0),
                   QueueDepth("plain", "native", waiting=2, in_flight=0))
    return snap


def test_live_view_marks_paused_queues_and_ticks() -> None:
    console = Console(record=True, width=120, file=io.StringIO())
    console.print(render(_snap()))
    text = console.export_text()
    for expected in ("mail (paused)", "reports (tick in 12s)", "late (tick due 3s ago)"):
        assert expected in text, f"{expected!r} missing from:\n{text}"
    assert "plain (" not in text


def test_status_line_marks_paused_queues_and_ticks() -> None:
    line = status_line(_snap())
    assert "mail=9+1,paused " in line
    assert "reports=0+0,tick=12s " in line
    assert "late=0+0,tick=-3s " in line
    assert line.endswith("plain=2+0")
