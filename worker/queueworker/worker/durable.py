"""Durable enqueue: a job is acknowledged only once replicas hold it (Redis ``WAIT``).

Redis replication is asynchronous: a master answers a write before its replicas
have it, and a failover (Sentinel promoting a replica) loses the writes the
promoted replica had not received; RELIABILITY.md measures how many. These
producers send ``WAIT min_replicas_ack ack_timeout`` in the same pipeline as the
ENQUEUE script (the same connection, one round trip), so ``enqueue`` returns
only when ``min_replicas_ack`` replicas acknowledged the job:

    producer = DurableProducer(connection.sync_client(url), min_replicas_ack=1)
    producer.enqueue("emails", {"to": "a@example.com"})

If fewer replicas acknowledge within ``ack_timeout`` seconds, ``NotReplicatedError``
is raised: the job is on the master but may not survive a failover; enqueueing
it again may run it twice (use ``unique_key`` to make that harmless).
What it costs per enqueue: benchmarks/sentinel/ (benchmarks/RESULTS.md).
The worker's own writes need no WAIT: a lost fetch or settle makes the job run
again (at-least-once), it does not lose it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import redis
import redis.asyncio as aioredis

from queueworker.common.errors import QueueworkerError
from queueworker.worker import keys
from queueworker.worker.producer import AsyncProducer, EnqueueResult, Producer, make_options


class NotReplicatedError(QueueworkerError):
    """Fewer replicas than asked acknowledged the write in time (the job is on the master)."""

    def __init__(self, ids: Sequence[str], acked: int, wanted: int) -> None:
        super().__init__(f"{len(ids)} job(s) reached {acked} replica(s), {wanted} wanted; "
                         f"they are on the master but may not survive a failover: {ids[:3]}")
        self.ids = list(ids)
        self.acked = acked
        self.wanted = wanted


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def _ack_settings(min_replicas_ack: int, ack_timeout: float) -> tuple[int, int]:
    """The WAIT arguments (replicas, milliseconds), checked once for both producers."""
    if min_replicas_ack < 1 or ack_timeout <= 0:
        raise ValueError("min_replicas_ack must be >= 1 and ack_timeout > 0")
    return min_replicas_ack, max(1, int(ack_timeout * 1000))


def _check(wanted: int, acked: Any, ids: list[str]) -> None:
    if int(acked) < wanted:
        raise NotReplicatedError(ids, int(acked), wanted)


class DurableProducer(Producer):
    """``Producer`` whose enqueues wait for ``min_replicas_ack`` replicas (sync)."""

    def __init__(self, client: redis.Redis, prefix: str = keys.DEFAULT_PREFIX, *,
                 min_replicas_ack: int = 1, ack_timeout: float = 1.0, **kwargs: Any) -> None:
        super().__init__(client, prefix, **kwargs)
        self.min_replicas_ack, self.ack_timeout_ms = _ack_settings(min_replicas_ack, ack_timeout)

    def enqueue_result(self, queue: str, payload: Any, **options: Any) -> EnqueueResult:
        args = self._args(queue, payload, make_options(**options))
        with self.redis.pipeline(transaction=False) as pipe:
            self._enqueue(args=args, client=pipe)
            pipe.wait(self.min_replicas_ack, self.ack_timeout_ms)
            res, acked = pipe.execute()
        result = EnqueueResult(_text(res[0]), bool(int(res[1])))
        _check(self.min_replicas_ack, acked, [result.id])
        return result

    def _send(self, batch: Sequence[list[Any]]) -> list[str]:
        with self.redis.pipeline(transaction=False) as pipe:
            for args in batch:
                self._enqueue(args=args, client=pipe)
            pipe.wait(self.min_replicas_ack, self.ack_timeout_ms)
            *results, acked = pipe.execute()
        ids = [_text(res[0]) for res in results]
        _check(self.min_replicas_ack, acked, ids)
        return ids


class AsyncDurableProducer(AsyncProducer):
    """The same over redis.asyncio."""

    def __init__(self, client: aioredis.Redis, prefix: str = keys.DEFAULT_PREFIX, *,
                 min_replicas_ack: int = 1, ack_timeout: float = 1.0, **kwargs: Any) -> None:
        super().__init__(client, prefix, **kwargs)
        self.min_replicas_ack, self.ack_timeout_ms = _ack_settings(min_replicas_ack, ack_timeout)

    async def enqueue_result(self, queue: str, payload: Any, **options: Any) -> EnqueueResult:
        args = self._args(queue, payload, make_options(**options))
        async with self.redis.pipeline(transaction=False) as pipe:
            await self._enqueue(args=args, client=pipe)
            pipe.wait(self.min_replicas_ack, self.ack_timeout_ms)
            res, acked = await pipe.execute()
        result = EnqueueResult(_text(res[0]), bool(int(res[1])))
        _check(self.min_replicas_ack, acked, [result.id])
        return result

    async def enqueue_many(self, queue: str, payloads: Iterable[Any], **options: Any
                           ) -> list[str]:
        """``chunk`` jobs (default 1000) and one WAIT per round trip."""
        chunk = options.pop("chunk", 1000)
        opts = make_options(**options)
        all_args = [self._args(queue, p, opts) for p in payloads]  # validate all first
        ids: list[str] = []
        for start in range(0, len(all_args), chunk):
            async with self.redis.pipeline(transaction=False) as pipe:
                for args in all_args[start:start + chunk]:
                    await self._enqueue(args=args, client=pipe)
                pipe.wait(self.min_replicas_ack, self.ack_timeout_ms)
                *results, acked = await pipe.execute()
            batch = [_text(res[0]) for res in results]
            _check(self.min_replicas_ack, acked, batch)
            ids += batch
        return ids
