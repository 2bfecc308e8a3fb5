"""Results: what a handler returned, and waiting for it without polling.

A handler's return value is stored, as JSON, in the job hash (field ``result``;
encrypted like the payload when the job's payload is, see ``crypto``) when the
job is done. The hash then lives ``result_ttl`` seconds (the worker's
``--result-ttl``, default 3600; a job may set its own with
``enqueue(..., result_ttl=S)``). A result over ``max_result_bytes`` (default
1 MiB; ``QUEUEWORKER_MAX_RESULT_BYTES`` on the worker) or not JSON fails the
job into the failed store with an error that names the limit (no retry: the
next try would return the same).

Waiting (``Producer.wait`` / ``AsyncProducer.wait``) is woken by a per-job
notification, not a polling loop:

1. ``WAIT_CHECK`` marks the job as waited on (``waited`` in its hash) and
   reads its state in one script; a finished job answers at once.
2. Otherwise the waiter blocks in ``BLMOVE done done`` on ``keys.done(id)``.
   SETTLE pushes one token there when a waited job finishes (done, or failed
   for good; also the reaper's poison-pill failure), with the result's TTL.
   BLMOVE from a list onto itself leaves the token in place, so every waiter
   wakes, and a token pushed between step 1 and step 2 is still there.
3. On a wake-up, a block that ran out (every ``BLOCK_CHUNK`` s) or a
   connection error (reconnect with backoff), the waiter goes back to step 1:
   a result that arrived while it was disconnected is read from the hash, a
   job whose hash is gone raises ``JobNotFoundError``. A worker crash only
   delays the token: the lease runs out, the job runs again and settles.

Each waiting call holds one connection of its client's pool while it blocks
(as any BLPOP does). A client whose ``socket_timeout`` is shorter than the
block ends each block early with a timeout: the wait then reads the state
again and blocks anew, still correct, but it polls at that period.

Only waited jobs pay for the token (one flag read per settle otherwise), so
fire-and-forget jobs keep their throughput.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

from queueworker.common.errors import QueueworkerError
from queueworker.worker import crypto, keys
from queueworker.worker.connection import is_cluster
from queueworker.worker.scripts import PRELUDE

DEFAULT_MAX_RESULT_BYTES = 1024 * 1024
ENV_MAX_RESULT_BYTES = "QUEUEWORKER_MAX_RESULT_BYTES"
BLOCK_CHUNK = 30.0  # longest single block: then the job's state is read again
FINAL_STATES = ("done", "failed")
_FIELDS = ("state", "result", "error", "traceback", "progress", "progress_detail", "tries",
           "queue", "finished_at", "failed_at")

# ARGV: prefix, id, register ('1': mark the job as waited on)
# -> false (no such job) or the values of _FIELDS
WAIT_CHECK = PRELUDE + """
local jk = jkey(ARGV[2])
if redis.call('EXISTS', jk) == 0 then return false end
if ARGV[3] == '1' then redis.call('HSET', jk, 'waited', '1') end
return redis.call('HMGET', jk, """ + ", ".join(f"'{f}'" for f in _FIELDS) + """)
"""

_RECONNECT_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


class ResultError(QueueworkerError, ValueError):
    """A handler's return value that cannot be stored (not JSON, or over the size limit)."""


class JobFailedError(QueueworkerError):
    """The job failed for good (it is in the failed store): ``error`` is its error line
    (``Fail: ...`` for a handler's ``Fail``), ``traceback`` the handler's traceback."""

    def __init__(self, job_id: str, error: str, traceback: str = "") -> None:
        super().__init__(f"job {job_id} failed: {error}")
        self.job_id = job_id
        self.error = error
        self.traceback = traceback


class JobNotFoundError(QueueworkerError, LookupError):
    """No such job: never enqueued, or finished longer ago than its result TTL."""


class WaitTimeoutError(QueueworkerError, TimeoutError):
    """The job did not finish within the time given to ``wait``."""


class ResultPendingError(QueueworkerError):
    """``result()`` of a job that has not finished yet (see ``Outcome.state``)."""


# Short names, as in the brief: ``except JobFailed``.
JobFailed = JobFailedError


