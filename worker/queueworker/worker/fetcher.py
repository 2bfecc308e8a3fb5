"""The fetcher: keeps a worker's slots fed, one FETCH script per batch, without hoarding.

Prefetch (jobs taken beyond the free slots) pays off only when jobs are short: a
buffered job waits for a slot of *this* worker while an idle replica (one the
autoscaler just started) could run it now. So unless ``--prefetch N`` fixes it,
the allowance adapts to the jobs:

    allowance = min(concurrency, floor(concurrency * HORIZON / job time))

where the job time is the larger of the measured run time (``Prefetch.observe``:
it jumps up at once and decays slowly) and the age of the oldest running job,
and ``HORIZON`` is 5 ms: a buffered job should wait about a Redis round trip,
not longer. A fresh worker has measured nothing and takes only what its free
slots can start; jobs of seconds are never prefetched; no-op jobs get
prefetch = max(concurrency, SHORT_JOBS_PREFETCH) (the throughput benchmark's case).

The next FETCH is sent while the buffer still holds half a batch (``Worker._slot``
lets the fetcher run then), so Redis runs it while the worker runs the rest: the
two overlap instead of taking turns.

When the estimate was wrong (the running jobs grew long), a job buffered longer
than ``HAND_BACK_AFTER`` goes back to the head of its level in Redis, its
delivery undone, with a wake-up token for idle workers.

The buffer is ordered by the worker's queue order, then priority (10 first),
then arrival, so a high-priority job fetched after a low one starts first; and
since only jobs of a few ms are buffered by default, a buffered low-priority job
can delay a high-priority one still in Redis by about one horizon at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from queueworker.worker.broker import REDIS_ERRORS, Settlement
from queueworker.worker.fetched import Fetched
from queueworker.worker.job import Job
from queueworker.worker.log import event
from queueworker.worker.queues import still_waiting
from queueworker.worker.settle import failed_attempt

if TYPE_CHECKING:
    from queueworker.worker.runtime import Worker

HORIZON = 0.005  # seconds a prefetched job may expect to wait for a slot
# Jobs of microseconds (whose time the worker's own overhead sets, ~20 µs a job): up to
# this many taken ahead, so a FETCH brings ~150 jobs, not 20: a round trip and a script
# call per batch cost both processes CPU (cpu_split.py: 300 against 100 took 26.5 -> 23.0
# µs of worker + Redis CPU per job, benchmarks/throughput/RESULTS.md); 300 of them are run
# in ~5 ms on a loaded machine, about HORIZON. Never less than ``concurrency``.
SHORT_JOBS_PREFETCH = 300
HAND_BACK_AFTER = 0.05  # a job buffered this long goes back to Redis (adaptive mode)
EXIT_STUCK_THREADS = 75


class Prefetch:
    """How many jobs to take beyond the free slots (see the module's docstring)."""

    def __init__(self, concurrency: int, fixed: int | None = None) -> None:
        self.concurrency = concurrency
        self.fixed = fixed
        self.job_time: float | None = None  # seconds; None: nothing measured yet

    @property
    def adaptive(self) -> bool:
        return self.fixed is None

    def observe(self, seconds: float) -> None:
        """One job's run time: a longer one counts at once, shorter ones slowly."""
        t = self.job_time
        self.job_time = seconds if t is None or seconds > t else t + (seconds - t) * 0.1

    def allowance(self, oldest_running: float = 0.0) -> int:
        if self.fixed is not None:
            return self.fixed
        if self.job_time is None:
            return 0
        t = max(self.job_time, oldest_running, 1e-6)
        return min(max(self.concurrency, SHORT_JOBS_PREFETCH),
                   int(self.concurrency * HORIZON / t))


class Buffer:
    """Jobs taken but not started, best first: queue order, priority 10..1, arrival."""

    def __init__(self, queues: Sequence[str]) -> None:
        self._rank = {q: i for i, q in enumerate(queues)}
        self._heap: list[tuple[int, int, int, float, Job]] = []
        self._seq = 0

    def extend(self, jobs: Sequence[Job], now: float | None = None) -> None:
        at = time.monotonic() if now is None else now
        for job in jobs:
            self._seq += 1
            heapq.heappush(self._heap, (self._rank.get(job.queue, len(self._rank)),
                                        -job.priority, self._seq, at, job))

    def popleft(self) -> Job:
        return heapq.heappop(self._heap)[-1]

    def take_older_than(self, at: float) -> list[Job]:
        """Remove and return the jobs buffered before ``at`` (monotonic seconds)."""
        old = [e[-1] for e in self._heap if e[3] < at]
        if old:
            self._heap = [e for e in self._heap if e[3] >= at]
            heapq.heapify(self._heap)
        return old

    def __len__(self) -> int:
        return len(self._heap)

    def __bool__(self) -> bool:
        return bool(self._heap)

    def __iter__(self) -> Iterator[Job]:
        return (e[-1] for e in self._heap)


class Fetcher:
    """The worker's fetch loop (one task): FETCH when there is room, else wait."""

    def __init__(self, worker: Worker) -> None:
        self.w = worker
        self.prefetch = Prefetch(worker.s.concurrency, worker.s.prefetch)
        self.fetches = 0  # FETCH scripts sent (tests: "within one fetch")

    def capacity(self) -> int:
        w, s = self.w, self.w.s
        now = time.time()
        oldest = max((now - t for _, t in w.running.values()), default=0.0)
        allowance = self.prefetch.allowance(oldest)
        w.metrics.prefetch.set(allowance)
        cap = s.concurrency + allowance - len(w.buffer) - len(w.running)
        if s.max_jobs is not None:
            cap = min(cap, s.max_jobs - w.taken)
        return cap

    def _wait_bound(self, seconds: float) -> float:
        """Waits end early while jobs are buffered (adaptive mode: they may be overdue)."""
        if self.w.buffer and self.prefetch.adaptive:
            return min(seconds, HAND_BACK_AFTER)
        return seconds

    def hand_back_overdue(self) -> None:
        w = self.w
        if not (w.buffer and self.prefetch.adaptive) or w.stopping:
            return
        for job in w.buffer.take_older_than(time.monotonic() - HAND_BACK_AFTER):
            w.settler.add(Settlement("back", job, job.tries, "1"))
            w.metrics.queue(job.queue).handed_back.inc()
            event("job.handed_back", id=job.id, queue=job.queue, why="prefetch",
                  note="buffered too long behind running jobs; back at the head of its level")

    async def take(self, batch: Fetched) -> None:
        """File what a FETCH brought: jobs to the buffer, junk logged and counted,
        undecodable jobs failed at once (they are in flight under this worker)."""
        w = self.w
        for junk in batch.junk:
            w.failed += 1
            w.metrics.queue(junk.queue).failed[junk.reason].inc()
            event("job.junk", logging.ERROR, id=junk.id, queue=junk.queue, reason=junk.reason,
                  error=junk.error, note="in the failed store (queueworker failed show ID)")
        for u in batch.undecodable:
            w.failed += 1
            try:  # before the fail is settled: the failed store then shows it readably
                await w.broker.store_escaped(u.job.id, u.escaped)
            except REDIS_ERRORS as exc:
                w._redis_error("store escaped fields", exc)
            w.settler.add(failed_attempt(u.job, "undecodable", u.error, "", w.metrics,
                                         retry=False))
        w.taken += len(batch.jobs) + len(batch.undecodable)
        if batch.jobs:
            w.buffer.extend(batch.jobs)

    async def run(self) -> None:
        w, s = self.w, self.w.s
        backoff = 0.1
        while not w.stopping:
            if w.abandoned >= s.concurrency:
                w.exit_code = EXIT_STUCK_THREADS
                w.stop(f"{w.abandoned} handler threads stuck past their timeout")
                return
            self.hand_back_overdue()
            cap = self.capacity()
            if cap <= 0:
                if s.max_jobs is not None and w.taken >= s.max_jobs:
                    w.stop("max-jobs", hand_back_buffer=False)
                    return
                w._fetch_wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(w._fetch_wake.wait(), self._wait_bound(3600.0))
                continue
            queues = [q for q in s.queues if q not in w.paused]
            try:
                self.fetches += 1
                batch = await w.broker.fetch_batch(queues, cap, s.lease, w.id, s.rate_limits,
                                                   s.park_delay)
                w._ok()
                backoff = 0.1
            except REDIS_ERRORS as exc:
                w._redis_error("fetch", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            await self.take(batch)
            w.low_water = len(w.buffer) // 2
            w.fetch_asked = False
            if batch.jobs or batch.junk or batch.undecodable:
                if w.stopping and w._hand_back_buffer_on_stop:
                    w._hand_back_buffer()  # a signal came while this FETCH was in flight
                w._slot_wake.set()
                continue
            if w.stopping:
                break
            if s.stop_when_empty:
                # Jobs held back by a rate limit still wait: not empty (issue 15).
                limited = [q for q in queues if q in s.rate_limits]
                if not w.running and not w.buffer and not await still_waiting(
                        w.redis, s.prefix, limited):
                    w.stop("empty")
                    return
                w._fetch_wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(w._fetch_wake.wait(), s.poll_interval)
                continue
            w._fetcher_blocked = True
            try:
                await w.broker.wait_for_work(queues or s.queues,
                                             self._wait_bound(s.poll_interval))
            except REDIS_ERRORS as exc:
                w._redis_error("wait", exc)
                await asyncio.sleep(backoff)
            finally:
                w._fetcher_blocked = False
