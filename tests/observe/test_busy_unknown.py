"""Pods whose busy state nothing reports are *unknown*: said so in status and local
mode's view, and removed after the pods known idle (never before them)."""

from __future__ import annotations

from collections import deque

from queueworker.engine import victims
from queueworker.local.view import Snapshot, status_line
from queueworker.observe import busy
from queueworker.observe.busy import PodRef, WorkerReport
from queueworker.observe.busy.base import assign
from queueworker.observe.heartbeats import UNKNOWN_AGE, PodBeat, pod_state
from queueworker.operator import api
from queueworker.operator.controller.observe import busy_pods
from queueworker.operator.controller.report import Seen, volatile_status


def test_known_idle_pods_go_before_unknown_ones_busy_last() -> None:
    refs = [PodRef("a", ip="10.0.0.1"), PodRef("b", ip="10.0.0.2"), PodRef("c")]
    # b's worker is blocked waiting for work (CLIENT LIST, by IP); c runs a job; a: nothing.
    beats = assign([WorkerReport("client 7", None, None, busy=False, running=0,
                                 ip="10.0.0.2"),
                    WorkerReport("bullmq c", "c", None, busy=True, running=1)], refs)
    assert set(beats) == {"b", "c"}
    pods = [pod_state(n, beats.get(n), ready=True, now=1000.0) for n in ("a", "b", "c")]
    assert pods[0].beat_age_seconds == UNKNOWN_AGE
    assert victims.pick(pods, 1) == ("b",)
    assert victims.pick(pods, 2) == ("b", "a")
    assert victims.busy_count(pods) == 1


def test_two_pods_on_one_ip_are_not_told_apart_by_it() -> None:
    refs = [PodRef("a", ip="10.0.0.1"), PodRef("b", ip="10.0.0.1")]
    assert assign([WorkerReport("client 1", None, None, False, 0, ip="10.0.0.1")], refs) == {}


def _spec(layout: str) -> api.QueueWorkerSpec:
    return api.QueueWorkerSpec.model_validate({
        "redis": {"url": "redis://r:6379/0"}, "queues": [{"name": "q", "layout": layout}],
        "template": {"spec": {"containers": [{"name": "w", "image": "i"}]}}})


def test_status_counts_busy_idle_unknown_and_says_why() -> None:
    pods = [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d", "terminating": True}]
    beats = {"b": PodBeat("b", "idle", 0), "c": PodBeat("c", "busy", 1)}
    reading = busy.BusyReading(beats)
    got = busy_pods(_spec("list"), pods, beats, reading)
    assert {k: got[k] for k in ("busy", "idle", "unknown")} == {"busy": 1, "idle": 1,
                                                                "unknown": 1}
    assert "no busy adapter for layout list" in got["source"]
    dramatiq = busy_pods(_spec("dramatiq"), pods, beats, reading)["source"]
    assert "dramatiq: known only for workers named after their pod (opt-in" in dramatiq
    laravel = busy_pods(_spec("laravel"), pods, beats, reading)["source"]
    assert "laravel: idle only when blocked waiting (CLIENT LIST)" in laravel
    assert "source" not in busy_pods(_spec("native"), pods, beats, reading)


def test_status_and_local_view_show_unknown() -> None:
    from queueworker.engine.types import Decision, Observation

    obs = Observation(now=0.0, queues=(), current_replicas=3, ready_replicas=3, pods=())
    decision = Decision(desired=3, reason="r")
    seen = Seen.of(obs, decision, {}, 3, None, False, 1,
                   busy_pods={"busy": 1, "idle": 0, "unknown": 2})
    assert volatile_status(seen)["busyPods"]["unknown"] == 2
    snap = Snapshot(name="x", redis="r", started_at=0.0, busy=1, unknown=2,
                    decisions=deque())
    assert " busy=1 unknown=2 " in status_line(snap)
    assert " unknown=" not in status_line(Snapshot(name="x", redis="r", started_at=0.0))


class _Notes:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def note(self, text: str) -> None:
        self.lines.append(text)


def test_local_mode_says_where_busy_comes_from_per_layout() -> None:
    from queueworker.local.session import _note_busy_source

    for layout, expected in (("laravel", "laravel workers count idle while blocked"),
                             ("dramatiq", "unknown for layout dramatiq"),
                             ("bullmq", "read from the bullmq workers' own reports")):
        notes = _Notes()
        _note_busy_source(_spec(layout), notes)  # type: ignore[arg-type]
        assert len(notes.lines) == 1
        assert expected in notes.lines[0]