def encode_result(value: Any, max_bytes: int = DEFAULT_MAX_RESULT_BYTES) -> str:
    """The JSON text stored for a handler's return value ('' for None)."""
    if value is None:
        return ""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ResultError(f"the handler's return value is not JSON-serialisable ({exc}); "
                          "return JSON data (dict, list, str, number, bool, None)") from None
    size = len(text.encode())
    if max_bytes and size > max_bytes:
        raise ResultError(
            f"the handler's return value is {size} bytes, over the result limit of {max_bytes} "
            f"bytes ({ENV_MAX_RESULT_BYTES} or @handler(max_result_bytes=...)); store large "
            "results elsewhere (object storage) and return a reference")
    return text


def _text(x: Any) -> str | None:
    if x is None:
        return None
    return x.decode() if isinstance(x, bytes) else str(x)


def _float(x: str | None) -> float | None:
    try:
        return float(x) if x else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Outcome:
    """Where a job stands, for ``Producer.outcome``: ``state`` is waiting | delayed |
    running | done | failed; ``result`` is set when done, ``error``/``traceback`` when
    failed; ``progress`` (0..1) and ``progress_detail`` are the handler's last report."""

    id: str
    state: str
    queue: str = ""
    result: Any = None
    error: str = ""
    traceback: str = ""
    progress: float | None = None
    progress_detail: Any = None
    tries: int = 0
    finished_at: float | None = None
    unreadable: str = ""  # why an encrypted field could not be opened (crypto.py)

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    def value(self) -> Any:
        """The result when done; JobFailedError when failed; ResultPendingError otherwise."""
        if self.unreadable:
            raise crypto.CryptoError(self.unreadable)
        if self.state == "done":
            return self.result
        if self.state == "failed":
            raise JobFailedError(self.id, self.error, self.traceback)
        raise ResultPendingError(f"job {self.id} has not finished (state {self.state})")

    def info(self) -> dict[str, Any]:
        """A JSON-friendly dict (the HTTP API and ``queueworker job``)."""
        return {"id": self.id, "state": self.state, "queue": self.queue,
                "result": self.result, "error": self.error, "progress": self.progress,
                "progress_detail": self.progress_detail, "tries": self.tries,
                "finished_at": self.finished_at,
                **({"unreadable": self.unreadable} if self.unreadable else {})}


def outcome_from(job_id: str, raw: Any, keyring: crypto.Keyring | None) -> Outcome | None:
    """An ``Outcome`` from WAIT_CHECK's reply (HMGET of _FIELDS); None for no job."""
    if not raw:
        return None
    v = dict(zip(_FIELDS, (_text(x) for x in raw), strict=True))
    unreadable: list[str] = []

    def dec(name: str) -> str:
        try:
            return crypto.open_field(v.get(name) or "", job_id, name, keyring)
        except crypto.CryptoError as exc:  # the state is still worth knowing
            unreadable.append(str(exc))
            return ""

    result_text, detail_text = dec("result"), dec("progress_detail")
    try:
        tries = int(v.get("tries") or 0)
    except ValueError:
        tries = 0
    return Outcome(
        id=job_id, state=v.get("state") or "", queue=v.get("queue") or "",
        result=json.loads(result_text) if result_text else None,
        error=dec("error"), traceback=dec("traceback"),
        progress=_float(v.get("progress")),
        progress_detail=json.loads(detail_text) if detail_text else None,
        tries=tries, finished_at=_float(v.get("finished_at") or v.get("failed_at")),
        unreadable=unreadable[0] if unreadable else "",
    )


def _router(client: object, prefix: str) -> Callable[[str], list[str]]:
    """WAIT_CHECK's KEYS for a job id: on a cluster its queue's (keys.script_keys)."""
    cluster = is_cluster(client)

    def route(job_id: str) -> list[str]:
        return keys.script_keys(keys.queue_of_id(job_id) or "", cluster, prefix)

    return route


