"""Quiet first's shared part (observe/busy/quiet.py): the reports it decides on, the
quiet commands as Sidekiq's own `Process#quiet!` writes them (keyPrefix included), and
the decision it hands on. The real Sidekiq reading them: tests/operator/
test_operator_sidekiq_quiet.py and tests/local/test_local_sidekiq.py."""

from __future__ import annotations

import time

import redis

from queueworker.engine.quiet import Memory
from queueworker.engine.types import Decision
from queueworker.observe import busy
from queueworker.observe.busy import PodRef, WorkerReport
from queueworker.observe.busy import quiet as busy_quiet
from queueworker.operator.api import QueueSpec


def _queues(prefix: str | None = None) -> list[QueueSpec]:
    doc: dict[str, object] = {"name": "default", "layout": "sidekiq"}
    if prefix:
        doc["keyPrefix"] = prefix
    return [QueueSpec.model_validate(doc)]


def _report(identity: str, host: str, *, registry: str, busy_: bool = False,
            quiet: bool = False, beat: float = 100.0) -> WorkerReport:
    return WorkerReport(identity, host, 1, busy=busy_, running=int(busy_), quiet=quiet,
                        beat_at=beat, registry=registry)


def test_victims_are_quieted_with_sidekiqs_own_signal_key(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    reg = busy.ADAPTERS[_queues("ns")[0].layout].registry(_queues("ns")[0])
    assert reg == "ns:processes"
    reading = busy.BusyReading(reports=(
        _report("a:1:x", "a", registry=reg), _report("a:2:y", "a", registry=reg),
        _report("b:1:z", "b", registry=reg)))
    step = busy_quiet.step(_queues("ns"), reading, [PodRef("a"), PodRef("b")], ["a", "b"],
                           Decision(1, "test", remove_first=("a",)), 2, Memory(), time.time())
    assert step is not None
    assert step.plan.quiet == ("a",)
    assert busy_quiet.send_sync(client, step) == ["a"]
    for identity in ("a:1:x", "a:2:y"):  # every process on the pod
        key = f"ns:{identity}-signals"
        assert client.lrange(key, 0, -1) == [b"TSTP"]
        assert 0 < client.ttl(key) <= 60
    assert not client.exists("ns:b:1:z-signals")
    held = busy_quiet.outcome(Decision(1, "test", remove_first=("a",)), step, ["a"])
    assert (held.desired, held.remove_first) == (2, ())
    assert "1 quieted finish their jobs" in held.reason


def test_a_pod_goes_once_every_live_process_is_quiet_and_idle_ghosts_aside() -> None:
    reg = "processes"
    reading = busy.BusyReading(reports=(
        _report("a:1:x", "a", registry=reg, quiet=True, beat=100.0),
        # A SIGKILLed process's hash outlives it (beat far older): not waited for.
        _report("a:0:old", "a", registry=reg, busy_=True, beat=50.0),
        _report("b:1:z", "b", registry=reg, quiet=True, busy_=True, beat=100.0)))
    step = busy_quiet.step(_queues(), reading, [PodRef("a"), PodRef("b")], ["a", "b"],
                           Decision(0, "test", remove_first=("a", "b")), 2,
                           Memory({"a": 90.0, "b": 90.0}), 101.0)
    assert step is not None
    assert (step.plan.ready, step.plan.waiting, step.commands) == (("a",), ("b",), {})
    d = busy_quiet.outcome(Decision(0, "test", remove_first=("a", "b")), step, [])
    assert (d.desired, d.remove_first) == (1, ("a",))
    assert busy_quiet.remember(step, []) == Memory({"b": 90.0}, {"a": 101.0})


def test_nothing_to_quiet_where_no_library_can_be() -> None:
    rq = [QueueSpec.model_validate({"name": "default", "layout": "rq"})]
    assert busy_quiet.step(rq, busy.BusyReading(), [], [], Decision(0, "t"), 1, Memory(),
                           1.0) is None
