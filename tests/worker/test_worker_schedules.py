"""Schedules: definitions, DST-safe cron ticks, exactly-once ticks, missed-tick policies,
pause / resume / trigger, all against a real redis-server with a simulated clock."""

from __future__ import annotations

import itertools
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import redis
import redis.asyncio as aioredis

from queueworker.worker import keys
from queueworker.worker.schedule_store import ScheduleStore
from queueworker.worker.scheduler import Scheduler
from queueworker.worker.schedules import (
    Schedule,
    ScheduleError,
    as_schedules,
    queue_schedules,
    tick_job_id,
)

T0 = 1_800_000_000_000  # ms; a multiple of 60 s


class FakeClock:
    def __init__(self, ms: int = T0) -> None:
        self.ms = ms

    async def __call__(self) -> int:
        return self.ms


def _ms(tz: str, *parts: int) -> int:
    return round(datetime(*parts, tzinfo=ZoneInfo(tz)).timestamp() * 1000)  # type: ignore[misc]


def _waiting(url: str, queue: str = "default") -> list[str]:
    r = redis.Redis.from_url(url, decode_responses=True)
    return list(reversed(r.lrange(keys.waiting(queue), 0, -1)))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"cron": "61 * * * *"}, "bad cron expression"),
    ({"every": 0}, "every must be"),
    ({}, "exactly one of"),
    ({"every": 5, "cron": "* * * * *"}, "exactly one of"),
    ({"every": 5, "tz": "Mars/Olympus"}, "unknown time zone"),
    ({"every": 5, "missed": "sometimes"}, "missed must be one of"),
    ({"every": 5, "options": {"delay": 3}}, "unknown job option"),
    ({"every": 5, "options": {"max_tries": 0}}, "max_tries"),
    ({"every": 5, "payload": b"x"}, "not JSON"),
])
def test_bad_definitions_name_what_is_wrong(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ScheduleError, match=message) as info:
        Schedule("nightly", **kwargs)  # type: ignore[arg-type]
    assert "nightly" in str(info.value)


def test_names_are_unique_and_dicts_are_accepted() -> None:
    with pytest.raises(ScheduleError, match="used twice: a"):
        as_schedules([Schedule("a", every=1), {"name": "a", "every": 2}])
    assert as_schedules({"name": "b", "cron": "0 * * * *"})[0].cron == "0 * * * *"
    with pytest.raises(ScheduleError, match="bad"):
        Schedule("bad name", every=1)


def test_every_ticks_fall_on_multiples_of_the_period() -> None:
    s = Schedule("x", every=7)
    assert s.next_after(T0) == T0 + 7000 - T0 % 7000
    assert s.next_after(s.next_after(T0)) == s.next_after(T0) + 7000


def test_cron_in_a_time_zone_across_dst() -> None:
    s = Schedule("x", cron="30 2 * * *", tz="Europe/Berlin")
    # Spring forward (29 March 2026): 02:30 does not exist; it runs once, at 03:00 CEST.
    spring = s.next_after(_ms("Europe/Berlin", 2026, 3, 28, 12, 0))
    assert spring == _ms("Europe/Berlin", 2026, 3, 29, 3, 0)
    assert s.next_after(spring) == _ms("Europe/Berlin", 2026, 3, 30, 2, 30)
    # Fall back (25 October 2026): 02:30 happens twice; a daily job runs once.
    fall = s.next_after(_ms("Europe/Berlin", 2026, 10, 24, 12, 0))
    assert s.next_after(fall) - fall == 25 * 3600 * 1000
    # Hourly stays hourly in real time through the repeated hour.
    h = Schedule("h", cron="0 * * * *", tz="Europe/Berlin")
    t = _ms("Europe/Berlin", 2026, 10, 25, 0, 30)
    ticks = []
    for _ in range(4):
        t = h.next_after(t)
        ticks.append(t)
    assert [b - a for a, b in itertools.pairwise(ticks)] == [3600_000] * 3


