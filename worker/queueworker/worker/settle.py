"""The settler: every outcome since the last round trip goes to Redis in one SETTLE script.

The slots append outcomes (done / retry / fail / back; ``failed_attempt``
decides between retry and fail) and go on; the settler
sends what is pending while they do (group commit: the busier the worker, the
bigger the batch). On a Redis error the batch is kept and sent again, with
backoff; the leases of its jobs are renewed by the beats meanwhile.

Hook points after a job is done (for chains: "run the next job with this
result"): inside the SETTLE script, ``scripts.ON_DONE`` (Lua ``on_done(q, id,
jk, result, now)``, atomic with the ack); after the round trip,
``Settler.after_done`` (Python callables given each applied ``done``
Settlement, whose ``a`` is the result's JSON text, sealed if the job's payload
was: best effort, a crash between the two skips it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from queueworker.worker.broker import REDIS_ERRORS, Broker, Settlement
from queueworker.worker.job import Job
from queueworker.worker.log import event
from queueworker.worker.metrics import WorkerMetrics

BATCH = 1000  # settlements per SETTLE script at most


class Settler:
    def __init__(self, broker: Broker, result_ttl: int, *,
                 on_ok: Callable[[], None],
                 on_error: Callable[[str, BaseException], None]) -> None:
        self.broker = broker
        self.result_ttl = result_ttl
        self.pending: list[Settlement] = []
        self._on_ok = on_ok
        self._on_error = on_error
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.after_done: list[Callable[[Settlement], None]] = []

    def add(self, s: Settlement) -> None:
        self.pending.append(s)
        self._wake.set()

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name="settler")
        return self._task

    async def finish(self, seconds: float = 5.0) -> None:
        """Send what is pending, then stop; give up after ``seconds``.

        Redis may be gone: then the leases run out and the jobs run again elsewhere."""
        self._closing = True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self._task, timeout=seconds)
        except (TimeoutError, asyncio.CancelledError):
            self._task.cancel()
            if self.pending:
                event("worker.unsettled", logging.WARNING, jobs=len(self.pending),
                      note="their leases will run out and they will run again")

    async def run(self) -> None:
        backoff = 0.1
        while True:
            if not self.pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch, self.pending = self.pending[:BATCH], self.pending[BATCH:]
            try:
                applied = await self.broker.settle(batch, self.result_ttl)
                self._on_ok()
                backoff = 0.1
            except REDIS_ERRORS as exc:
                self._on_error("settle", exc)
                self.pending[:0] = batch
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            for s, ok in zip(batch, applied, strict=True):
                if ok and s.op == "done":
                    self._after_done(s)
                elif not ok:
                    event("job.lease_lost", logging.WARNING, id=s.job.id, queue=s.job.queue,
                          op=s.op, note="the lease ran out before the ack; it may run again")


    def _after_done(self, s: Settlement) -> None:
        for hook in self.after_done:
            try:
                hook(s)
            except Exception as exc:  # a hook's bug must not stop the settler
                event("settle.hook_failed", logging.WARNING, id=s.job.id,
                      error=f"{type(exc).__name__}: {exc}")


def failed_attempt(job: Job, reason: str, error: str, tb: str, metrics: WorkerMetrics, *,
                   retry: bool = True) -> Settlement:
    """What a failed attempt becomes, counted and logged: a retry after the job's backoff
    while its tries and retry deadline allow (and ``retry``), else the failed store."""
    tries = job.tries + 1
    delay = job.next_retry_delay(tries, time.time()) if retry else None
    m = metrics.queue(job.queue)
    if delay is not None:
        m.retried.inc()
        event("job.retry", logging.WARNING, id=job.id, queue=job.queue, tries=tries,
              max_tries=job.max_tries, delay_s=round(delay, 3), error=error)
        return Settlement("retry", job, tries, repr(delay), error)
    m.failed[reason].inc()
    event("job.failed", logging.ERROR, id=job.id, queue=job.queue, tries=tries,
          reason=reason, error=error)
    return Settlement("fail", job, tries, error, tb)
