"""The consumer: one asyncio event loop per worker process.

Tasks (all on one loop, one redis.asyncio client):

- fetcher (fetcher.py): keeps ``concurrency + prefetch`` jobs taken (running
  or buffered; prefetch adapts to the job time unless fixed, so a busy worker
  does not hoard what a fresh replica could run); takes them in batches with
  one FETCH script over all queues in order, each by priority 10..1. When
  nothing is ready it blocks on the queues' notify lists (BLPOP, at most
  ``poll_interval``).
- slots (``concurrency`` of them): each runs one job at a time from the buffer
  and hands the outcome (done / retry / fail / back) to the settler.
- settler (settle.py): sends everything pending in one SETTLE script, while
  the slots go on (group commit: the busier the worker, the bigger the batch);
  slots that never wait yield to it while ``SETTLE_EVERY`` outcomes are pending.
- housekeeper (housekeeping.py): every tick one BEAT script (heartbeat + lease
  renewal of every taken job); every ``reap_interval`` one REAP script (expired
  leases and due delayed jobs back to waiting; guarded by a lock so one worker
  reaps).
- watchdog (timeouts.py): cancels jobs past their timeout. Sync handlers run
  in its thread pool; a thread past its timeout is abandoned, and when
  ``concurrency`` of them are stuck the worker drains and exits with code 75.

So a job costs 2/K round trips (K = batch size) plus a share of the beats.

Drain: the first SIGTERM/SIGINT stops fetching at once, hands back buffered
jobs that have not started (their delivery count is undone), lets running
jobs finish and acks them, then exits 0. At the drain deadline, or on a
second signal, running jobs are cancelled and handed back to the head of
their queue (not a failure; ``tries`` unchanged) and the worker exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import time
from typing import Any

import redis.asyncio as aioredis

from queueworker.common.redact import redact_url
from queueworker.worker import fetcher as fetcher_mod
from queueworker.worker import metrics as metrics_mod
from queueworker.worker.broker import REDIS_ERRORS, Broker, Settlement
from queueworker.worker.config import Settings
from queueworker.worker.connection import async_client
from queueworker.worker.execute import Execution
from queueworker.worker.gpu import GpuCollector
from queueworker.worker.handlers import HandlerTable
from queueworker.worker.housekeeping import Housekeeper
from queueworker.worker.job import Job
from queueworker.worker.log import event
from queueworker.worker.settle import Settler
from queueworker.worker.timeouts import Watchdog

EXIT_OK = 0
EXIT_STUCK_THREADS = fetcher_mod.EXIT_STUCK_THREADS
SETTLE_EVERY = 50  # outcomes after which a slot lets the settler send (_slot)


def make_worker_id(pod: str) -> str:
    return f"{pod or socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Worker:
    def __init__(self, settings: Settings, handlers: HandlerTable, *,
                 client: aioredis.Redis | None = None,
                 metrics: metrics_mod.WorkerMetrics | None = None,
                 nvml: Any = None) -> None:
        settings.validate()
        self.s = settings
        self.handlers = handlers
        self.redis = client or async_client(settings.redis_url, decode_responses=True)
        self.broker = Broker(self.redis, settings.prefix)
        self.metrics = metrics or metrics_mod.WorkerMetrics()
        self.gpu = GpuCollector.create(self.metrics.registry, nvml)
        self.id = make_worker_id(settings.pod)
        self.started_at = time.time()
        self.buffer = fetcher_mod.Buffer(settings.queues)  # taken, not started
        self.running: dict[str, tuple[Job, float]] = {}
        self.settler = Settler(self.broker, settings.result_ttl, on_ok=self._ok,
                               on_error=self._redis_error)
        self.keeper = Housekeeper(self.broker, settings, self.id, self.metrics)
        self.watchdog = Watchdog(settings.concurrency)
        self.fetcher = fetcher_mod.Fetcher(self)
        self.execution = Execution(handlers, self.watchdog, self.metrics, self.redis,
                                   settings.prefix)
        self.processed = 0
        self.failed = 0
        self.taken = 0
        self.paused: frozenset[str] = frozenset()  # queues not taken from (admin.py)
        self.stopping = False
        self.stop_reason = ""
        self.exit_code = EXIT_OK
        self._last_ok = 0.0
        self._fetcher_blocked = False
        self.low_water = 0  # buffer size at which the slots let the fetcher run (fetcher.py)
        self.fetch_asked = False
        self._hand_back_buffer_on_stop = True
        self._slot_wake = asyncio.Event()
        self._fetch_wake = asyncio.Event()
        self._slots: list[asyncio.Task[None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._handback_handle: asyncio.TimerHandle | None = None
        self._http: Any = None
        self.metrics.concurrency.set(settings.concurrency)
        self.metrics.in_flight.set_function(lambda: len(self.running))
        self.metrics.busy_ratio.set_function(
            lambda: min(1.0, len(self.running) / max(1, settings.concurrency)))

    # ------------------------------------------------------------------ state

    @property
    def abandoned(self) -> int:
        """Handler threads past their timeout and still running (see timeouts.py)."""
        return self.watchdog.abandoned

    @property
    def state(self) -> str:
        if self.stopping:
            return "draining"
        return "busy" if self.running else "idle"

    def healthy(self) -> tuple[bool, str]:
        if self.stopping:
            return False, f"draining ({self.stop_reason})"
        if not self._last_ok:
            return False, "not connected to Redis yet"
        age = time.monotonic() - self._last_ok
        limit = max(3 * self.s.tick, 5.0)
        if age > limit:
            return False, f"no successful Redis round trip for {age:.1f}s"
        return True, f"ok ({self.state})"

    def heartbeat(self) -> dict[str, Any]:
        return {
            "id": self.id, "pod": self.s.pod, "host": socket.gethostname(),
            "pid": os.getpid(), "queues": self.s.queues, "state": self.state,
            "in_flight": [{"id": j.id, "queue": j.queue, "started_at": t}
                          for j, t in self.running.values()],
            "processed": self.processed, "failed": self.failed,
            # Prefetched jobs this worker holds beyond its slots: the operator counts
            # them as demand on this pod, not as work an idle replica could take.
            "concurrency": self.s.concurrency, "buffered": len(self.buffer),
            "started_at": self.started_at, "beat_at": time.time(),
        }

    def _ok(self) -> None:
        self._last_ok = time.monotonic()

    def _redis_error(self, where: str, exc: BaseException) -> None:
        self.metrics.redis_errors.inc()
        event("redis.error", logging.WARNING, where=where, error=f"{type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ run

    async def run(self) -> int:
        """Run until stopped (signal, --max-jobs, --max-time, --stop-when-empty).

        Raises RedisError/OSError when Redis cannot be reached at the start."""
        try:
            await self.redis.ping()
        except BaseException:
            await self._close()
            raise
        self._ok()
        loop = asyncio.get_running_loop()
        if self.s.metrics_port:
            self._http = metrics_mod.serve(self.metrics, self.s.metrics_port, self.healthy)
        self._install_signals(loop)
        if self.s.max_time:
            loop.call_later(self.s.max_time, self.stop, "max-time")
        event("worker.start", id=self.id, queues=",".join(self.s.queues),
              concurrency=self.s.concurrency, redis=redact_url(self.s.redis_url),
              handlers=",".join(sorted(self.handlers.handlers)), gpu=bool(self.gpu))
        self.metrics.set_state("idle")
        fetcher = asyncio.create_task(self.fetcher.run(), name="fetcher")
        settler = self.settler.start()
        keeper = asyncio.create_task(self._housekeeper(), name="housekeeper")
        watchdog = self.watchdog.start()
        self._tasks = [fetcher, settler, keeper, watchdog]
        self._slots = [asyncio.create_task(self._slot(), name=f"slot-{i}")
                       for i in range(self.s.concurrency)]
        try:
            await asyncio.gather(*self._slots, return_exceptions=True)
            if not self.stopping:
                self.stop("done")
            try:  # it ends at its next check of `stopping`; never cut a FETCH in half
                await asyncio.wait_for(fetcher, timeout=10)
            except (TimeoutError, asyncio.CancelledError, *REDIS_ERRORS):
                pass
            self._hand_back_buffer()
            await self.settler.finish()
        finally:
            if self._handback_handle:
                self._handback_handle.cancel()
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, *REDIS_ERRORS):
                await keeper
            await self.watchdog.stop()
            with contextlib.suppress(*REDIS_ERRORS):
                await self.broker.remove_worker(self.id)
            self._remove_signals(loop)
            await self._close()
        self.metrics.set_state("stopped")
        event("worker.stop", id=self.id, reason=self.stop_reason, processed=self.processed,
              failed=self.failed, exit_code=self.exit_code)
        return self.exit_code

    async def _close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self.gpu is not None:
            self.gpu.close()
        self.watchdog.close()
        with contextlib.suppress(*REDIS_ERRORS):
            await self.redis.aclose()

    # ------------------------------------------------------------------ stopping

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal, sig)

    def _remove_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stopping and self.stop_reason.startswith("signal"):
            event("worker.signal", sig=sig.name, action="hand back now")
            self._hand_back_running()
        else:
            self.stop(f"signal {sig.name}")

    def stop(self, reason: str, hand_back_buffer: bool = True) -> None:
        """Stop taking jobs; finish running ones until the drain deadline, then hand back.

        Jobs fetched but not started are handed back at once, unless
        ``hand_back_buffer`` is False (--max-jobs: they count, so they run)."""
        if self.stopping:
            if reason.startswith("signal"):
                self.stop_reason = reason
            return
        self.stopping = True
        self.stop_reason = reason
        self.metrics.set_state("draining")
        event("worker.drain", reason=reason, running=len(self.running),
              buffered=len(self.buffer), deadline_s=self.s.drain_deadline)
        self._hand_back_buffer_on_stop = hand_back_buffer
        if hand_back_buffer:
            self._hand_back_buffer()
        self._slot_wake.set()
        self._fetch_wake.set()
        if self._fetcher_blocked and self._tasks:
            self._tasks[0].cancel()  # the fetcher, blocked in BLPOP (not mid-fetch)
        loop = asyncio.get_running_loop()
        self._handback_handle = loop.call_later(self.s.drain_deadline, self._hand_back_running)

    def _hand_back_buffer(self) -> None:
        while self.buffer:
            job = self.buffer.popleft()
            self.settler.add(Settlement("back", job, job.tries, "1"))

    def _hand_back_running(self) -> None:
        if self.running:
            event("worker.hand_back", logging.WARNING, jobs=len(self.running))
        for t in self._slots:
            t.cancel()

    # ------------------------------------------------------------------ run jobs

    async def _slot(self) -> None:
        buffer, prefetch, monotonic = self.buffer, self.fetcher.prefetch, time.monotonic
        while True:
            if not buffer:
                if self.stopping:
                    return
                self._slot_wake.clear()
                await self._slot_wake.wait()
                continue
            job = buffer.popleft()
            t0 = monotonic()
            await self._run(job)
            prefetch.observe(monotonic() - t0)
            self._fetch_wake.set()
            if not self.fetch_asked and len(buffer) <= self.low_water:
                # Jobs that never wait (no-op, CPU) would run the buffer dry before the
                # fetcher and the settler get the loop: let them send now, and go on
                # with the other half while Redis works (fetcher.py).
                self.fetch_asked = True
                await asyncio.sleep(0)
            elif len(self.settler.pending) >= SETTLE_EVERY:
                # ...and while SETTLE_EVERY outcomes wait, after each job: the settler
                # sends them (or reads the reply on the wire and sends the next), so Redis
                # settles while the slots run instead of all at the buffer's end
                # (benchmarks/throughput/RESULTS.md: 0.34 -> 0.48 of the stream loop).
                await asyncio.sleep(0)

    async def _run(self, job: Job) -> None:
        start = time.time()
        self.running[job.id] = (job, start)
        m = self.metrics.queue(job.queue)
        m.job_started(max(0.0, start - job.enqueued_at) if job.enqueued_at else None)
        try:
            outcome = await self.execution.run(job, job.timeout or self.s.timeout or None)
        except asyncio.CancelledError:
            self.settler.add(Settlement("back", job, job.tries))
            m.handed_back.inc()
            event("job.handed_back", id=job.id, queue=job.queue)
            raise
        finally:
            del self.running[job.id]
            ended = time.time()
            m.job_ended(ended - start, ended)
        if outcome.op == "done":
            self.processed += 1
            m.completed.inc()
        elif outcome.op.startswith("fail"):
            self.failed += 1
        self.settler.add(outcome)

    # ------------------------------------------------------------------ housekeeping

    async def _housekeeper(self) -> None:
        while True:
            try:
                taken = [j for j, _ in self.running.values()] + list(self.buffer)
                await self.keeper.beat(self.heartbeat(), taken)
                self._ok()
                await self.keeper.reap_if_due()
            except REDIS_ERRORS as exc:
                self._redis_error("beat", exc)
            if not self.stopping:
                self.metrics.set_state(self.state)
            await asyncio.sleep(self.s.tick)