class SyncResults:
    """``result`` / ``outcome`` / ``wait`` over redis-py (used by ``Producer``)."""

    def __init__(self, client: redis.Redis, prefix: str, keyring: crypto.Keyring | None) -> None:
        self.redis = client
        self.prefix = prefix
        self.keyring = keyring
        self._check = client.register_script(WAIT_CHECK)
        self._route = _router(client, prefix)

    def outcome(self, job_id: str, *, register: bool = False) -> Outcome | None:
        raw = self._check(keys=self._route(job_id),
                          args=[self.prefix, job_id, "1" if register else "0"])
        return outcome_from(job_id, raw, self.keyring)

    def wait(self, job_id: str, timeout: float | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        backoff = 0.05
        done = keys.done(job_id, self.prefix)
        while True:
            try:
                o = self.outcome(job_id, register=True)
                if o is None:
                    raise JobNotFoundError(f"no job {job_id!r} (never enqueued, or finished "
                                           "longer ago than its result TTL)")
                if o.finished:
                    return o.value()
                block = _block_for(deadline, job_id)
                self.redis.blmove(done, done, block, "RIGHT", "LEFT")  # type: ignore[arg-type]
                backoff = 0.05
            except _RECONNECT_ERRORS:
                _block_for(deadline, job_id)  # raises once the deadline has passed
                time.sleep(backoff)
                backoff = min(backoff * 2, 1.0)


class AsyncResults:
    """The same over redis.asyncio (used by ``AsyncProducer``)."""

    def __init__(self, client: aioredis.Redis, prefix: str,
                 keyring: crypto.Keyring | None) -> None:
        self.redis = client
        self.prefix = prefix
        self.keyring = keyring
        self._check = client.register_script(WAIT_CHECK)
        self._route = _router(client, prefix)

    async def outcome(self, job_id: str, *, register: bool = False) -> Outcome | None:
        raw = await self._check(keys=self._route(job_id),
                                args=[self.prefix, job_id, "1" if register else "0"])
        return outcome_from(job_id, raw, self.keyring)

    async def wait(self, job_id: str, timeout: float | None) -> Any:  # noqa: ASYNC109
        deadline = None if timeout is None else time.monotonic() + timeout
        backoff = 0.05
        done = keys.done(job_id, self.prefix)
        while True:
            try:
                o = await self.outcome(job_id, register=True)
                if o is None:
                    raise JobNotFoundError(f"no job {job_id!r} (never enqueued, or finished "
                                           "longer ago than its result TTL)")
                if o.finished:
                    return o.value()
                block = _block_for(deadline, job_id)
                await self.redis.blmove(done, done, block, "RIGHT", "LEFT")  # type: ignore[arg-type]
                backoff = 0.05
            except _RECONNECT_ERRORS:
                _block_for(deadline, job_id)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    async def follow(self, job_id: str, timeout: float | None  # noqa: ASYNC109
                     ) -> AsyncIterator[dict[str, Any]]:
        """Yield progress reports as published (progress.py), then the final
        ``Outcome.info()``; stop quietly at ``timeout``. JobNotFoundError for no job.

        Subscribed before the state is read, so a report or the end that comes in
        between is not missed; after a quiet BLOCK_CHUNK or a reconnect the state is
        read again."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pubsub = self.redis.pubsub()
        channel = keys.progress_channel(job_id, self.prefix)
        try:
            await pubsub.subscribe(channel)
            o = await self._must(job_id)
            if o.progress is not None and not o.finished:
                yield {"state": "running", "progress": o.progress, "detail": o.progress_detail}
            while not o.finished:
                try:
                    block = _block_for(deadline, job_id)
                except WaitTimeoutError:
                    return
                try:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True,
                                                   timeout=block)
                except _RECONNECT_ERRORS:
                    await asyncio.sleep(0.1)
                    await pubsub.subscribe(channel)
                    msg = None
                report = self._report(job_id, msg)
                if report is not None:
                    yield report
                    continue
                o = await self._must(job_id)
            yield o.info()
        finally:
            await pubsub.aclose()

    async def _must(self, job_id: str) -> Outcome:
        o = await self.outcome(job_id, register=True)
        if o is None:
            raise JobNotFoundError(f"no job {job_id!r} (never enqueued, or finished longer ago "
                                   "than its result TTL)")
        return o

    def _report(self, job_id: str, msg: Any) -> dict[str, Any] | None:
        """A running report from a pub/sub message (detail opened); None for anything else."""
        if not msg or msg.get("type") != "message":
            return None
        try:
            data = json.loads(_text(msg.get("data")) or "")
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("state") != "running":
            return None
        detail = data.get("detail")
        if isinstance(detail, str) and crypto.is_sealed(detail):
            try:
                data["detail"] = json.loads(
                    crypto.open_field(detail, job_id, "progress_detail", self.keyring))
            except crypto.CryptoError:
                data["detail"] = "(encrypted)"
        return data


def _block_for(deadline: float | None, job_id: str) -> float:
    """Seconds to block next (at most BLOCK_CHUNK); WaitTimeoutError past the deadline."""
    if deadline is None:
        return BLOCK_CHUNK
    left = deadline - time.monotonic()
    if left <= 0:
        raise WaitTimeoutError(f"job {job_id} did not finish in time")
    # Never below 10 ms: Redis reads a block of 0 ms as "forever".
    return max(0.01, min(left, BLOCK_CHUNK))
