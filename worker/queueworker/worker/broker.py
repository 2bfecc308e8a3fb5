"""The consumer's side of the job moves: fetch, settle, beat, reap (redis.asyncio).

Each move is one Lua script (scripts.py, with the diagram of a job's states and
why lists + Lua rather than streams): atomic and one round trip. A FETCH takes
up to K jobs and a SETTLE acks, retries or fails a batch, so a job costs about
2/K round trips plus one BEAT per heartbeat interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.client import NEVER_DECODE
from redis.exceptions import NoScriptError, RedisError

from queueworker.worker import keys
from queueworker.worker.fetch_lua import FETCH
from queueworker.worker.job import Job
from queueworker.worker.scripts import BEAT, REAP, SETTLE

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


@dataclass(frozen=True)
class Junk:
    """An entry a FETCH found unrunnable and filed in the failed store (scripts.junk)."""

    id: str  # its id in the failed store
    queue: str
    reason: str  # no_job_hash | bad_entry
    error: str


@dataclass(frozen=True)
class Undecodable:
    """A job taken whose stored fields are not all UTF-8: it fails at once (reason
    ``undecodable``), and those fields are stored again escaped (``\\xNN``) so that the
    failed store and every reader can show it."""

    job: Job
    error: str
    escaped: dict[str, str]  # field name -> its value, bytes outside UTF-8 escaped


@dataclass
class Fetched:
    """What one FETCH brought: jobs to run, entries it filed as junk, undecodable jobs."""

    jobs: list[Job]
    junk: list[Junk]
    undecodable: list[Undecodable]


# The job hash fields FETCH returns, in order (fetch_lua.py; the 12th is the level).
FETCHED_FIELDS = ("queue", "payload", "tries", "max_tries", "backoff", "timeout",
                  "retry_until", "enqueued_at", "handler", "concurrency_key",
                  "concurrency_limit")


def _undecodable(raw_id: Any, deliveries: int, raw_fields: Sequence[Any],
                 exc: UnicodeDecodeError) -> Undecodable:
    escaped: dict[str, str] = {}
    for name, x in zip(FETCHED_FIELDS, raw_fields, strict=False):
        if type(x) is bytes:
            try:
                x.decode()
            except UnicodeDecodeError:
                escaped[name] = x.decode(errors="backslashreplace")
    fields = [x.decode(errors="backslashreplace") if type(x) is bytes else x
              for x in raw_fields]
    where = ", ".join(escaped)
    return Undecodable(_job(raw_id, deliveries, fields),
                       f"Undecodable: job hash field(s) {where} not UTF-8 ({exc.reason} at "
                       f"byte {exc.start}); stored again with the bytes escaped as \\xNN",
                       escaped)


def _job(raw_id: Any, deliveries: int, fields: Sequence[Any]) -> Job:
    (queue, payload, tries, max_tries, backoff, timeout, retry_until, enqueued_at, handler,
     ck, _, level) = fields
    return Job.fetched(_text(raw_id), queue, payload, deliveries, tries, max_tries, backoff,
                       timeout, retry_until, enqueued_at, handler, ck,
                       keys.priority_level(level))


# (tries, max_tries, backoff, timeout, retry_until) as stored -> as a Job holds them: most
# jobs of a queue share these, so a FETCH reply is read with one dict lookup per job
# rather than five parses (the slow path fills it; bounded: cleared when full).
_Options = tuple[int, int, Any, float | None, float | None]
_OPTIONS: dict[tuple[Any, ...], _Options] = {}
_OPTIONS_MAX = 1024


def _fast_job(raw_id: bytes, d: int, f: Sequence[Any]) -> Job | None:
    """The common case of a fetched job, read straight from the reply's bytes; None when
    anything is unusual (then ``_job`` reads it, with every check)."""
    q, payload, tries, max_tries, backoff, timeout, retry_until, enq, handler, ck, _, lvl = f
    opts = _OPTIONS.get((tries, max_tries, backoff, timeout, retry_until))
    if opts is None or not enq or type(lvl) is not int or not 1 <= lvl <= 10:
        return None
    try:
        enqueued_at = float(enq)
        return Job(id=raw_id.decode(), queue=q.decode(),
                   payload_text=payload.decode() if payload else "", state="running",
                   deliveries=d, tries=opts[0], max_tries=opts[1], backoff=opts[2],
                   timeout=opts[3], retry_until=opts[4],
                   enqueued_at=enqueued_at or keys.enqueued_at_from_id(raw_id),
                   handler=handler.decode() if handler else "",
                   concurrency_key=ck.decode() if ck else "", priority=lvl)
    except (UnicodeDecodeError, ValueError, AttributeError):
        return None


def _remember(f: Sequence[Any], job: Job) -> None:
    if len(_OPTIONS) >= _OPTIONS_MAX:
        _OPTIONS.clear()
    _OPTIONS[tuple(f[2:7])] = (job.tries, job.max_tries, job.backoff, job.timeout,
                               job.retry_until)


def parse_fetched(raw: Sequence[Any]) -> Fetched:
    """FETCH's reply, read without decoding (bytes): a stored field that is not UTF-8
    must fail its job, not the whole batch (whose jobs would be in flight already)."""
    out = Fetched([], [], [])
    jobs = out.jobs
    for i in range(0, len(raw), 3):
        d = int(raw[i + 1])
        if d < 0:
            out.junk.append(Junk(_text(raw[i]), *(_text(x) for x in raw[i + 2][:3])))
            continue
        job = _fast_job(raw[i], d, raw[i + 2])
        if job is not None:
            jobs.append(job)
            continue
        try:
            fields = [x.decode() if type(x) is bytes else x for x in raw[i + 2]]
        except UnicodeDecodeError as exc:
            out.undecodable.append(_undecodable(raw[i], d, raw[i + 2], exc))
            continue
        job = _job(raw[i], d, fields)
        _remember(raw[i + 2], job)
        jobs.append(job)
    return out


def pack(args: Sequence[Any]) -> bytes:
    """One command in RESP, built in one join (redis-py's ``pack_command`` re-joins its
    buffer per argument: ~2 µs per settled job, against ~0.6 µs here)."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if type(a) is bytes else (a.encode() if type(a) is str else str(a).encode())
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class Broker:
    """The consumer's side (redis.asyncio): fetch, settle, beat, reap."""

    def __init__(self, client: aioredis.Redis, prefix: str = keys.DEFAULT_PREFIX) -> None:
        self.redis = client
        self.prefix = prefix
        self._fetch = client.register_script(FETCH)
        self._settle = client.register_script(SETTLE)
        self._beat = client.register_script(BEAT)
        self._reap = client.register_script(REAP)

    async def fetch(self, queues: Sequence[str], want: int, lease: float, worker_id: str,
                    rate_limits: dict[str, RateLimit] | None = None,
                    park_delay: float = 0.5) -> list[Job]:
        """Take up to ``want`` jobs (queues in order, each by priority 10..1): one FETCH."""
        return (await self.fetch_batch(queues, want, lease, worker_id, rate_limits,
                                       park_delay)).jobs

    async def fetch_batch(self, queues: Sequence[str], want: int, lease: float, worker_id: str,
                          rate_limits: dict[str, RateLimit] | None = None,
                          park_delay: float = 0.5) -> Fetched:
        """Like ``fetch``, with the junk filed and the undecodable jobs (see ``Fetched``)."""
        args: list[Any] = [self.prefix, want, lease, worker_id, park_delay]
        for q in queues:
            rl = (rate_limits or {}).get(q)
            args += [q, rl.limit if rl else 0, rl.period if rl else 0]
        return parse_fetched(await self._evalsha(self._fetch, FETCH, args, raw=True))

    async def _evalsha(self, script: Any, source: str, args: Sequence[Any], *,
                       raw: bool = False) -> Any:
        """EVALSHA of a hot script (FETCH, SETTLE), packed here (``pack``); loaded first
        when the server does not know it (a restart, SCRIPT FLUSH)."""
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
        """Apply outcomes in one round trip; True for each one applied (in ``items`` order)."""
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
            return [bool(x) for x in await self._evalsha(self._settle, SETTLE, args)]
        for s in other:
            args += s.args()
        res = await self._evalsha(self._settle, SETTLE, args)
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
        """``beat``, and the waiting jobs per priority of ``queues`` (same round trip)."""
        args: list[Any] = [self.prefix, worker_id, heartbeat_json, ttl, lease, len(queues),
                           *queues]
        for j in running:
            args += [j.queue, j.id, j.concurrency_key]
        gone, flat = await self._beat(args=args)
        n = len(keys.PRIORITIES)
        depths = {q: dict(zip(keys.PRIORITIES, (int(x) for x in flat[i * n:(i + 1) * n]),
                              strict=True)) for i, q in enumerate(queues)}
        return [_text(x) for x in gone], depths

    async def reap(self, queues: Sequence[str], holder: str, interval: float, *,
                   max_lost: int, failed_max_age: float, failed_max_count: int,
                   worker_stale: float, batch: int = 1000) -> tuple[int, int, int, int] | None:
        args: list[Any] = [self.prefix, holder, max(1, int(interval * 1000)), max_lost, batch,
                           failed_max_age, failed_max_count, worker_stale, *queues]
        res = [int(x) for x in await self._reap(args=args)]
        if res[0] == -1:
            return None
        return res[0], res[1], res[2], res[3]

    async def wait_for_work(self, queues: Sequence[str], seconds: float) -> None:
        """Block until a producer pushes a wake-up token or ``seconds`` pass."""
        await self.redis.blpop([keys.notify(q, self.prefix) for q in queues],
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
