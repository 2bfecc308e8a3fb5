"""The per-QueueWorker loop. One tick: spec -> connect -> reconcile -> observe -> decide
-> act -> report, each step in its own module:

1. spec (spec.py): the validated spec, parsed again only when it changed;
   unusable -> SpecValid/Ready False, retry later.
2. connect (observe.connect): the Redis client of spec.redis, Secrets read
   through the API; a missing Secret or bad Redis settings -> as 1.
3. reconcile (reconcile.py, act.py): a pure plan from the spec and the live
   Deployment (Create / Patch / Conflict / InSync), applied through act.py;
   a Deployment that is not ours -> DeploymentConflict, no scaling.
4. observe (observe.observe): queue depths, pods, heartbeats, replicas, GPUs.
5. decide (queueworker.engine.decide): pure; returns the replica count, the
   victims to remove first and the engine memory to keep.
6. act (act.scale): the Deployment's replicas, victims marked first.
7. report (report.py): conditions, Events, metrics, the throttled status write.

Each step returns its result to the tick, which passes it down; nothing calls
back into the loop, and the loop is known to no one but its kopf daemon
(handlers.py). What is shared among loops (API and Redis clients, caches, the
GPU registry) is context.Shared, which knows nothing of loops.

Why one asyncio task per QueueWorker (a kopf daemon) and not one shared poller
per Redis: every QueueWorker has its own poll interval, its own engine memory
and its own failure state, and a daemon gives each of them a lifetime that
kopf ties to the object (started on create/resume, stopped on delete, paused
with peering). What a shared poller would save is connections and round
trips, and both are shared without one: one client per distinct Redis target
(``Shared.redis_client``), and the loops of one Redis poll at the same moments
(``observe.next_poll``) so their reads leave as one pipeline per Redis per tick
(observe/batch.py), each loop keeping its own replies and errors
(benchmarks/operator_scale/: 5,000 QueueWorkers on 20 Redis servers).

A poll never LISTs anything: the Deployment, the pods and the nodes come from
kopf indexes (cluster/index.py). Writes are few: the Deployment's replicas
only when they change, pod-deletion-cost once before a scale-down, and the
status as report.py throttles it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from typing import Any

from queueworker import engine
from queueworker.common.log import log_event
from queueworker.common.redact import redact
from queueworker.observe import connections as redis_conn
from queueworker.operator import api
from queueworker.operator.cluster import client as kube
from queueworker.operator.controller import act, observe, reconcile, report
from queueworker.operator.controller.context import Indexes, SecretMissingError, Shared
from queueworker.operator.controller.spec import SpecReader
from queueworker.operator.validation import SpecError

logger = logging.getLogger(__name__)


def _set(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class QueueWorkerLoop:
    def __init__(self, shared: Shared, body: Any, indexes: Indexes) -> None:
        self.shared = shared
        self.body = body  # kopf's live view: always the latest object
        meta = body["metadata"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.uid: str = meta.get("uid") or ""
        self.indexes = indexes
        self._wake: asyncio.Future[None] | None = None  # the sleep a kick ends early
        memory = (body.get("status") or {}).get("engineMemory")
        self.memory: dict[str, Any] = dict(memory) if isinstance(memory, dict) else {}
        self.spec = SpecReader(shared.config.refuse_privileged)
        self.deployment = reconcile.Memory()
        self.report = report.Reporter(shared, body)
        self.pending_replicas: observe.Pending = None
        self._connection: tuple[api.QueueWorkerSpec, observe.Connection] | None = None
        self.quieted = act.QuietMemory()  # Sidekiq pods quieted before a scale-down

    # ----------------------------------------------------------------------- running

    async def run(self, stopped: Any) -> None:
        try:
            while not stopped:
                started = time.monotonic()
                interval = await self.tick_safely()
                delay = max(0.0, interval - (time.monotonic() - started))
                await self.sleep(delay)
        finally:
            self.shared.gpu.withdraw(f"{self.namespace}/{self.name}")
            self.shared.celery_release(f"{self.namespace}/{self.name}")

    async def sleep(self, delay: float) -> None:
        """Until the next poll or an early kick (spec changed).

        A future and one timer, not ``asyncio.wait_for`` on an Event: that costs a
        task, a second future and the task's cancellation at every poll of every
        QueueWorker (benchmarks/operator_scale/RESULTS.md). A stop does not wake
        this sleep: kopf cancels the daemon after its cancellation backoff, which
        is all a sleeping loop needs (no helper tasks here, so nothing is left
        behind for kopf to find at exit).
        """
        loop = asyncio.get_running_loop()
        self._wake = wake = loop.create_future()
        timer = loop.call_later(delay, _set, wake)
        try:
            await wake
        finally:
            timer.cancel()
            self._wake = None

    def kick(self) -> None:
        """End the current sleep now (handlers.wake: the spec changed)."""
        if self._wake is not None:
            _set(self._wake)

    def spec_changed(self, meta: Mapping[str, Any]) -> bool:
        return self.spec.changed(meta)

    async def tick_safely(self) -> float:
        retry = self.shared.config.retry_seconds * random.uniform(0.8, 1.2)
        try:
            return await self.tick()
        except kube.ApiError as exc:
            log_event(logger, "poll.api_error", logging.WARNING, qw=self.name, error=str(exc))
            return retry
        except Exception:
            # One QueueWorker's bug must not end its loop for good (kopf would not
            # restart the daemon) nor touch the others.
            log_event(logger, "poll.failed", logging.ERROR, exc_info=True, qw=self.name)
            return retry

    # -------------------------------------------------------------------------- tick

    async def tick(self) -> float:
        """One poll; returns the seconds until the next one."""
        retry = self.shared.config.retry_seconds
        meta = self.body["metadata"]
        if meta.get("deletionTimestamp"):
            return retry
        generation = meta.get("generation")
        now = time.time()
        self.report.series.last_poll.set(now)
        spec = await self.read_spec(generation)
        if spec is None:
            return retry
        conn = await self.connect(spec, generation)
        if conn is None:
            return retry
        live = await self.reconcile_deployment(spec, generation)
        if live is None:
            return retry
        self.report.valid(spec)

        started = time.perf_counter()
        seen = await observe.observe(self.shared, self.indexes, conn, namespace=self.namespace,
                                     name=self.name, spec=spec, live=live, now=now,
                                     pending=self.pending_replicas)
        self.pending_replicas = seen.pending
        self.report.series.queue_read(seen.reading.queues is not None, seen.reading.reachable)
        decision = engine.decide(spec, seen.obs, self.memory)
        if decision.desired < seen.obs.current_replicas:  # Celery: ask before removing
            confirmed = await observe.confirm_busy(self.shared, conn, spec, seen,
                                                   namespace=self.namespace, name=self.name)
            if confirmed is not None:
                seen = confirmed
                decision = engine.decide(spec, seen.obs, self.memory)
        self.report.series.decision.observe(time.perf_counter() - started)
        self.memory = dict(decision.memory)

        decision = await act.quiet_first(self.quieted, conn.client, spec, seen, decision)
        paused = spec.scaling.paused
        current = seen.obs.current_replicas
        if decision.desired != current:
            config = self.shared.config
            await act.scale(self.shared.kube, self.namespace, self.name, decision, current,
                            seen.obs.pods, seen.pods,
                            seen=lambda: self.indexes.values(self.indexes.pods,
                                                             (self.namespace, self.name)),
                            margin=config.deletion_cost_margin_seconds,
                            wait_limit=config.deletion_cost_wait_seconds)
            self.pending_replicas = (decision.desired, time.monotonic())
            self.report.scaled(decision, seen.obs, paused)
            current = decision.desired
        await self.report.report(report.Seen.of(seen.obs, decision, live, current, seen.gpu,
                                                paused, generation, seen.busy_pods),
                                 self.memory)
        return observe.next_poll(self.shared, conn, spec.scaling.poll_interval_seconds, now)

    # ------------------------------------------------------------------------ steps

    async def read_spec(self, generation: int | None) -> api.QueueWorkerSpec | None:
        """Step 1: the spec, or None once an unusable spec is reported."""
        try:
            spec = self.spec.read(self.body)
        except SpecError as exc:
            await self.report.invalid("InvalidSpec", str(exc), generation)
            return None
        self.report.series.max_replicas.set(spec.scaling.max_replicas)
        return spec

    async def connect(self, spec: api.QueueWorkerSpec, generation: int | None
                      ) -> observe.Connection | None:
        """Step 2: the Redis client, or None once a missing Secret or bad settings are
        reported. Kept while the spec is the same object and names no Secret (a
        Secret's value is read again through its cache every poll: it may rotate)."""
        if self._connection is not None and self._connection[0] is spec:
            return self._connection[1]
        try:
            conn = await observe.connect(self.shared, self.namespace, spec)
            if not redis_conn.secret_refs(spec.redis):
                self._connection = (spec, conn)
            return conn
        except SecretMissingError as exc:  # SecretNotFound or SecretNotOptedIn
            await self.report.invalid(exc.reason, str(exc), generation)
        except redis_conn.RedisConfigError as exc:
            await self.report.invalid("InvalidRedis", redact(str(exc)), generation)
        return None

    async def reconcile_deployment(self, spec: api.QueueWorkerSpec, generation: int | None
                        ) -> dict[str, Any] | None:
        """Step 3: make the Deployment match the spec; the live Deployment, or None when
        it is not ours (reported; no scaling then)."""
        started = time.perf_counter()
        try:
            return await self._reconcile(spec, generation)
        finally:
            self.report.series.reconcile.observe(time.perf_counter() - started)

    async def _reconcile(self, spec: api.QueueWorkerSpec, generation: int | None
                         ) -> dict[str, Any] | None:
        kc, memory = self.shared.kube, self.deployment
        desired = memory.desired(self.name, self.namespace, self.uid, spec,
                                 self.shared.config.shard)
        live = memory.live(self.indexes.values(self.indexes.deployments,
                                               (self.namespace, self.name)))
        plan = self.plan(desired, live)
        if isinstance(plan, reconcile.Create):
            live = await act.create_deployment(kc, self.namespace, self.name, plan)
            memory.was_created(live)
            self.pending_replicas = (plan.replicas, time.monotonic())
            plan = self.plan(desired, live)
        if isinstance(plan, reconcile.Conflict):
            await self.report.invalid("DeploymentConflict", plan.message, generation)
            return None
        assert live is not None
        assert isinstance(plan, reconcile.Patch | reconcile.InSync)
        if isinstance(plan, reconcile.Patch):
            memory.patched(await act.patch_deployment(kc, self.namespace, self.name, plan))
            if plan.hand_edit:
                self.report.drift_corrected(plan.parts)
            if plan.no_surge is not None:
                self.report.rollout_without_surge(plan.no_surge)
        memory.settle(live, plan)
        return live

    def plan(self, desired: reconcile.Desired, live: dict[str, Any] | None
             ) -> reconcile.Plan:
        """The plan; where it must choose a GPU worker's rollout strategy, the free GPUs
        of this moment are observed first and the plan made again with them."""
        status = self.body.get("status") or {}
        pods = self.indexes.values(self.indexes.pods, (self.namespace, self.name))
        plan = reconcile.plan(desired, live, self.deployment, status=status, pods=pods)
        if isinstance(plan, reconcile.NeedFreeGPUs):
            surge = observe.surge_ok(self.shared.gpu, self.indexes, self.namespace, self.name,
                                     desired.spec)
            plan = reconcile.plan(desired, live, self.deployment, status=status,
                                  surge_ok=surge, pods=pods)
        return plan
