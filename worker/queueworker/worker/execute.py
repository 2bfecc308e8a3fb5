"""One attempt of one job: hooks, the handler, and what its end becomes (a Settlement).

``Execution.run`` is what a worker slot awaits (runtime.py). It returns the
settlement to send: ``done`` with the result (results.py), ``retry``/``fail``
after a failed attempt (``retryx``/``failx`` when the handler raised, so
SETTLE counts ``exceptions``), or ``release`` (control.Release). A drain's
cancellation is not caught here: the slot hands the job back.

Why each end is what it is:

- a handler that raised ``Fail``, a payload that is not JSON or does not open
  (crypto.py), a return value that is not JSON or over the limit, a handler
  name the worker does not know: failed at once (trying again changes nothing);
- an exception: retried per the job's backoff, until ``max_tries`` or
  ``max_exceptions`` (read from the job hash only when an exception happens:
  the success path pays nothing for it);
- a timeout: retried until ``max_tries`` (not an exception of the handler's).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import traceback
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from queueworker.worker import crypto, keys, throttle
from queueworker.worker.broker import REDIS_ERRORS, Settlement
from queueworker.worker.control import (
    Fail,
    HandlerOptions,
    Release,
    call_hook,
    options_of,
)
from queueworker.worker.handlers import HandlerTable, UnknownHandlerError
from queueworker.worker.job import BadPayloadError, Job
from queueworker.worker.log import event
from queueworker.worker.metrics import WorkerMetrics
from queueworker.worker.progress import ProgressReporter
from queueworker.worker.results import (
    DEFAULT_MAX_RESULT_BYTES,
    ENV_MAX_RESULT_BYTES,
    ResultError,
    encode_result,
)
from queueworker.worker.settle import failed_attempt
from queueworker.worker.timeouts import JobTimeoutError, Watchdog


def max_result_bytes_from_env() -> int:
    text = os.environ.get(ENV_MAX_RESULT_BYTES, "")
    try:
        return int(text) if text else DEFAULT_MAX_RESULT_BYTES
    except ValueError:
        raise ValueError(f"{ENV_MAX_RESULT_BYTES}={text!r} is not a whole number") from None


class Execution:
    def __init__(self, handlers: HandlerTable, watchdog: Watchdog, metrics: WorkerMetrics,
                 client: aioredis.Redis, prefix: str) -> None:
        self.handlers = handlers
        self.watchdog = watchdog
        self.metrics = metrics
        self.redis = client
        self.prefix = prefix
        self.keyring = crypto.process_keyring()
        self.progress = ProgressReporter(client, prefix, self.keyring)
        self.max_result_bytes = max_result_bytes_from_env()
        self._report: Callable[[Job, float, Any], None] | None = None
        self.throttles = throttle.Throttles(client, prefix, metrics)

    async def run(self, job: Job, limit: float | None) -> Settlement:
        """Run one attempt of ``job`` under ``limit`` seconds; the settlement to send."""
        try:
            handler = self.handlers.get(job.handler)
        except UnknownHandlerError as exc:
            return await self._attempt(job, HandlerOptions(), "unknown_handler",
                                       f"UnknownHandlerError: {exc}", retry=False)
        opts = options_of(handler.fn)
        if self._report is None:  # bind once: it looks up the running loop (a getpid() call)
            self.progress.bind(job)
            self._report = job.reporter
        else:
            job.reporter = self._report
        rule, key = throttle.rule_of(handler.fn), ""  # None unless @throttle_exceptions
        try:
            payload = job.payload()
            if rule is not None:
                key = await self.throttles.check(rule, handler.name, job, payload)
            if opts.before is not None:
                await call_hook("before", opts.before, job.id, job)
            value = await self.watchdog.call(handler, job, payload, limit)
            text = encode_result(value, self._limit(opts))
        except Release as r:
            return self._release(job, r)
        except Fail as exc:
            return await self._attempt(job, opts, "failed_by_handler", f"Fail: {exc}",
                                       retry=False)
        except BadPayloadError as exc:
            return await self._attempt(job, opts, "bad_payload", f"BadPayloadError: {exc}",
                                       retry=False)
        except ResultError as exc:
            return await self._attempt(job, opts, "bad_result", f"ResultError: {exc}",
                                       retry=False)
        except JobTimeoutError as exc:
            return await self._attempt(job, opts, "timeout", f"Timeout: {exc}")
        except Exception as exc:
            if rule is not None and key and (
                    r := await self.throttles.hit(rule, key, job, exc)) is not None:
                return self._release(job, r)
            return await self._attempt(job, opts, "exception", f"{type(exc).__name__}: {exc}",
                                       traceback.format_exc(), exception=True)
        if opts.after is not None:
            await call_hook("after", opts.after, job.id, job, value)
        return Settlement("done", job, job.tries, self._seal(job, text, "result"))

    def _limit(self, opts: HandlerOptions) -> int:
        return self.max_result_bytes if opts.max_result_bytes is None else opts.max_result_bytes

    def _seal(self, job: Job, text: str, name: str) -> str:
        return crypto.seal_field(text, job.id, name, self.keyring) if job.sealed else text

    def _release(self, job: Job, r: Release) -> Settlement:
        self.metrics.queue(job.queue).released.inc()
        event("job.released", id=job.id, queue=job.queue, delay_s=r.delay, reason=r.reason)
        return Settlement("release", job, job.tries, repr(r.delay))

    async def _attempt(self, job: Job, opts: HandlerOptions, reason: str, error: str,
                       tb: str = "", *, retry: bool = True,
                       exception: bool = False) -> Settlement:
        """A failed attempt: retry or fail (failed_attempt), hooks, fields sealed."""
        if exception:
            limit, seen = await self._exceptions(job, opts)
            if limit is not None and seen + 1 >= limit:
                retry = False
                reason = "max_exceptions"
                error += f" (max_exceptions {limit} reached)"
        s = failed_attempt(job, reason, error, tb, self.metrics, retry=retry)
        if s.op == "retry":
            await call_hook("on_retry", opts.on_retry, job.id, job, error, float(s.a))
            s = dataclasses.replace(s, b=self._seal(job, s.b, "last_error"))
        else:
            await call_hook("on_failure", opts.on_failure, job.id, job, error)
            s = dataclasses.replace(s, a=self._seal(job, s.a, "error"),
                                    b=self._seal(job, s.b, "traceback"))
        return dataclasses.replace(s, op=s.op + "x") if exception else s

    async def _exceptions(self, job: Job, opts: HandlerOptions) -> tuple[int | None, int]:
        """(max_exceptions of the job, else of its handler; exceptions so far)."""
        try:
            seen, limit = await self.redis.hmget(keys.job(job.id, self.prefix),
                                                 ["exceptions", "max_exceptions"])
        except REDIS_ERRORS as exc:
            # Without the count, max_tries still bounds the job.
            event("job.exceptions_unread", logging.WARNING, id=job.id, error=str(exc))
            return opts.max_exceptions, 0
        try:
            n = int(limit) if limit else opts.max_exceptions
            return n, int(seen or 0)
        except ValueError:
            return opts.max_exceptions, 0
