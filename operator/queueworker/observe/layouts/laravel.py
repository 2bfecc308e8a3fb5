"""Laravel's Redis queue driver, which Horizon uses too.

Keys, from laravel/framework src/Illuminate/Queue/RedisQueue.php and
LuaScripts.php: `queues:Q` LIST of JSON payloads (`push`: RPUSH; `pop`: LPOP,
so the oldest is at 0), `queues:Q:delayed` ZSET (score: available_at; due
ones are migrated to the list before every pop, so they are ready now),
`queues:Q:reserved` ZSET (score: reservation expiry; jobs running now), and
`queues:Q:notify`. The connection's `options.prefix` prefixes every key
(queue spec keyPrefix). The age of the oldest job comes from its payload:
Horizon adds `pushedAt` (microtime(true) as a string, laravel/horizon
src/JobPayload.php prepare()); recent framework versions add `createdAt`
(epoch seconds, Illuminate/Queue/Queue.php). Without either the age is
unknown.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from queueworker.engine.types import QueueDepth
from queueworker.observe.layouts.base import Command, Reader, age, integer, text
from queueworker.operator.api import QueueLayout, QueueSpec


def created_at(payload: str | None) -> float | None:
    if not payload:
        return None
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    for field in ("pushedAt", "createdAt"):
        value = doc.get(field)
        if value is None or isinstance(value, bool):
            continue
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return None


class LaravelReader(Reader):
    layout = QueueLayout.laravel

    def commands(self, q: QueueSpec, now: float) -> list[Command]:
        base = f"{q.key_prefix or ''}queues:{q.name}"
        delayed, reserved = f"{base}:delayed", f"{base}:reserved"
        return [
            Command(("LLEN", base), base),
            Command(("ZCOUNT", delayed, "-inf", repr(now)), delayed),
            Command(("ZCARD", delayed), delayed),
            Command(("ZCARD", reserved), reserved),
            Command(("LINDEX", base, 0), base),
        ]

    def parse(
        self, q: QueueSpec, cmds: Sequence[Command], replies: Sequence[Any], now: float
    ) -> QueueDepth:
        waiting, due, delayed, reserved = (
            integer(r, c.key) for r, c in zip(replies[:4], cmds[:4], strict=True)
        )
        return self.depth(
            q,
            waiting + due,
            reserved,
            delayed=delayed - due,
            oldest_age_seconds=age(now, created_at(text(replies[4]))),
        )
