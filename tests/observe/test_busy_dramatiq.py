"""Dramatiq workers' busy state per pod, from real dramatiq Workers whose brokers are
named after their pod (`broker.broker_id = f"{pod}-{uuid4().hex}"`, the opt-in of
docs/workers/dramatiq.md): the broker's ack set holds the message it runs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from uuid import uuid4

import pytest
import redis

from queueworker.observe import busy
from queueworker.observe.busy import PodRef
from queueworker.observe.busy.dramatiq import pod_of
from queueworker.operator.api import QueueLayout, QueueSpec

from support.worker_proc import wait_until

QUEUES = [QueueSpec(name="jobs", layout=QueueLayout.dramatiq)]
PODS = [PodRef("pod-a"), PodRef("pod-b"), PodRef("pod-c")]


def _states(r: redis.Redis) -> dict[str, str]:
    _, reading = busy.read_sync(r, QUEUES, time.time(), PODS)
    assert not reading.errors
    return {p.name: reading.beats[p.name].state if p.name in reading.beats else "unknown"
            for p in PODS}


Start = Callable[[str | None], Any]


@pytest.fixture
def start(redis_url: str) -> Iterator[Start]:
    """Starts a real Worker with a broker of its own, named after `pod` (None: as made)."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    def block() -> None:
        redis.Redis.from_url(redis_url).blpop(["release"], timeout=30)

    out: list[Any] = []

    def one(pod: str | None) -> Any:
        broker = RedisBroker(url=redis_url)
        if pod is not None:
            broker.broker_id = f"{pod}-{uuid4().hex}"
        dramatiq.actor(block, broker=broker, queue_name="jobs", actor_name="block")
        worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
        worker.start()
        out.append((broker, worker))
        return broker

    yield one
    redis.Redis.from_url(redis_url).rpush("release", *["go"] * 4)
    for broker, worker in out:
        worker.stop()
        broker.close()


def test_named_brokers_busy_and_idle_per_pod_unnamed_unknown(redis_url: str,
                                                             start: Start) -> None:
    r = redis.Redis.from_url(redis_url)
    broker = start("pod-a")
    broker.enqueue(broker.actors["block"].message())
    wait_until(lambda: r.llen("dramatiq:jobs") == 0, 15, 0.05, "pod-a took the message")
    start("pod-b")
    start(None)
    # The id set after construction is the one every dispatch writes (heartbeats too).
    wait_until(lambda: r.zcard("dramatiq:__heartbeats__") == 3, 15, 0.05, "all beating")
    beating = {m.decode() for m in r.zrange("dramatiq:__heartbeats__", 0, -1)}
    assert {pod_of(b) for b in beating} == {"pod-a", "pod-b", None}
    assert broker.broker_id in beating
    assert r.scard(f"dramatiq:__acks__.{broker.broker_id}.jobs") == 1
    assert _states(r) == {"pod-a": "busy", "pod-b": "idle", "pod-c": "unknown"}
    _, reading = busy.read_sync(r, QUEUES, time.time(), PODS)
    assert reading.beats["pod-a"].in_flight == 1
    r.rpush("release", "go")
    wait_until(lambda: _states(r) == {"pod-a": "idle", "pod-b": "idle", "pod-c": "unknown"},
               15, 0.05, "acked: idle again")


def test_pod_of_reads_only_the_documented_form() -> None:
    assert pod_of(f"web-7c9f-x2x-{'a' * 32}") == "web-7c9f-x2x"
    assert pod_of(str(uuid4())) is None  # Dramatiq's own ids name no pod
    assert pod_of("web-1") is None
