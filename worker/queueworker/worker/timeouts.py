"""Job timeouts: one watchdog for all running jobs, and the handler threads it gives up on.

Sync handlers run in a thread pool, not on the loop: a blocking handler on
the loop would stop the beats (leases would expire and the job would run
twice), the settler and the signal handling. A thread cannot be killed, so
when a sync handler passes its timeout the attempt is counted as failed (and
retried or failed per its policy) and the thread is *abandoned*: it runs on,
its result is ignored. The pool has room for ``concurrency`` abandoned
threads; when that many are stuck the worker stops taking jobs, drains and
exits with code 75 (``runtime.EXIT_STUCK_THREADS``) so that its supervisor
(Kubernetes) starts a fresh process. Code that must be stopped hard belongs in
an async handler (cancelled at the timeout) or in a subprocess that the
handler starts and kills itself.

The watchdog task checks the running jobs' deadlines every WATCHDOG_INTERVAL
and cancels the ones past due (one timer for all jobs rather than one per job:
that per-job timer cost ~15 % of the throughput of short jobs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from queueworker.common.errors import QueueworkerError
from queueworker.worker.handlers import Handler
from queueworker.worker.job import Job
from queueworker.worker.log import event

WATCHDOG_INTERVAL = 0.05


class JobTimeoutError(QueueworkerError):
    """A job ran past its timeout and the watchdog cancelled it (or gave up on its thread)."""


class Watchdog:
    """Runs handlers (async ones on the loop, sync ones in its thread pool) under their timeout."""

    def __init__(self, concurrency: int) -> None:
        # Room for `concurrency` running threads plus as many abandoned ones.
        self._executor = ThreadPoolExecutor(max_workers=2 * concurrency,
                                            thread_name_prefix="queueworker-job")
        self._deadlines: dict[str, tuple[float, asyncio.Task[Any]]] = {}
        self._expired: dict[str, bool] = {}
        self.abandoned = 0  # handler threads past their timeout, still running
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> asyncio.Task[None]:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self.run(), name="watchdog")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def call(self, handler: Handler, job: Job, payload: Any,
                   limit: float | None) -> Any:
        """Run one job's handler and return what it returned; JobTimeoutError when it runs
        past ``limit`` seconds (its timeout).

        A cancellation from anyone else (a drain hand-back) is raised as is."""
        fn = handler.fn
        # The loop cached at start: asyncio.get_running_loop() costs a getpid() system call
        # on Python 3.11, and this runs per job.
        loop = self._loop or asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        if limit is not None and task is not None:
            self._deadlines[job.id] = (loop.time() + limit, task)
        cf: Future[Any] | None = None
        try:
            if handler.is_async:
                result = await (fn(payload, job=job) if handler.wants_job else fn(payload))
            else:
                call: Callable[[], Any] = (
                    (lambda: fn(payload, job=job)) if handler.wants_job else (lambda: fn(payload)))
                cf = self._executor.submit(call)
                result = await asyncio.wrap_future(cf)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError) and cf is not None and not cf.done():
                self._abandon(cf)
            # The watchdog cancelled it (whatever the handler turned that into), and nobody
            # else did: a drain hand-back wins over a timeout.
            if self._expired.pop(job.id, False) and task is not None and task.uncancel() == 0:
                raise JobTimeoutError(_timeout_text(limit, cf)) from None
            raise
        finally:
            self._deadlines.pop(job.id, None)
        if self._expired.pop(job.id, False) and task is not None:  # it swallowed the cancel
            task.uncancel()
            raise JobTimeoutError(_timeout_text(limit, cf))
        return result

    async def run(self) -> None:
        """Cancel jobs past their timeout: one timer for all jobs, not one per job.

        Checked every WATCHDOG_INTERVAL, so a timeout fires up to that much late."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(WATCHDOG_INTERVAL)
            if not self._deadlines:
                continue
            now = loop.time()
            for job_id, (deadline, task) in list(self._deadlines.items()):
                if now >= deadline and job_id not in self._expired:
                    self._expired[job_id] = True
                    task.cancel()

    def _abandon(self, cf: Future[Any]) -> None:
        self.abandoned += 1
        event("thread.abandoned", logging.WARNING, stuck=self.abandoned)

        def done(_: Future[Any]) -> None:
            self.abandoned -= 1

        cf.add_done_callback(done)


def _timeout_text(timeout: float | None, cf: Future[Any] | None) -> str:
    text = f"job exceeded its timeout of {timeout or 0:g}s"
    return text + " (its thread was abandoned)" if cf is not None else text
