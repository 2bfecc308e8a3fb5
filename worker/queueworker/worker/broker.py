"""The consumer's side of the job moves: fetch, settle, beat, reap (redis.asyncio).

Each move is one Lua script (scripts.py, with the diagram of a job's states and
why lists + Lua rather than streams): atomic and one round trip. A FETCH takes
up to K jobs and a SETTLE acks, retries or fails a batch, so a job costs about
2/K round trips plus one BEAT per heartbeat interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.client import NEVER_DECODE
from redis.exceptions import NoScriptError, RedisError

from queueworker.worker import keys
from queueworker.worker.connection import is_cluster
from queueworker.worker.fetch_lua import FETCH
from queueworker.worker.fetched import Fetched, parse_fetched
from queueworker.worker.job import Job
from queueworker.worker.scripts import BEAT, REAP, REGISTER, SETTLE, TRIM_LEGACY

# Kept importable from here: producer.py and failed.py take them from this module.
from queueworker.worker.scripts import ENQUEUE as ENQUEUE
from queueworker.worker.scripts import PRELUDE as PRELUDE

# What a round trip to Redis can raise: the worker logs it, backs off and goes on.
REDIS_ERRORS = (RedisError, OSError)


@dataclass(frozen=True)
class RateLimit:
    """At most ``limit`` jobs started per ``period`` seconds on one queue, all workers together."""

    limit: int
    period: float

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """``N/S``: N jobs per S seconds (``100/1``, ``5/60``)."""
        n, _, s = text.partition("/")
        try:
            rl = cls(int(n), float(s or 1))
        except ValueError:
            raise ValueError(f"bad rate limit {text!r}: use N/SECONDS, e.g. 100/1") from None
        if rl.limit < 1 or rl.period <= 0:
            raise ValueError(f"bad rate limit {text!r}: N and SECONDS must be positive")
        return rl


@dataclass(slots=True)  # not frozen: its __init__ is per job (frozen costs 2x), never mutated
class Settlement:
    op: str  # done | retry | fail | back | release (retryx / failx: after an exception)
    job: Job
    tries: int = 0
    a: str = ""
    b: str = ""

    def args(self) -> tuple[str | int, ...]:
        j = self.job
        if self.op == "done":  # a: the result's JSON text ('' for none)
            return (j.queue, j.id, j.deliveries, self.a)
        return (self.op, j.queue, j.id, j.deliveries, self.tries, self.a, self.b)


def _unpack(packed: bytes) -> list[bytes]:
    """``pack``'s arguments back (the rare path of a single-connection client)."""
    out, i = [], packed.index(b"\r\n") + 2
    while i < len(packed):
        j = packed.index(b"\r\n", i)
        n = int(packed[i + 1:j])
        out.append(packed[j + 2:j + 2 + n])
        i = j + 4 + n
    return out


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def pack(args: Sequence[Any]) -> bytes:
    """One command in RESP, built in one join (redis-py's ``pack_command`` re-joins its
    buffer per argument: ~2 µs per settled job, against ~0.6 µs here)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if type(a) is bytes else (a.encode() if type(a) is str else str(a).encode())
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class Broker:
    """The consumer's side (redis.asyncio): fetch, settle, beat, reap.

    On a Redis Cluster (``connection.is_cluster``) each move is one script call per hash
    slot of the queues it touches (``keys.slot_groups``), routed by a key of that slot;
    on one Redis every queue is one group: one call, as before."""

    def __init__(self, client: aioredis.Redis, prefix: str = keys.DEFAULT_PREFIX) -> None:
        self.redis = client
        self.prefix = prefix
        self.cluster = is_cluster(client)
        self._fetch = client.register_script(FETCH)
        self._settle = client.register_script(SETTLE)
        self._beat = client.register_script(BEAT)
        self._reap = client.register_script(REAP)
        self._register = client.register_script(REGISTER)
        self._trim_legacy = client.register_script(TRIM_LEGACY)
        self._wake = 0  # which slot group a cluster worker blocks on next (wait_for_work)

    def groups(self, queues: Sequence[str]) -> list[list[str]]:
        return keys.slot_groups(queues, self.cluster, self.prefix)

    def route(self, queue: str) -> list[str]:
        """The KEYS of a script call about ``queue`` (``keys.script_keys``)."""
        return keys.script_keys(queue, self.cluster, self.prefix)

    async def fetch(self, queues: Sequence[str], want: int, lease: float, worker_id: str,
                    rate_limits: dict[str, RateLimit] | None = None,
                    park_delay: float = 0.5) -> list[Job]:
        """Take up to ``want`` jobs (queues in order, each by priority 10..1): one FETCH."""
        return (await self.fetch_batch(queues, want, lease, worker_id, rate_limits,
                                       park_delay)).jobs

    async def fetch_batch(self, queues: Sequence[str], want: int, lease: float, worker_id: str,
                          rate_limits: dict[str, RateLimit] | None = None,
                          park_delay: float = 0.5) -> Fetched:
        """Like ``fetch``, with the junk filed and the undecodable jobs (see ``Fetched``).
        On a cluster one FETCH per slot group, in the queues' order, until ``want``."""
        out = Fetched([], [], [])
        for group in self.groups(queues):
            args: list[Any] = [self.prefix, want - len(out.jobs), lease, worker_id, park_delay]
            for q in group:
                rl = (rate_limits or {}).get(q)
                args += [q, rl.limit if rl else 0, rl.period if rl else 0]
            got = parse_fetched(await self._evalsha(self._fetch, FETCH, args, raw=True,
                                                    keys=self.route(group[0])))
            out.jobs += got.jobs
            out.junk += got.junk
            out.undecodable += got.undecodable
            if len(out.jobs) >= want:
                break
        return out

    async def _evalsha(self, script: Any, source: str, args: Sequence[Any], *,
                       raw: bool = False, keys: Sequence[str] = ()) -> Any:
        """EVALSHA of a hot script (FETCH, SETTLE), packed here (``pack``); loaded first
        when the server does not know it (a restart, SCRIPT FLUSH). On a cluster through
        the client (routed by ``keys``; EVAL when the node does not know the script)."""
        if self.cluster:
            options: dict[str, Any] = {NEVER_DECODE: True} if raw else {}
            try:
                return await self.redis.execute_command(
                    "EVALSHA", script.sha, len(keys), *keys, *args, **options)
            except NoScriptError:
                return await self.redis.execute_command(
                    "EVAL", source, len(keys), *keys, *args, **options)
        try:
            return await self._call(pack(("EVALSHA", script.sha, 0, *args)), raw)
        except NoScriptError:
            script.sha = await self.redis.script_load(source)
            return await self._call(pack(("EVALSHA", script.sha, 0, *args)), raw)

    async def _call(self, packed: bytes, raw: bool) -> Any:
        """What ``Redis.execute_command`` does with a connection of the pool (the same
        retry and disconnect-on-error rules), for a command packed already."""
        r = self.redis
        if r.single_connection_client:  # its own lock and connection: the generic path
            options: dict[str, Any] = {NEVER_DECODE: True} if raw else {}
            return await r.execute_command(*_unpack(packed), **options)
        pool = r.connection_pool
        conn = await pool.get_connection()

        async def once() -> Any:
            await conn.send_packed_command(packed)
            return await conn.read_response(disable_decoding=raw)

        async def fail(error: BaseException) -> None:
            await conn.disconnect()
            if conn.retry_on_error is None or not isinstance(error, tuple(conn.retry_on_error)):
                raise error

        try:
            return await conn.retry.call_with_retry(once, fail)
        finally:
            await pool.release(conn)

    async def settle(self, items: Sequence[Settlement], result_ttl: int) -> list[bool]:
        """Apply outcomes in one round trip; True for each one applied (in ``items`` order).
        On a cluster one SETTLE per slot, sent together."""
        if self.cluster:
            by_slot: dict[int, list[Settlement]] = {}
            for s in items:
                by_slot.setdefault(keys.slot(s.job.queue, self.prefix), []).append(s)
            parts = list(by_slot.values())
            results = await asyncio.gather(*(self._settle_one(p, result_ttl) for p in parts))
            applied = {id(s): ok for p, res in zip(parts, results, strict=True)
                       for s, ok in zip(p, res, strict=True)}
            return [applied[id(s)] for s in items]
        return await self._settle_one(items, result_ttl)

    async def _settle_one(self, items: Sequence[Settlement], result_ttl: int) -> list[bool]:
        route = self.route(items[0].job.queue) if items else []
        args: list[Any] = [self.prefix, result_ttl, 0]
        other: list[Settlement] = []
        for s in items:  # the done ones first (SETTLE reads them as 4 values each)
            if s.op == "done":
                j = s.job
                args += (j.queue, j.id, j.deliveries, s.a)
            else:
                other.append(s)
        args[2] = len(items) - len(other)
        if not other:
            return [bool(x) for x in await self._evalsha(self._settle, SETTLE, args,
                                                         keys=route)]
        for s in other:
            args += s.args()
        res = await self._evalsha(self._settle, SETTLE, args, keys=route)
        done = [s for s in items if s.op == "done"]
        applied = dict(zip((id(s) for s in done + other), res, strict=True))
        return [bool(applied[id(s)]) for s in items]

    async def beat(self, worker_id: str, heartbeat_json: str, ttl: int, lease: float,
                   running: Sequence[Job]) -> list[str]:
        """Heartbeat + lease renewal; the ids whose lease was gone."""
        return (await self.beat_and_read(worker_id, heartbeat_json, ttl, lease, running))[0]

    async def beat_and_read(self, worker_id: str, heartbeat_json: str, ttl: int, lease: float,
                            running: Sequence[Job], queues: Sequence[str] = ()
                            ) -> tuple[list[str], dict[str, dict[int, int]]]:
        """``beat``, and the waiting jobs per priority of ``queues`` (same round trip).
        The registry entry (``keys.worker`` / ``keys.workers``) is written by plain
        commands beside the BEAT script(s): one pipeline on one Redis; on a cluster one
        BEAT per slot group of the queues and running jobs, sent together."""
        by_group: dict[int, tuple[list[str], list[Job]]] = {}
        for q in queues:
            by_group.setdefault(keys.slot(q, self.prefix) if self.cluster else 0,
                                ([], []))[0].append(q)
        for j in running:
            by_group.setdefault(keys.slot(j.queue, self.prefix) if self.cluster else 0,
                                ([], []))[1].append(j)
        calls = []
        for qs, jobs in by_group.values():
            args: list[Any] = [self.prefix, lease, len(qs), *qs]
            for j in jobs:
                args += [j.queue, j.id, j.concurrency_key]
            calls.append((qs, self.route((qs or [jobs[0].queue])[0]), args))
        registry = keys.workers(self.prefix)
        if self.cluster:
            await self.redis.set(keys.worker(worker_id, self.prefix), heartbeat_json, ex=ttl)
            await self._register(keys=[registry], args=[worker_id, 0])
            replies = await asyncio.gather(*(self._beat(keys=k, args=a) for _, k, a in calls))
        else:
            replies = await self._beat_pipeline(
                worker_id, heartbeat_json, ttl, registry, [(k, a) for _, k, a in calls])
        n = len(keys.PRIORITIES)
        gone: list[str] = []
        depths: dict[str, dict[int, int]] = {}
        for (qs, _, _), (lost, flat) in zip(calls, replies, strict=True):
            gone += [_text(x) for x in lost]
            for i, q in enumerate(qs):
                depths[q] = dict(zip(keys.PRIORITIES, (int(x) for x in flat[i * n:(i + 1) * n]),
                                     strict=True))
        return gone, {q: depths[q] for q in queues}

    async def _beat_pipeline(self, worker_id: str, heartbeat_json: str, ttl: int,
                             registry: str, calls: Sequence[tuple[list[str], list[Any]]]
                             ) -> list[Any]:
        """SET, REGISTER and the BEAT(s) in one round trip: EVALSHA by hand (a Script in a
        redis-py pipeline costs a SCRIPT EXISTS round trip per execute); every command is
        idempotent, so after a NOSCRIPT (a restart, SCRIPT FLUSH) all are sent again."""
        for attempt in (1, 2):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(keys.worker(worker_id, self.prefix), heartbeat_json, ex=ttl)
                pipe.execute_command("EVALSHA", self._register.sha, 1, registry, worker_id, 0)
                for k, a in calls:
                    pipe.execute_command("EVALSHA", self._beat.sha, len(k), *k, *a)
                try:
                    return list((await pipe.execute())[2:])
                except NoScriptError:
                    if attempt == 2:
                        raise
                    self._register.sha = await self.redis.script_load(REGISTER)
                    self._beat.sha = await self.redis.script_load(BEAT)
        raise AssertionError("unreachable")

    async def reap(self, queues: Sequence[str], holder: str, interval: float, *,
                   max_lost: int, failed_max_age: float, failed_max_count: int,
                   worker_stale: float, batch: int = 1000) -> tuple[int, int, int, int] | None:
        """REAP each queue whose reaper lock this worker takes (one call per slot group,
        sent together), and forget workers silent for ``worker_stale`` seconds."""
        head: list[Any] = [self.prefix, holder, max(1, int(interval * 1000)), max_lost, batch,
                           failed_max_age, failed_max_count]
        groups = self.groups(queues)
        replies = await asyncio.gather(*(self._reap(keys=self.route(g[0]), args=[*head, *g])
                                         for g in groups))
        await self._register(keys=[keys.workers(self.prefix)], args=["", worker_stale])
        got = [[int(x) for x in r] for r in replies if int(r[0]) != -1]
        if not got:
            return None
        trimmed = sum(r[3] for r in got)
        if not self.cluster and await self.redis.exists(keys.legacy_failed(self.prefix)):
            trimmed += int(await self._trim_legacy(
                args=[self.prefix, failed_max_age, failed_max_count, batch]))
        return sum(r[0] for r in got), sum(r[1] for r in got), sum(r[2] for r in got), trimmed

    async def wait_for_work(self, queues: Sequence[str], seconds: float) -> None:
        """Block until a producer pushes a wake-up token or ``seconds`` pass. On a cluster
        one BLPOP may name one slot only: the groups take turns (a job of another slot is
        seen at the next poll, ``seconds`` at most)."""
        groups = self.groups(queues)
        if not groups:
            await asyncio.sleep(max(seconds, 0.01))
            return
        self._wake = (self._wake + 1) % len(groups)
        await self.redis.blpop([keys.notify(q, self.prefix) for q in groups[self._wake]],
                               timeout=max(seconds, 0.01))

    async def store_escaped(self, job_id: str, fields: dict[str, str]) -> None:
        """Overwrite job hash fields (an undecodable job's, escaped: see ``Undecodable``)."""
        if fields:
            await self.redis.hset(keys.job(job_id, self.prefix), mapping=fields)

    async def remove_worker(self, worker_id: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(keys.workers(self.prefix), worker_id)
            pipe.delete(keys.worker(worker_id, self.prefix))
            await pipe.execute()
