"""The reading rules every world shares (observe/depths.py, observe/heartbeats.py):
the operator's (reading.py, asyncio) and local mode's (reading_sync.py) readings
must agree on what is unreadable, what is busy and where a native worker beats."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis
import redis.asyncio

from queueworker.engine.types import QueueDepth
from queueworker.observe import depths, heartbeats, reading, reading_sync
from queueworker.observe.layouts import DepthError, read_depths_sync
from queueworker.observe.layouts.native import heartbeat_prefix, worker_prefix
from queueworker.operator.validation import parse_spec
from queueworker.worker import keys

from support.engine_layouts import qspec


def test_wrong_type_names_the_key_and_others_still_read(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    r.set("rq:queue:broken", "not a list")
    r.rpush("rq:queue:fine", "id1")
    res = read_depths_sync(
        r, [qspec("broken", "rq"), qspec("fine", "rq"), qspec("x", "celery")], time.time()
    )
    assert isinstance(res[0], DepthError)
    assert "rq:queue:broken" in str(res[0])
    assert "wrong kind" in str(res[0])
    assert isinstance(res[1], QueueDepth)
    assert res[1].waiting == 1
    assert isinstance(res[2], QueueDepth)
    assert res[2].waiting == 0
    with pytest.raises(depths.QueueReadError, match="rq:queue:broken"):
        depths.whole(res)
    assert [d.name for d in depths.whole(res[1:])] == ["fine", "x"]


async def test_one_unreadable_queue_makes_both_worlds_unusable(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    r.set("rq:queue:broken", "not a list")
    r.rpush("rq:queue:fine", "id1")
    spec = parse_spec({"redis": {"url": redis_url},
                       "queues": [{"name": "fine", "layout": "rq"},
                                  {"name": "broken", "layout": "rq"}],
                       "template": {"spec": {"containers": [{"name": "w", "image": "i"}]}}})
    # Local mode: no depths at all, and why.
    queues, why = reading_sync.read_queues(r, spec, time.time())
    assert queues is None
    assert why is not None
    assert "rq:queue:broken" in why
    # The operator: the same rule raises, naming the same queue.
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        with pytest.raises(reading.QueueReadError, match="rq:queue:broken"):
            await reading.read_depths(client, spec.queues, time.time())
        r.delete("rq:queue:broken")
        got = await reading.read_depths(client, spec.queues, time.time())
    finally:
        await client.aclose()
    assert [(d.name, d.waiting) for d in got] == [("fine", 1), ("broken", 0)]
    assert reading_sync.read_queues(r, spec, time.time()) == (got, None)


def test_local_mode_says_why_when_redis_is_gone() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    spec = parse_spec({"redis": {"url": "redis://127.0.0.1:1"}, "queues": [{"name": "q"}],
                       "template": {"spec": {"containers": [{"name": "w", "image": "i"}]}}})
    queues, why = reading_sync.read_queues(dead, spec, time.time())
    assert queues is None
    assert why is not None
    assert why.startswith("redis: ConnectionError")


@pytest.mark.parametrize(("state", "in_flight", "expected"), [
    ("idle", 0, False), ("busy", 0, True), ("busy", 2, True),
    # Draining: busy only while it still holds a job.
    ("draining", 0, False), ("draining", 1, True),
])
def test_busy_rule(state: str, in_flight: int, expected: bool) -> None:
    assert heartbeats.busy(state, in_flight) is expected


def _beat(client: redis.Redis, prefix: str, wid: str, pod: str, state: str, jobs: int,
          beat_at: float) -> None:
    """A heartbeat as queueworker.worker.runtime.Worker.heartbeat writes it."""
    body: dict[str, Any] = {
        "id": wid, "pod": pod, "host": "h", "pid": 1, "queues": ["q"], "state": state,
        "in_flight": [{"id": f"j{i}", "queue": "q", "started_at": beat_at} for i in range(jobs)],
        "processed": 0, "failed": 0, "started_at": beat_at, "beat_at": beat_at}
    client.set(keys.worker(wid, prefix), json.dumps(body), ex=30)
    client.zadd(keys.workers(prefix), {wid: beat_at})


async def test_operator_and_local_mode_see_the_same_pods(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    now = time.time()
    _beat(r, "app", "w1", "idle-pod", "idle", 0, now)
    _beat(r, "app", "w2", "leaving-empty", "draining", 0, now)
    _beat(r, "app", "w3", "leaving-with-job", "draining", 1, now)
    # A worker restarted in the same pod: its old beat has not expired yet.
    _beat(r, "app", "old", "restarted", "busy", 1, now - 5)
    _beat(r, "app", "new", "restarted", "idle", 0, now)
    _beat(r, "qw", "elsewhere", "other-prefix", "busy", 1, now)
    local = reading_sync.read_beats(r, parse_spec({
        "redis": {"url": redis_url}, "queues": [{"name": "q", "keyPrefix": "app"}],
        "template": {"spec": {"containers": [{"name": "w", "image": "i"}]}}}))
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        operator = await reading.read_heartbeats(client, "app")
    finally:
        await client.aclose()
    assert local == operator
    assert sorted(local) == ["idle-pod", "leaving-empty", "leaving-with-job", "restarted"]
    names = sorted(local)
    from_operator = reading.pod_states(
        [{"name": n, "ready": not n.startswith("leaving"), "terminating": n.startswith("leaving")}
         for n in names],
        operator)
    from_local = reading_sync.pod_states([n for n in names if not n.startswith("leaving")],
                                         [n for n in names if n.startswith("leaving")], local)
    assert sorted(from_local, key=lambda p: p.name) == list(from_operator)
    assert {p.name: p.busy for p in from_operator} == {
        "idle-pod": False, "leaving-empty": False, "leaving-with-job": True,
        "restarted": False}
    assert {p.name: p.in_flight for p in from_operator}["leaving-with-job"] == 1
    # A pod with no beat yet: idle, holding nothing.
    (starting,) = reading.pod_states([{"name": "new-pod", "ready": False}], operator)
    assert (starting.busy, starting.in_flight, starting.ready) == (False, 0, False)


def test_native_workers_prefix() -> None:
    def spec(*queues: dict[str, Any]) -> Any:
        return parse_spec({"redis": {"url": "redis://r"}, "queues": list(queues),
                           "template": {"spec": {"containers": [{"name": "w", "image": "i"}]}}})

    plain = spec({"name": "a"})
    assert (worker_prefix(plain), heartbeat_prefix(plain)) == (None, keys.DEFAULT_PREFIX)
    mixed = spec({"name": "a"}, {"name": "b", "keyPrefix": "app"},
                 {"name": "c", "layout": "bullmq", "keyPrefix": "bull"})
    assert (worker_prefix(mixed), heartbeat_prefix(mixed)) == ("app", "app")
    other = spec({"name": "c", "layout": "celery", "keyPrefix": "t:"})
    assert worker_prefix(other) is None
