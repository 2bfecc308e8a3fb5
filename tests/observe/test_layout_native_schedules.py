"""The operator's read of a native queue's schedules and pause (native_schedules.py), on
keys the worker's schedule store and `queueworker queue pause` wrote."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
import redis.asyncio

from queueworker.observe.layouts.base import Command, LayoutError
from queueworker.observe.layouts.native_schedules import (
    QueueAdminState,
    admin_commands,
    parse_admin,
)
from queueworker.worker import admin
from queueworker.worker.schedule_store import ScheduleStore
from queueworker.worker.schedules import Schedule

from support.engine_layouts import qspec


def _read(r: redis.Redis, name: str, now: float, **kw: Any) -> QueueAdminState:
    q = qspec(name, "native", **kw)
    cmds = admin_commands(q, now)
    with r.pipeline(transaction=False) as pipe:
        for c in cmds:
            pipe.execute_command(*c.args)  # type: ignore[no-untyped-call]
        replies = pipe.execute()
    return parse_admin(q, cmds, replies, now, wake_before=5)


def test_next_due_due_now_and_paused(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    store = ScheduleStore(r)
    now_ms = int(time.time() * 1000)
    store.register([Schedule("hourly", queue="reports", cron="0 * * * *"),
                    Schedule("often", queue="reports", every=3600),
                    Schedule("other", queue="mail", every=60)], now_ms=now_ms)
    nxt = min(Schedule("h", cron="0 * * * *").next_after(now_ms),
              Schedule("e", every=3600).next_after(now_ms)) / 1000
    state = _read(r, "reports", time.time())
    assert state.next_due == pytest.approx(nxt)
    assert not state.paused
    assert state.due_now is (nxt <= time.time() + 5)
    assert _read(r, "reports", nxt + 1).due_now
    assert _read(r, "reports", nxt - 4).due_now  # wake_before: a pod needs time to start
    assert not _read(r, "reports", nxt - 6).due_now
    # Paused schedules are never due; a queue with none has no next tick.
    store.pause("hourly")
    store.pause("often")
    assert _read(r, "reports", nxt + 1) == QueueAdminState(False, None, False)
    assert _read(r, "nothing", time.time()) == QueueAdminState(False, None, False)
    admin.pause_queue(r, "mail")
    assert _read(r, "mail", time.time()).paused
    # Another prefix (keyPrefix) is another set of workers.
    assert not _read(r, "mail", time.time(), keyPrefix="other").paused


async def test_async_client_replies_parse_the_same(redis_url: str) -> None:
    ScheduleStore(redis.Redis.from_url(redis_url)).register(
        [Schedule("s", queue="q", every=60)], now_ms=0)
    q = qspec("q", "native")
    cmds = admin_commands(q, 0)
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for c in cmds:
                pipe.execute_command(*c.args)
            replies = await pipe.execute()
    finally:
        await client.aclose()
    assert parse_admin(q, cmds, replies, 100) == QueueAdminState(False, 60.0, True)


def test_a_wrong_reply_names_the_key() -> None:
    q = qspec("q", "native")
    cmds = [Command(("ZRANGE", "k"), "qw:{q}:schedules"), Command(("SISMEMBER",), "qw:paused")]
    with pytest.raises(LayoutError, match=r"qw:\{q\}:schedules"):
        parse_admin(q, cmds, [[b"s", b"soon"], 0], 0)
    with pytest.raises(LayoutError, match="expected a ZRANGE reply"):
        parse_admin(q, cmds, [b"x", 0], 0)
