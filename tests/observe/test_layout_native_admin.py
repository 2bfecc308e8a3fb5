"""The native reader carries a queue's admin state in its depth (paused, the seconds to
its schedules' earliest tick), read in the same pipeline as the depths."""

from __future__ import annotations

import time

import pytest
import redis

from queueworker.observe import depths
from queueworker.observe.layouts import read as layouts_read
from queueworker.worker import admin
from queueworker.worker.producer import Producer
from queueworker.worker.schedule_store import ScheduleStore
from queueworker.worker.schedules import Schedule

from support.engine_layouts import qspec


def test_depth_carries_pause_and_next_tick(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    now_ms = int(time.time() * 1000)
    ScheduleStore(r).register([Schedule("sweep", queue="reports", every=3600)], now_ms=now_ms)
    Producer(r).enqueue("mail", {"n": 1})
    admin.pause_queue(r, "mail")
    queues = [qspec("reports", "native"), qspec("mail", "native"), qspec("idle", "native")]
    now = time.time()
    reports, mail, idle = depths.read_sync(r, queues, now)
    nxt = Schedule("s", every=3600).next_after(now_ms) / 1000
    assert reports.schedule_due_in == pytest.approx(nxt - now)
    assert not reports.paused
    assert mail.paused
    assert mail.waiting == 1
    assert mail.schedule_due_in is None
    assert not idle.paused
    assert idle.schedule_due_in is None
    admin.resume_queue(r, "mail")
    assert not depths.read_sync(r, queues[1:2], now)[0].paused


def test_admin_reads_ride_the_depth_pipeline() -> None:
    # No extra round trip: the admin commands are the reader's own, so observe/batch.py
    # coalesces them with the depths.
    (_, _, cmds), = layouts_read.plan([qspec("reports", "native")], 0.0)
    assert cmds[-2].args[0] == "ZRANGE"
    assert cmds[-1].args[0] == "SISMEMBER"


def test_a_wrong_type_at_the_schedules_key_names_it(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    key = layouts_read.plan([qspec("x", "native")], 0.0)[0][2][-2].key
    r.set(key, "not a zset")
    with pytest.raises(depths.QueueReadError, match=key.replace("{", r"\{").replace("}", r"\}")):
        depths.read_sync(r, [qspec("x", "native")], time.time())
