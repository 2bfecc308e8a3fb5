"""Enqueue jobs and look them up, from any Python program.

    from redis import Redis
    from queueworker.worker.producer import Producer

    producer = Producer(Redis.from_url("redis://localhost:6379/0"))
    job_id = producer.enqueue("emails", {"to": "a@example.com"}, max_tries=5,
                              backoff=[10, 30, 60], timeout=30, unique_key="welcome:42",
                              priority=8)  # 1..10, 10 first; default 5
    producer.job(job_id)          # -> dict (state, deliveries, tries, error, ...) or None

``AsyncProducer`` is the same over ``redis.asyncio``. Payloads are JSON: bytes
and other non-JSON values are refused (encode them yourself, e.g. base64), and
so is a payload over ``max_payload_bytes`` (default 1 MiB).

Results (results.py): ``producer.wait(job_id, timeout=60)`` blocks until the
job is done and returns what its handler returned, or raises ``JobFailedError``
(the job failed for good), ``WaitTimeoutError`` or ``JobNotFoundError``;
``producer.result(job_id)`` is the same without waiting (``ResultPendingError``
while it runs); ``producer.outcome(job_id)`` is the whole picture (state,
result, error, progress) or None. Payloads of the queues the keyring seals are
encrypted (crypto.py; the ring comes from the environment unless given).

``enqueue`` returns the job id. With ``unique_key``, while a job with that key
is queued or running (and at most ``unique_for`` seconds), enqueueing again
returns the *existing* job's id and adds nothing; ``enqueue_result`` tells
the two cases apart.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

from queueworker.worker import crypto, keys
from queueworker.worker.broker import ENQUEUE
from queueworker.worker.connection import is_cluster
from queueworker.worker.job import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    DEFAULT_MAX_TRIES,
    DEFAULT_PRIORITY,
    DEFAULT_UNIQUE_FOR,
    BackoffSpec,
    Job,
    JobOptions,
    encode_payload,
    new_id,
    new_job_fields,
)
from queueworker.worker.results import AsyncResults, JobNotFoundError, Outcome, SyncResults

# ``keyring`` default: the process's ring from its environment (crypto.process_keyring).
FROM_ENV: Any = "env"


@dataclass(frozen=True)
class EnqueueResult:
    id: str
    created: bool  # False: a unique job with the same key exists (its id is returned)


def make_options(*, delay: float | None = None, max_tries: int | None = None,
                 backoff: BackoffSpec = None, timeout: float | None = None,
                 retry_until: float | None = None, unique_key: str | None = None,
                 unique_for: float | None = None, concurrency_key: str | None = None,
                 concurrency_limit: int = 1, handler: str | None = None,
                 priority: int = DEFAULT_PRIORITY, max_exceptions: int | None = None,
                 result_ttl: int | None = None) -> JobOptions:
    """The options ``enqueue`` takes (see ``job.JobOptions``); unknown names raise TypeError.

    delay: seconds before the job may run; max_tries: attempts before it fails for
    good; backoff: seconds between tries (``10``, ``[10, 30, 60]`` or
    ``"exp:BASE:CAP"``); timeout: hard limit per attempt (seconds); retry_until:
    epoch seconds after which no retry is scheduled; unique_key / unique_for: no
    second job with this key while one is queued or running (at most unique_for
    seconds); concurrency_key / concurrency_limit: at most that many jobs with
    this key run at once across all workers; handler: which of a worker's
    handlers runs it (workers started with a handler table); priority: 1 (lowest)
    to 10 (highest), default 5: within its queue a job runs after every waiting
    job of a higher priority, FIFO within a level (``keys.waiting``); max_exceptions:
    fail once that many attempts raised (control.py); result_ttl: seconds its
    result is kept (default: the worker's --result-ttl).
    """
    return JobOptions(
        delay=delay or 0.0,
        max_tries=DEFAULT_MAX_TRIES if max_tries is None else max_tries,
        backoff=backoff,
        timeout=timeout,
        retry_until=retry_until,
        unique_key=unique_key,
        unique_for=DEFAULT_UNIQUE_FOR if unique_for is None else unique_for,
        concurrency_key=concurrency_key,
        concurrency_limit=concurrency_limit,
        handler=handler,
        priority=priority,
        max_exceptions=max_exceptions,
        result_ttl=result_ttl,
    )


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


class _Base:
    def __init__(self, prefix: str, max_payload_bytes: int, keyring: Any, cluster: bool
                 ) -> None:
        self.prefix = prefix
        self.cluster = cluster
        self.max_payload_bytes = max_payload_bytes
        self.keyring: crypto.Keyring | None = (
            crypto.process_keyring() if keyring is FROM_ENV else keyring)

    def _args(self, queue: str, payload: Any, options: JobOptions) -> list[Any]:
        if not queue or any(c in queue for c in "{}"):
            raise ValueError(f"bad queue name {queue!r}")
        text = encode_payload(payload, self.max_payload_bytes)
        now = time.time()
        job_id = new_id(now, queue)
        if self.keyring is not None and self.keyring.seals(queue, options.handler or ""):
            text = self.keyring.seal(text, job_id, "payload")
        fields = new_job_fields(queue, text, options, now)
        args: list[Any] = [self.prefix, queue, job_id, options.delay,
                           options.unique_key or "", options.unique_for]
        for k, v in fields.items():
            args += [k, v]
        return args

    def _keys(self, queue: str) -> list[str]:
        """ENQUEUE's KEYS (``keys.script_keys``: on a cluster they route the call)."""
        return keys.script_keys(queue, self.cluster, self.prefix)

    def _job(self, job_id: str, raw: dict[Any, Any]) -> dict[str, Any] | None:
        if not raw:
            return None
        h = {_text(k): _text(v) for k, v in raw.items()}
        return Job.from_hash(job_id, h).info(self.keyring)


class Producer(_Base):
    """Synchronous producer over redis-py."""

    def __init__(self, client: redis.Redis, prefix: str = keys.DEFAULT_PREFIX,
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 keyring: crypto.Keyring | None = FROM_ENV) -> None:
        super().__init__(prefix, max_payload_bytes, keyring, is_cluster(client))
        self.redis = client
        self._enqueue = client.register_script(ENQUEUE)
        self._results = SyncResults(client, prefix, self.keyring)

    def enqueue_result(self, queue: str, payload: Any, **options: Any) -> EnqueueResult:
        """Like ``enqueue``, and tells whether a job was created (see ``EnqueueResult``)."""
        opts = make_options(**options)
        res = self._enqueue(keys=self._keys(queue), args=self._args(queue, payload, opts))
        return EnqueueResult(_text(res[0]), bool(int(res[1])))

    def enqueue(self, queue: str, payload: Any, **options: Any) -> str:
        """Enqueue one job; returns its id. Options: see ``make_options``."""
        return self.enqueue_result(queue, payload, **options).id

    def enqueue_many(self, queue: str, payloads: Iterable[Any], *, chunk: int = 1000,
                     **options: Any) -> list[str]:
        """Enqueue many jobs with the same options, ``chunk`` per round trip."""
        opts = make_options(**options)
        ids: list[str] = []
        batch: list[list[Any]] = []
        for payload in payloads:
            batch.append(self._args(queue, payload, opts))  # validate all before sending
            if len(batch) >= chunk:
                ids += self._send(batch)
                batch = []
        if batch:
            ids += self._send(batch)
        return ids

    def _send(self, batch: Sequence[list[Any]]) -> list[str]:
        if self.cluster:  # a script in a cluster pipeline is not loaded on NOSCRIPT: one by one
            return [_text(self._enqueue(keys=self._keys(args[1]), args=args)[0])
                    for args in batch]
        with self.redis.pipeline(transaction=False) as pipe:
            for args in batch:
                self._enqueue(args=args, client=pipe)
            return [_text(res[0]) for res in pipe.execute()]

    def job(self, job_id: str) -> dict[str, Any] | None:
        """The job's hash as a dict (state, deliveries, tries, error, ...); None if unknown
        (never enqueued, or done longer ago than the worker's result TTL)."""
        return self._job(job_id, self.redis.hgetall(keys.job(job_id, self.prefix)))

    def outcome(self, job_id: str) -> Outcome | None:
        """Where the job stands (state, result, error, progress); None if unknown."""
        return self._results.outcome(job_id)

    def result(self, job_id: str) -> Any:
        """What the job's handler returned. Raises JobFailedError (it failed for good),
        ResultPendingError (not finished yet) or JobNotFoundError (results.py)."""
        o = self._results.outcome(job_id)
        if o is None:
            raise JobNotFoundError(f"no job {job_id!r} (never enqueued, or finished longer "
                                   "ago than its result TTL)")
        return o.value()

    def wait(self, job_id: str, timeout: float | None = None) -> Any:
        """Block until the job finishes (at most ``timeout`` seconds; None: no limit) and
        return its result. Raises JobFailedError, WaitTimeoutError or JobNotFoundError.
        Woken by the job's done token, not by polling; survives reconnects (results.py)."""
        return self._results.wait(job_id, timeout)


class AsyncProducer(_Base):
    """The same over redis.asyncio, for async applications."""

    def __init__(self, client: aioredis.Redis, prefix: str = keys.DEFAULT_PREFIX,
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 keyring: crypto.Keyring | None = FROM_ENV) -> None:
        super().__init__(prefix, max_payload_bytes, keyring, is_cluster(client))
        self.redis = client
        self._enqueue = client.register_script(ENQUEUE)
        self._results = AsyncResults(client, prefix, self.keyring)

    async def enqueue_result(self, queue: str, payload: Any, **options: Any) -> EnqueueResult:
        opts = make_options(**options)
        res = await self._enqueue(keys=self._keys(queue), args=self._args(queue, payload, opts))
        return EnqueueResult(_text(res[0]), bool(int(res[1])))

    async def enqueue(self, queue: str, payload: Any, **options: Any) -> str:
        return (await self.enqueue_result(queue, payload, **options)).id

    async def enqueue_many(self, queue: str, payloads: Iterable[Any], **options: Any
                           ) -> list[str]:
        chunk = options.pop("chunk", 1000)
        opts = make_options(**options)
        all_args = [self._args(queue, p, opts) for p in payloads]
        ids: list[str] = []
        if self.cluster:  # see Producer._send; sent together instead
            for start in range(0, len(all_args), chunk):
                part = all_args[start:start + chunk]
                res = await asyncio.gather(*(self._enqueue(keys=self._keys(a[1]), args=a)
                                             for a in part))
                ids += [_text(r[0]) for r in res]
            return ids
        for start in range(0, len(all_args), chunk):
            async with self.redis.pipeline(transaction=False) as pipe:
                for args in all_args[start:start + chunk]:
                    await self._enqueue(args=args, client=pipe)
                ids += [_text(res[0]) for res in await pipe.execute()]
        return ids

    async def job(self, job_id: str) -> dict[str, Any] | None:
        return self._job(job_id, await self.redis.hgetall(keys.job(job_id, self.prefix)))

    async def outcome(self, job_id: str) -> Outcome | None:
        """See ``Producer.outcome``."""
        return await self._results.outcome(job_id)

    async def result(self, job_id: str) -> Any:
        """See ``Producer.result``."""
        o = await self._results.outcome(job_id)
        if o is None:
            raise JobNotFoundError(f"no job {job_id!r} (never enqueued, or finished longer "
                                   "ago than its result TTL)")
        return o.value()

    # A timeout parameter (ASYNC109): it bounds the server-side block too, and the sync
    # and async producers keep one signature.
    async def wait(self, job_id: str, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """See ``Producer.wait``."""
        return await self._results.wait(job_id, timeout)

    def follow(self, job_id: str, timeout: float | None = None
               ) -> AsyncIterator[dict[str, Any]]:
        """Progress reports as they come (``{"state": "running", "progress", "detail"}``),
        then the final ``Outcome.info()``; ends at ``timeout`` (results.follow)."""
        return self._results.follow(job_id, timeout)
