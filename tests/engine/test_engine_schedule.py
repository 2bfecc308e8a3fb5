"""scaling.minReplicasSchedules in the engine: a window's floor while it is open
(engine/schedule.py), named in the reason line, kept in memory until its next tick."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from queueworker.engine import decide

from support.engine_specs import obs, spec

BERLIN = ZoneInfo("Europe/Berlin")
DAY = {"name": "office", "start": "30 7 * * 1-5", "end": "0 19 * * 1-5",
       "timezone": "Europe/Berlin", "minReplicas": 4}


def _at(*when: int) -> float:
    return datetime(*when, tzinfo=BERLIN).timestamp()  # type: ignore[misc]


def _s(**scaling: Any) -> Any:
    return spec({"maxReplicas": 10, "minReplicasSchedules": [DAY], **scaling})


def test_an_open_window_raises_the_floor_and_says_so() -> None:
    d = decide(_s(), obs(_at(2026, 12, 1, 9, 0), current=1), None)  # a Tuesday
    assert d.desired == 4, d.reason
    assert "schedule 'office' (30 7 * * 1-5 to 0 19 * * 1-5, Europe/Berlin) open: " \
        "minReplicas 4" in d.reason
    # Until its end tick the answer is kept, not computed again.
    assert d.memory["sched"]["u"] == _at(2026, 12, 1, 19, 0)


def test_outside_the_window_the_spec_floor_applies() -> None:
    for when in ((2026, 12, 1, 7, 29), (2026, 12, 1, 19, 0), (2026, 12, 5, 10, 0)):  # Sat
        d = decide(_s(), obs(_at(*when), current=0), None)
        assert d.desired == 0, (when, d.reason)
        assert "schedule" not in d.reason


def test_the_window_opens_at_its_start_minute_and_closes_at_its_end() -> None:
    s = _s(idleSecondsBeforeZero=0, scaleDown={"stabilizationSeconds": 0})
    memory: dict[str, Any] | None = None
    current = 0
    seen = {}
    for minute in range(7 * 60 + 28, 19 * 60 + 2):
        now = _at(2026, 12, 1, minute // 60, minute % 60)
        d = decide(s, obs(now, current=current), memory)
        memory, current = d.memory, d.desired
        seen[minute] = current
    assert seen[7 * 60 + 29] == 0
    assert seen[7 * 60 + 30] == 4
    assert seen[18 * 60 + 59] == 4
    assert seen[19 * 60] == 0


def test_a_lower_window_than_min_replicas_changes_nothing() -> None:
    d = decide(_s(minReplicas=6), obs(_at(2026, 12, 1, 9, 0), current=6), None)
    assert d.desired == 6
    assert "schedule" not in d.reason
