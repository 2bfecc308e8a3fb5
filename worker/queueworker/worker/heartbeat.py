"""Worker heartbeats: what each live worker says about itself.

Each worker writes ``keys.worker(id)`` (JSON, TTL = a few beat intervals) and
its score in ``keys.workers()`` on every beat (see ``runtime.Worker``). Readers:

    from queueworker.worker.heartbeat import read_heartbeats, aread_heartbeats

    beats = read_heartbeats(redis.Redis(...), prefix="qw")          # redis-py
    beats = await aread_heartbeats(redis.asyncio.Redis(...), "qw")  # redis.asyncio

Both return ``list[Heartbeat]`` of the live workers only (a worker whose key
expired is left out, even while its id lingers in the ZSET), in one round trip
(a small Lua script). On a Redis Cluster the registry and the beats are in
several slots: a ZRANGE, then the beats read per slot (``mget_nonatomic``).
To read heartbeats inside your own pipeline with other reads (one Redis), queue
``pipe.eval(HEARTBEATS_LUA, 0, prefix)`` and pass its result to ``parse_heartbeats``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis

from queueworker.worker import keys
from queueworker.worker.connection import is_cluster

# no-writes: runs on read-only replicas too (the operator may read from one).
HEARTBEATS_LUA = """#!lua flags=no-writes
local p = ARGV[1]
local ids = redis.call('ZRANGE', p .. ':workers', 0, -1)
if #ids == 0 then return {} end
local names = {}
for i, id in ipairs(ids) do names[i] = p .. ':worker:' .. id end
return redis.call('MGET', unpack(names))
"""


@dataclass(frozen=True)
class InFlight:
    id: str
    queue: str
    started_at: float


@dataclass(frozen=True)
class Heartbeat:
    id: str
    pod: str
    host: str
    pid: int
    queues: tuple[str, ...]
    state: str  # idle | busy | draining
    in_flight: tuple[InFlight, ...] = ()
    processed: int = 0
    failed: int = 0
    started_at: float = 0.0
    beat_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def busy(self) -> bool:
        return bool(self.in_flight) or self.state == "busy"

    @classmethod
    def from_json(cls, text: str | bytes) -> Heartbeat:
        d = json.loads(text)
        known = {"id", "pod", "host", "pid", "queues", "state", "in_flight", "processed",
                 "failed", "started_at", "beat_at"}
        return cls(
            id=str(d.get("id", "")),
            pod=str(d.get("pod", "")),
            host=str(d.get("host", "")),
            pid=int(d.get("pid", 0)),
            queues=tuple(d.get("queues", ())),
            state=str(d.get("state", "")),
            in_flight=tuple(InFlight(str(j["id"]), str(j["queue"]), float(j["started_at"]))
                            for j in d.get("in_flight", ())),
            processed=int(d.get("processed", 0)),
            failed=int(d.get("failed", 0)),
            started_at=float(d.get("started_at", 0)),
            beat_at=float(d.get("beat_at", 0)),
            extra={k: v for k, v in d.items() if k not in known},
        )


def parse_heartbeats(raw: Sequence[Any] | None) -> list[Heartbeat]:
    out = []
    for item in raw or ():
        if item is None:
            continue
        try:
            out.append(Heartbeat.from_json(item))
        except (ValueError, KeyError, TypeError):
            continue  # a malformed beat is not a live worker we can reason about
    return out


def _names(ids: Sequence[Any], prefix: str) -> list[str]:
    return [keys.worker(i.decode() if isinstance(i, bytes) else str(i), prefix) for i in ids]


def read_heartbeats(client: redis.Redis, prefix: str = keys.DEFAULT_PREFIX) -> list[Heartbeat]:
    """The live workers' heartbeats (redis-py, one round trip; two on a cluster)."""
    if is_cluster(client):
        names = _names(client.zrange(keys.workers(prefix), 0, -1), prefix)
        return parse_heartbeats(client.mget_nonatomic(names) if names  # type: ignore[attr-defined]
                                else [])
    return parse_heartbeats(client.eval(HEARTBEATS_LUA, 0, prefix))  # type: ignore[arg-type]


async def aread_heartbeats(client: aioredis.Redis, prefix: str = keys.DEFAULT_PREFIX
                           ) -> list[Heartbeat]:
    """The live workers' heartbeats (redis.asyncio, one round trip; two on a cluster)."""
    if is_cluster(client):
        names = _names(await client.zrange(keys.workers(prefix), 0, -1), prefix)
        return parse_heartbeats(await client.mget_nonatomic(names)  # type: ignore[attr-defined]
                                if names else [])
    raw = await client.eval(HEARTBEATS_LUA, 0, prefix)  # type: ignore[misc]
    return parse_heartbeats(raw)
