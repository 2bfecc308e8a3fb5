"""Progress of a running job: ``job.progress(fraction, detail=...)`` in a handler.

The report is stored in the job hash (``progress`` 0..1, ``progress_detail``
JSON, ``progress_at``) and published on ``keys.progress_channel(id)`` as
``{"state": "running", "progress": F, "detail": D}``; when a waited job
finishes, SETTLE publishes ``{"state": "done"|"failed"}`` on the same channel.
``Producer.outcome`` and ``queueworker job ID`` show the last report.

``job.progress`` returns at once, from a sync handler's thread or an async
handler alike: the worker's loop writes the latest report of each job in the
background (a burst of reports costs one write), only while the job is still
running (a late report never touches a finished job). Progress is advisory:
a report lost to a Redis error is logged, never retried, and never fails the job.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from typing import Any

import redis.asyncio as aioredis

from queueworker.worker import crypto, keys
from queueworker.worker.broker import REDIS_ERRORS
from queueworker.worker.connection import is_cluster
from queueworker.worker.job import Job
from queueworker.worker.log import event
from queueworker.worker.scripts import PRELUDE

MAX_DETAIL_BYTES = 64 * 1024

# ARGV: prefix, then per report: id, progress, detail (JSON or sealed), message
# -> number of reports written (a job no longer running is skipped)
PROGRESS = PRELUDE + """
local now, n = tostring(now_s()), 0
for i = 2, #ARGV, 4 do
  local id = ARGV[i]
  local jk = jkey(id)
  if redis.call('HGET', jk, 'state') == 'running' then
    redis.call('HSET', jk, 'progress', ARGV[i + 1], 'progress_detail', ARGV[i + 2],
               'progress_at', now)
    redis.call('PUBLISH', jk .. ':progress', ARGV[i + 3])
    n = n + 1
  end
end
return n
"""


def check(fraction: float, detail: Any) -> tuple[float, str]:
    """(fraction, detail JSON text); ValueError naming what is wrong."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or math.isnan(
            fraction) or not 0.0 <= fraction <= 1.0:
        raise ValueError(f"progress must be a number from 0 to 1, not {fraction!r}")
    if detail is None:
        return float(fraction), ""
    try:
        text = json.dumps(detail, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"progress detail is not JSON-serialisable ({exc})") from None
    if len(text.encode()) > MAX_DETAIL_BYTES:
        raise ValueError(f"progress detail is over {MAX_DETAIL_BYTES} bytes")
    return float(fraction), text


def message(fraction: float, detail_text: str) -> str:
    """The message published for a report (``detail`` as stored: JSON or sealed text)."""
    detail: Any = None
    if detail_text:
        detail = detail_text if crypto.is_sealed(detail_text) else json.loads(detail_text)
    return json.dumps({"state": "running", "progress": fraction, "detail": detail},
                      separators=(",", ":"))


class ProgressReporter:
    """The worker's side: takes reports from any thread, writes them from its loop."""

    def __init__(self, client: aioredis.Redis, prefix: str,
                 keyring: crypto.Keyring | None = None) -> None:
        self.redis = client
        self.prefix = prefix
        self.keyring = keyring
        self._script = client.register_script(PROGRESS)
        self.cluster = is_cluster(client)
        self._pending: dict[str, tuple[float, str]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def bind(self, job: Job) -> None:
        """Let ``job.progress`` reach this reporter (call on the worker's loop)."""
        self._loop = asyncio.get_running_loop()
        job.reporter = self.report

    def report(self, job: Job, fraction: float, detail: Any = None) -> None:
        fraction, text = check(fraction, detail)
        if text and job.sealed:
            text = crypto.seal_field(text, job.id, "progress_detail", self.keyring)
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(self._put, job.id, fraction, text)

    def _put(self, job_id: str, fraction: float, text: str) -> None:
        self._pending[job_id] = (fraction, text)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush(),
                                                                name="progress")

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            # one call per queue on a cluster (its jobs' hashes are in its slot)
            calls: dict[str, list[Any]] = {}
            for job_id, (fraction, text) in batch.items():
                q = (keys.queue_of_id(job_id) or "") if self.cluster else ""
                calls.setdefault(q, [self.prefix]).extend(
                    [job_id, repr(fraction), text, message(fraction, text)])
            try:
                for q, args in calls.items():
                    await self._script(keys=keys.script_keys(q, self.cluster, self.prefix),
                                       args=args)
            except REDIS_ERRORS as exc:
                event("job.progress_lost", logging.WARNING, jobs=len(batch),
                      error=f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        """Write what is pending (the worker is stopping)."""
        if self._task is not None and not self._task.done():
            await asyncio.wait([self._task], timeout=2.0)
