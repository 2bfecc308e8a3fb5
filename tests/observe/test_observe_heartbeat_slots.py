"""What a native beat tells the engine beyond busy/idle: the worker's job slots
(its concurrency) and the jobs it holds prefetched, where the beat says."""

from __future__ import annotations

import json

from queueworker.observe import heartbeats
from queueworker.worker.heartbeat import Heartbeat


def _beat(**extra: object) -> Heartbeat:
    return Heartbeat.from_json(json.dumps({
        "id": "w1", "pod": "p1", "state": "busy", "beat_at": 100.0,
        "in_flight": [{"id": "j1", "queue": "q", "started_at": 99.0}], **extra}))


def test_concurrency_and_buffered_reach_the_engine() -> None:
    beat = heartbeats.by_pod([_beat(concurrency=4, buffered=3)])["p1"]
    state = heartbeats.pod_state("p1", beat, ready=True, now=101.0)
    assert state.slots == 4
    assert state.buffered == 3
    assert state.in_flight == 1


def test_a_beat_that_says_neither_leaves_them_unknown() -> None:
    state = heartbeats.pod_state("p1", heartbeats.by_pod([_beat()])["p1"], ready=True)
    assert state.slots is None
    assert state.buffered == 0
    junk = heartbeats.by_pod([_beat(concurrency="4", buffered=-2)])["p1"]
    assert heartbeats.pod_state("p1", junk, ready=True).slots is None
    assert junk.buffered == 0


def test_the_oldest_running_job_gives_the_job_age() -> None:
    beat = heartbeats.by_pod([Heartbeat.from_json(json.dumps({
        "id": "w1", "pod": "p1", "state": "busy", "beat_at": 100.0,
        "in_flight": [{"id": "a", "queue": "q", "started_at": 40.0},
                      {"id": "b", "queue": "q", "started_at": 90.0}]}))])["p1"]
    assert heartbeats.pod_state("p1", beat, ready=True, now=130.0).job_age_seconds == 90.0
    idle = heartbeats.by_pod([_beat(in_flight=[])])["p1"]
    assert heartbeats.pod_state("p1", idle, ready=True, now=130.0).job_age_seconds is None
