"""Local mode's control loop: observe, `engine.decide`, act on the process pool.

The same loop as the operator's, with a process pool instead of a Deployment:
every poll interval it reads queue depths and heartbeats (native beats, and
other libraries' workers, observe/busy/: RQ's and Sidekiq's registries,
BullMQ's `pb`, CLIENT LIST, mapped to replicas by pid or connection name in
the depths' round trip; Celery's heartbeat events, and `inspect active` right
before a Celery replica is stopped, as the operator does), asks the engine for
a replica count and starts or drains processes. Between polls it reaps exited
processes; one that exits without being asked is replaced at once, as a
ReplicaSet replaces a crashed pod. `drain()` is what Ctrl-C does: stop
scaling, SIGTERM every worker, wait until they have finished or handed back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import redis

from queueworker.common.log import log_event
from queueworker.engine import decide, quiet
from queueworker.engine.types import Decision, Observation
from queueworker.local.metrics import LocalMetrics
from queueworker.local.pool import ProcessPool
from queueworker.local.view import ScaleRecord, Snapshot, View
from queueworker.observe.busy import PodRef
from queueworker.observe.busy import quiet as busy_quiet
from queueworker.observe.busy.base import assign
from queueworker.observe.busy.celery import (
    CONFIRM_SECONDS,
    CeleryHeartbeats,
    confirm,
    inspect_active_sync,
)
from queueworker.observe.heartbeats import PodBeat, merge
from queueworker.observe.reading_sync import (
    pod_states,
    read_beats,
    read_counters,
    read_queues_and_busy,
)
from queueworker.operator import api

log = logging.getLogger("queueworker.local")

RATE_WINDOW = 10.0  # seconds of completions the shown throughput averages over


class LocalRunner:
    def __init__(self, name: str, spec: api.QueueWorkerSpec, client: redis.Redis,
                 pool: ProcessPool, view: View, metrics: LocalMetrics,
                 redis_display: str) -> None:
        self.name = name
        self.spec = spec
        self.client = client
        self.pool = pool
        self.view = view
        self.metrics = metrics
        self.memory: dict[str, Any] = {}
        self.stop_event = threading.Event()  # first Ctrl-C: stop scaling, drain
        self.force_event = threading.Event()  # second Ctrl-C: kill the workers now
        self.snap = Snapshot(name=name, redis=redis_display, started_at=time.time())
        self.target = 0  # the replica count last decided (what a ReplicaSet keeps)
        self.crashed = 0  # replicas that exited without being asked
        self.max_running = 0  # most replicas active at once (the demo reports it)
        self.scale_ups = 0
        self.scale_downs = 0
        self._baseline: tuple[int, int, int] | None = None
        self._completions: deque[tuple[float, int]] = deque()
        self._last_decision: Decision | None = None
        self._last_busy_errors: tuple[str, ...] = ()
        # Celery workers say whether they are busy in pub/sub events, not keys:
        # session.py listens when a queue has the celery layout.
        self.celery: CeleryHeartbeats | None = None
        self.quieted = quiet.Memory()  # Sidekiq replicas quieted before a scale-down
        self.celery_prefixes: list[str] = [""]  # each app's keyPrefix, asked before a scale-down

    # --------------------------------------------------------------- polling

    def poll(self) -> Decision:
        now = time.time()
        refs = [PodRef(r.name, r.proc.pid) for r in self.pool.running()]
        queues, error, foreign = read_queues_and_busy(self.client, self.spec, now, refs)
        self._busy_errors(foreign.errors)
        if self.celery is not None:
            foreign = foreign.heard(self.celery.reports(), refs)
        foreign_beats = foreign.beats
        try:
            beats = merge(read_beats(self.client, self.spec), foreign_beats)
            counters: tuple[int, int, int] | None = read_counters(self.client, self.spec)
        except (redis.RedisError, OSError) as exc:
            log_event(log, "heartbeats.unreadable", logging.WARNING, error=type(exc).__name__)
            beats, counters = foreign_beats, None
        active = [r.name for r in self.pool.active()]
        stopping = [r.name for r in self.pool.stopping()]
        pods = pod_states(active, stopping, beats, heartbeats_expected=self.pool.native, now=now)
        ready = sum(1 for p in pods if p.ready and not p.terminating)
        # Like a Deployment's replicas: a replica that crashed and waits out its
        # restart backoff still counts. Counting only live processes would let
        # the engine see 0 replicas and, with nothing waiting, never restart
        # one, stranding the jobs a killed worker held in flight (their leases
        # are reaped by workers).
        current = max(self.target, len(active))
        obs = Observation(now=now, queues=queues, current_replicas=current,
                          ready_replicas=ready, pods=pods, error=error)
        decision = decide(self.spec, obs, self.memory)
        if decision.desired < len(active) and self.celery is not None:  # ask before removing
            found = self._confirm_celery(refs, beats)
            if found:
                beats = {**beats, **found}
                pods = pod_states(active, stopping, beats,
                                  heartbeats_expected=self.pool.native, now=now)
                obs = replace(obs, pods=pods)
                decision = decide(self.spec, obs, self.memory)
        self.memory = dict(decision.memory)
        step = None if self.spec.scaling.paused else busy_quiet.step(
            self.spec.queues, foreign, refs, active, decision, current, self.quieted, now)
        if step is not None:  # Sidekiq: victims quieted first, stopped once quiet and idle
            sent = busy_quiet.send_sync(self.client, step)
            self.quieted = busy_quiet.remember(step, sent)
            decision = busy_quiet.outcome(decision, step, sent)
        if decision.desired != len(active):
            self.pool.scale_to(decision.desired, decision.remove_first)
        if decision.desired != self.target:
            # A change of the count is a scale event; restoring a crashed
            # replica to the same count is not.
            direction = "up" if decision.desired > self.target else "down"
            self.snap.decisions.append(ScaleRecord(now, self.target, decision.desired,
                                                   direction, decision.reason))
            self.metrics.scale_event(direction, decision.reason)
            if direction == "up":
                self.scale_ups += 1
            else:
                self.scale_downs += 1
            log_event(log, "scaled", direction=direction, previous=self.target,
                      desired=decision.desired, reason=decision.reason)
            self.target = decision.desired
        self._last_decision = decision
        # Foreign workers nothing reports on: say "unknown" rather than idle.
        self.snap.unknown = 0 if self.pool.native else len(
            [n for n in active if n not in beats and n in {r.name for r in self.pool.active()}])
        self._update(obs, decision, counters)
        return decision

    def _confirm_celery(self, refs: list[PodRef], beats: dict[str, PodBeat]
                        ) -> dict[str, PodBeat]:
        """Right before a scale-down, as the operator does: replicas `inspect active`
        finds running a task taken since the last heartbeat (early ack: in no key),
        or heard beating but silent (a busy solo pool), that were not busy yet."""
        assert self.celery is not None
        answered: dict[str, int] = {}
        try:
            for prefix in self.celery_prefixes:
                got, _ = inspect_active_sync(self.client, CONFIRM_SECONDS, prefix)
                answered.update(got)
        except (redis.RedisError, OSError) as exc:
            log_event(log, "celery.inspect_failed", logging.WARNING, error=type(exc).__name__)
            return {}
        found = assign(confirm(self.celery.reports(), answered), refs)
        fresh = {n: b for n, b in found.items() if n not in beats or not beats[n].busy}
        if fresh:
            log_event(log, "celery.busy_confirmed", replicas=",".join(sorted(fresh)))
        return fresh

    def _busy_errors(self, errors: tuple[str, ...]) -> None:
        """Log a worker registry that cannot be read once, not every poll."""
        if errors and errors != self._last_busy_errors:
            log_event(log, "busy.unreadable", logging.WARNING, error="; ".join(errors))
        self._last_busy_errors = errors

    def _update(self, obs: Observation, decision: Decision,
                counters: tuple[int, int, int] | None) -> None:
        snap = self.snap
        snap.queues, snap.error = obs.queues, obs.error
        snap.desired = decision.desired
        # Counted after this poll's action: a replica just asked to stop is no
        # longer running, ready or busy here, only stopping.
        active = {r.name for r in self.pool.active()}
        snap.running = len(active)
        snap.stopping = len(self.pool.stopping())
        snap.ready = sum(1 for p in obs.pods if p.ready and p.name in active)
        snap.busy = sum(1 for p in obs.pods if p.busy and p.name in active)
        snap.last_reason = decision.reason
        snap.worker_seconds = self.pool.worker_seconds()
        snap.problem = self.pool.last_start_error
        self.max_running = max(self.max_running, snap.running)
        if counters is not None:
            if self._baseline is None:
                self._baseline = counters
            snap.done = max(0, counters[0] - self._baseline[0])
            snap.failed = max(0, counters[1] - self._baseline[1])
            snap.retried = max(0, counters[2] - self._baseline[2])
            t = time.monotonic()
            self._completions.append((t, snap.done))
            while self._completions and t - self._completions[0][0] > RATE_WINDOW:
                self._completions.popleft()
            first_t, first_done = self._completions[0]
            snap.rate = (snap.done - first_done) / (t - first_t) if t > first_t else 0.0
        self.metrics.replicas(decision.desired, snap.running, snap.ready,
                              self.spec.scaling.max_replicas)
        self.metrics.queues(obs.queues)
        self.metrics.polled(obs.now)
        self.view.update(snap)

    def reap(self) -> None:
        """Collect exited replicas and, like a ReplicaSet, replace crashed ones
        (after the pool's crash backoff)."""
        for replica in self.pool.reap():
            if replica.stopping_since is None:
                self.crashed += 1
                self.snap.crashed = self.crashed
                log_event(log, "replica.exited_unasked", logging.WARNING, name=replica.name,
                              code=replica.exit_code)
        if not self.stop_event.is_set() and len(self.pool.active()) < self.target:
            self.pool.scale_to(self.target)

    # ------------------------------------------------------------------ loop

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Poll until `stop_event` is set (Ctrl-C) or `until()` says so."""
        interval = self.spec.scaling.poll_interval_seconds
        next_poll = 0.0
        while not self.stop_event.is_set():
            self.reap()
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + interval
                try:
                    self.poll()
                except (redis.RedisError, OSError) as exc:
                    # Never fall over on a Redis hiccup: the next poll retries.
                    log_event(log, "poll.failed", logging.WARNING,
                              error=f"{type(exc).__name__}: {exc}")
                if until is not None and until():
                    return
            self.stop_event.wait(0.1)

    def drain(self) -> None:
        """Stop scaling, SIGTERM every worker, wait for all (SIGKILL after grace)."""
        self.stop_event.set()
        if self.snap.draining:
            return  # drained already (the demo drains before its summary)
        self.snap.draining = True
        self.snap.stopping = len(self.pool.running())
        self.snap.running = 0
        self.view.update(self.snap)
        log_event(log, "drain.started", replicas=len(self.pool.running()),
                  grace_seconds=self.pool.grace_seconds)
        self.pool.drain_all(force=self.force_event)
        self.snap.stopping = 0
        self.snap.worker_seconds = self.pool.worker_seconds()
        self.view.update(self.snap)
        log_event(log, "drain.finished", exited_ok=self.pool.stats.exited_ok,
                  exited_failed=self.pool.stats.exited_failed,
                  killed=self.pool.stats.killed_after_grace)