async def test_many_schedulers_enqueue_each_tick_once(redis_url: str) -> None:
    clock = FakeClock()
    sched = [Schedule("every7", every=7, missed="all", payload={"n": 1}),
             Schedule("minutely", cron="* * * * *", queue="reports", missed="all")]
    clients = [aioredis.Redis.from_url(redis_url, decode_responses=True) for _ in range(3)]
    workers = [Scheduler(c, sched, clock=clock) for c in clients]
    try:
        for w in workers:
            await w.register()
        for _ in range(600):  # ten simulated minutes, one second a step
            clock.ms += 1000
            for w in workers:
                await w.run_once()
    finally:
        for c in clients:
            await c.aclose()
    every7 = [t for t in range(T0 + 1, clock.ms + 1) if t % 7000 == 0]
    assert _waiting(redis_url) == [tick_job_id("every7", t, "default") for t in every7]
    assert _waiting(redis_url, "reports") == [
        tick_job_id("minutely", T0 + 60_000 * i, "reports") for i in range(1, 11)]
    assert sum(w.enqueued for w in workers) == len(every7) + 10
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert r.hget(keys.stats("default"), "enqueued") == str(len(every7))
    job = r.hgetall(keys.job(tick_job_id("every7", every7[0], "default")))
    assert (job["payload"], job["schedule"], job["state"]) == ('{"n":1}', "every7", "waiting")


async def test_missed_ticks_skip_once_all(redis_url: str) -> None:
    clock = FakeClock()
    sched = [Schedule(f"m-{p}", every=10, missed=p, grace=30, queue=p)
             for p in ("skip", "once", "all")]
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        s = Scheduler(client, sched, clock=clock)
        await s.register()
        clock.ms += 100_000  # 10 ticks due; grace 30 s
        await s.run_once()
    finally:
        await client.aclose()
    due = [T0 + 10_000 * i for i in range(1, 11)]
    assert _waiting(redis_url, "all") == [tick_job_id("m-all", t, "all") for t in due]
    # skip: ticks over 30 s late are dropped; the four at most 30 s late run
    assert _waiting(redis_url, "skip") == [tick_job_id("m-skip", t, "skip") for t in due[-4:]]
    assert _waiting(redis_url, "once") == [tick_job_id("m-once", due[0], "once")]
    store = ScheduleStore(redis.Redis.from_url(redis_url, decode_responses=True))
    assert {r["name"]: r["next_due"] * 1000 for r in store.list()} == {
        "m-skip": T0 + 110_000, "m-once": T0 + 110_000, "m-all": T0 + 110_000}
    assert store.show("m-skip")["skipped"] == 1  # type: ignore[index]


async def test_pause_resume_trigger_remove_and_redefinition(redis_url: str) -> None:
    sync = redis.Redis.from_url(redis_url, decode_responses=True)
    store = ScheduleStore(sync)
    clock = FakeClock(store_now := _server_ms(redis_url))
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    s = Scheduler(client, [Schedule("p", every=5, queue="q")], clock=clock)
    try:
        await s.register()
        assert store.pause("p")
        assert sync.zscore(queue_schedules("q"), "p") == float("inf")
        clock.ms += 60_000
        assert await s.run_once() == 0
        assert store.show("p")["paused"] is True  # type: ignore[index]
        assert await s.register() == 0  # a worker restart keeps the pause
        assert store.show("p")["paused"] is True  # type: ignore[index]
        store.resume("p")  # from the next tick after (server) now: nothing made up
        assert store.show("p")["next_due"] * 1000 > store_now  # type: ignore[index]
        assert _waiting(redis_url, "q") == []
        job_id = store.trigger("p")
        assert _waiting(redis_url, "q") == [job_id]
        # A changed definition moves to its new queue and starts again from now.
        s.schedules = [Schedule("p", every=5, queue="other")]
        assert await s.register() == 1
        assert sync.zscore(queue_schedules("q"), "p") is None
        assert sync.zscore(queue_schedules("other"), "p") is not None
        assert store.remove("p")
        assert store.list() == []
        assert not store.pause("p")
        with pytest.raises(ScheduleError, match="no schedule 'p'"):
            store.trigger("p")
    finally:
        await client.aclose()


async def test_overlap_false_skips_a_tick_while_the_last_job_is_queued(redis_url: str) -> None:
    clock = FakeClock()
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    s = Scheduler(client, [Schedule("o", every=10, overlap=False, missed="all")], clock=clock)
    try:
        await s.register()
        clock.ms += 30_000
        await s.run_once()
    finally:
        await client.aclose()
    assert len(_waiting(redis_url)) == 1
    info = ScheduleStore(redis.Redis.from_url(redis_url, decode_responses=True)).show("o")
    assert info is not None
    assert info["overlapped"] == 2


def _server_ms(url: str) -> int:
    sec, usec = redis.Redis.from_url(url).time()
    return int(sec) * 1000 + int(usec) // 1000
