"""What a handler can tell the worker: fail now, come back later, and its own hooks.

    from queueworker.worker.control import Fail, Release, handler

    @handler(max_exceptions=3, on_failure=alert, on_retry=log_retry)
    def separate(payload, job):
        if payload["duration"] > 3600:
            raise Fail("too long")          # to the failed store now, no retry
        if not gpu_free():
            raise Release(30)               # back to the queue in 30 s; not a failed try
        ...
        return {"stems": urls}              # the job's result (see results.py)

- ``Fail(reason)``: the job goes to the failed store at once (error
  ``Fail: reason``), whatever ``max_tries`` says.
- ``Release(delay)``: the job goes back to its queue after ``delay`` seconds
  (through ``delayed``); ``tries`` is unchanged, ``releases`` counts them.
- ``max_exceptions`` (per handler here, or per job at enqueue): the job fails
  once that many attempts ended in an exception the handler raised, even if
  ``max_tries`` allows more (timeouts count toward ``max_tries`` only). Use it
  with a large ``max_tries`` for jobs that time out or release often.
- hooks, sync or async, each given the ``Job``: ``before(job)`` runs before the
  handler (raising in it is a failed attempt); ``after(job, result)`` after a
  success (raising is logged, the job stays done: its work happened);
  ``on_retry(job, error, delay)`` when a retry is scheduled;
  ``on_failure(job, error)`` when the job fails for good. Hooks get
  ``HOOK_TIMEOUT`` seconds; a hook's own failure is logged and never changes
  the job's outcome.

Idempotency: delivery is at least once. A worker killed mid-job (or a lease
that ran out) runs the job again with ``job.deliveries`` + 1, so a handler with
side effects should check ``job.deliveries > 1`` (or use ``job.id`` as an
idempotency key with the systems it writes to) before doing them twice.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from queueworker.common.errors import QueueworkerError
from queueworker.worker.log import event

HOOK_TIMEOUT = 30.0
OPTIONS_ATTR = "__queueworker_options__"

F = TypeVar("F", bound=Callable[..., Any])


class FailNowError(QueueworkerError):
    """Raise in a handler (as ``Fail``): the job fails for good now (no retry)."""


class ReleaseError(QueueworkerError):
    """Raise in a handler (as ``Release``): put the job back on its queue after ``delay``
    seconds; not a failed try."""

    def __init__(self, delay: float = 0.0, reason: str = "") -> None:
        if delay < 0 or delay != delay:
            raise ValueError(f"Release delay must be a non-negative number, not {delay!r}")
        super().__init__(reason or f"released for {delay:g}s")
        self.delay = float(delay)
        self.reason = reason


# The names a handler raises (the house names exceptions *Error; these read as verbs).
Fail = FailNowError
Release = ReleaseError

Hook = Callable[..., Any]


@dataclass(frozen=True)
class HandlerOptions:
    """Per-handler settings set with ``@handler(...)`` (all optional)."""

    max_exceptions: int | None = None
    max_result_bytes: int | None = None
    before: Hook | None = None
    after: Hook | None = None
    on_failure: Hook | None = None
    on_retry: Hook | None = None


NO_OPTIONS = HandlerOptions()


def handler(*, max_exceptions: int | None = None, max_result_bytes: int | None = None,
            before: Hook | None = None, after: Hook | None = None,
            on_failure: Hook | None = None, on_retry: Hook | None = None) -> Callable[[F], F]:
    """Decorate a handler with its options and hooks (see the module docstring)."""
    if max_exceptions is not None and max_exceptions < 1:
        raise ValueError("max_exceptions must be at least 1")
    if max_result_bytes is not None and max_result_bytes < 0:
        raise ValueError("max_result_bytes must not be negative")
    for name, hook in (("before", before), ("after", after), ("on_failure", on_failure),
                       ("on_retry", on_retry)):
        if hook is not None and not callable(hook):
            raise TypeError(f"hook {name} is not callable: {hook!r}")
    opts = HandlerOptions(max_exceptions, max_result_bytes, before, after, on_failure, on_retry)

    def mark(fn: F) -> F:
        setattr(fn, OPTIONS_ATTR, opts)
        return fn

    return mark


def options_of(fn: Callable[..., Any]) -> HandlerOptions:
    opts = getattr(fn, OPTIONS_ATTR, None)
    return opts if isinstance(opts, HandlerOptions) else NO_OPTIONS


async def call_hook(name: str, hook: Hook | None, job_id: str, *args: Any) -> bool:
    """Run one hook (async on the loop, sync in a thread) under HOOK_TIMEOUT.

    A hook that raised or ran out of time is logged; ``before`` then re-raises (the
    attempt fails), the others return False (the job's outcome stands)."""
    if hook is None:
        return True
    try:
        if inspect.iscoroutinefunction(hook):
            await asyncio.wait_for(hook(*args), HOOK_TIMEOUT)
        else:
            await asyncio.wait_for(asyncio.to_thread(hook, *args), HOOK_TIMEOUT)
    except Exception as exc:
        event("job.hook_failed", logging.WARNING, id=job_id, hook=name,
              error=f"{type(exc).__name__}: {exc}")
        if name == "before":
            raise
        return False
    return True
