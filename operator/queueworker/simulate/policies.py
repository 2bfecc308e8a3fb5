"""The scaling policies `queueworker simulate` compares, driving a Model.

- ours: `engine.decide` every pollIntervalSeconds, idle pods removed first,
  busy ones (only when capped) drained.
- keda-hpa: KEDA's Redis list scaler plus the HPA with KEDA's defaults
  (KEDA's pkg/scalers/redis_scaler.go, its ScaledObject defaults,
  the HPA's replica calculator and ReplicaSet ranking in Kubernetes'
  pkg/controller): KEDA polls every 30 s and owns
  0 <-> 1 (cooldown 300 s); the HPA syncs every 15 s on the sum of waiting
  jobs (LLEN: in-flight jobs are invisible) as an AverageValue target with 0.1
  tolerance, behavior nil: scale-down takes the highest recommendation of
  300 s, scale-up at most max(2 x current, 4) per sync. The ReplicaSet picks
  victims in its own order (`replicaset_rank`), busy or not; a victim gets
  terminationGracePeriodSeconds (Kubernetes' default 30 s) to finish its job.
- keda-hpa-same-grace: the same with the grace period ours gets (the worker's
  drain deadline, drain.graceSeconds - deadlineMarginSeconds).
- keda-hpa-inflight: keda-hpa with in-flight jobs added to the metric
  (a second trigger on the in-flight ZSET, summed by scalingModifiers).
- horizon: Laravel Horizon's auto balancer (laravel/horizon src/AutoScaler.php and
  SupervisorOptions) on a
  fixed budget of maxProcesses processes, one pool per queue, time strategy,
  balanceMaxShift 1 every balanceCooldown 3 s. It runs on servers sized for
  maxProcesses, so its cost is maxProcesses x the whole run. Surplus
  processes get SIGTERM and finish their job.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import Any

from queueworker.engine import GPUCapacity, Observation, decide, quiet
from queueworker.engine.types import Decision
from queueworker.operator.api import QueueWorkerSpec
from queueworker.simulate import view, visibility
from queueworker.simulate.model import READY, Model, Pod
from queueworker.simulate.visibility import Visibility


class Ours:
    name = "ours"

    def __init__(self, spec: QueueWorkerSpec, model: Model, gpu_per_replica: int,
                 resource: str, told_buffered: bool = True, epoch: float = 0.0,
                 vis: Visibility | None = None, seed: int = 1) -> None:
        self.spec, self.m = spec, model
        # What the operator sees of running jobs and busy pods (the layout's
        # row), and how long a stopped busy pod may finish its jobs.
        self.vis = vis or visibility.TABLE["native"]
        self.grace = visibility.grace(self.vis, spec)
        # Other libraries' pods go by their Deployment names, a random suffix:
        # the engine's order among unknown pods is by name (engine/victims.py).
        self.rng = random.Random(seed)
        self.names: dict[int, str] = {}
        self.memory: dict[str, Any] | None = None
        self.quieted = quiet.Memory()  # pods quieted before a scale-down (Sidekiq)
        self.per, self.resource = gpu_per_replica, resource
        self.last_desired: int | None = None
        # Whether the workers' beats say how many jobs each holds prefetched
        # (PodState.buffered); False models beats that do not.
        self.told_buffered = told_buffered
        # Wall-clock time of the trace's t=0: only minReplicasSchedules read it.
        self.epoch = epoch
        model.every(spec.scaling.poll_interval_seconds, self.tick)

    def _name(self, pod: Pod) -> str:
        if self.vis.native:
            return pod.name
        if pod.id not in self.names:
            self.names[pod.id] = f"worker-{self.rng.getrandbits(40):010x}"
        return self.names[pod.id]

    def tick(self, now: float) -> None:
        m, v = self.m, self.vis
        live = m.live()
        queues = view.queues(m, v, now)
        pods = (view.native_pods(m, now, self.told_buffered) if v.native
                else view.foreign_pods(m, v, now, self._name))
        gpu = None
        if m.slots is not None:
            holding = m.holding()
            pending = len(live) - sum(1 for p in live if p.scheduled_at is not None)
            gpu = GPUCapacity(self.resource, self.per, max_replicas=m.slots,
                              free=max(0, m.slots - holding) * self.per, pending=pending)
        obs = Observation(now + self.epoch, queues, len(live),
                          sum(1 for p in live if p.state == READY), pods, gpu)
        d = decide(self.spec, obs, self.memory)
        if d.desired < len(live) and v.confirmed:  # Celery: asked again before removing
            obs = replace(obs, pods=view.foreign_pods(m, v, now, self._name, exact=True))
            d = decide(self.spec, obs, self.memory)
        self.memory = d.memory
        if v.quiet:
            self._quiet_first(d, live, now)
        elif d.desired > len(live):
            m.add_pods(d.desired - len(live), now)
            m.scaled(now, up=True)
        elif d.desired < len(live):
            by_name = {self._name(p): p for p in live}
            for name in d.remove_first:
                m.remove_pod(by_name[name], now, self.grace)
            m.scaled(now, up=False)

    def _quiet_first(self, d: Decision, live: list[Pod], now: float) -> None:
        """The scale-down as the operator's act.quiet_first makes it: victims quieted,
        each removed once a beat says it is quiet and idle (engine/quiet.py)."""
        m = self.m
        by_name = {self._name(p): p for p in live}
        workers = {self._name(p): quiet.Quietable(m.quiet_seen(p, now), m.seen_busy(p, now) > 0)
                   for p in live if p.ready_at is not None}
        q = quiet.plan(desired=d.desired, current=len(live), victims=d.remove_first,
                       live=list(by_name), workers=workers, memory=self.quieted, now=now)
        self.quieted = q.memory
        for name in q.quiet:
            m.quiet_pod(by_name[name], now)
        if q.replicas > len(live):
            m.add_pods(q.replicas - len(live), now)
            m.scaled(now, up=True)
        elif q.ready:
            for name in q.ready:
                m.remove_pod(by_name[name], now, self.grace)
            m.scaled(now, up=False)


class KedaHpa:
    """KEDA + HPA. `with_in_flight`: the best a KEDA user can do for in-flight
    jobs, a second redis trigger on the in-flight ZSET (the scaler's Lua uses
    ZCARD for a zset) summed with scalingModifiers `(waiting + inflight)`."""

    name = "keda-hpa"
    POLL, SYNC, COOLDOWN, WINDOW, TOLERANCE = 30.0, 15.0, 300.0, 300.0, 0.1
    DEFAULT_GRACE = 30.0  # Kubernetes' terminationGracePeriodSeconds default

    def __init__(self, spec: QueueWorkerSpec, model: Model, seed: int = 1,
                 with_in_flight: bool = False, grace_seconds: float = DEFAULT_GRACE) -> None:
        self.spec, self.m = spec, model
        self.with_in_flight = with_in_flight
        self.grace = grace_seconds
        self.replicas = 0
        self.last_active = -math.inf
        self.recs: list[tuple[float, int]] = []
        self.rng = random.Random(seed)
        s = spec.scaling
        self.target = s.target_backlog_per_replica
        self.lo, self.hi = max(s.min_replicas, 1), s.max_replicas
        if s.min_replicas > 0:
            self._set(self.lo, 0.0)
        model.every(self.POLL, self.poll)
        # The HPA's clock is not KEDA's: offset so they do not tick together.
        model.every(self.SYNC, self.sync, start=7.0)

    def metric(self) -> int:
        waiting = self.m.waiting_count(self.m.queues)
        return waiting + self.m.in_flight() if self.with_in_flight else waiting

    def poll(self, now: float) -> None:
        s = self.spec.scaling
        active = self.metric() > s.activation_backlog
        if active:
            self.last_active = now
            if self.replicas == 0:
                self._set(self.lo, now)
        elif self.replicas > 0 and s.min_replicas == 0 and now - self.last_active >= self.COOLDOWN:
            self._set(0, now)

    def sync(self, now: float) -> None:
        if self.replicas == 0:
            return  # HPA maintenance mode: KEDA owns 0 <-> 1
        cur = self.replicas
        metric = self.metric()
        ratio = metric / (self.target * cur)
        rec = cur if abs(ratio - 1.0) <= self.TOLERANCE else math.ceil(metric / self.target)
        self.recs = [(t, r) for t, r in self.recs if t > now - self.WINDOW]
        self.recs.append((now, rec))
        desired = max(r for _, r in self.recs)
        desired = min(desired, max(2 * cur, 4))
        self._set(min(max(desired, self.lo), self.hi), now)

    def _set(self, desired: int, now: float) -> None:
        m = self.m
        live = m.live()
        if desired == len(live):
            self.replicas = desired
            return
        m.scaled(now, up=desired > len(live))
        self.replicas = desired
        if desired > len(live):
            m.add_pods(desired - len(live), now)
            return
        uid = {p.id: self.rng.random() for p in live}  # a UID orders ties
        ranked = sorted(live, key=lambda p: replicaset_rank(p, now, uid[p.id]))
        for pod in ranked[: len(live) - desired]:
            m.remove_pod(pod, now, self.grace)


def _log2_bucket(seconds: float) -> int:
    # LogarithmicScaleDown compares durations in log2 buckets of nanoseconds.
    return int(math.log2(seconds * 1e9)) if seconds > 0 else -1


def replicaset_rank(pod: Pod, now: float, uid: float) -> tuple[int, int, int, int, float]:
    """The ReplicaSet's victim order, first deleted first (Kubernetes
    pkg/controller/controller_utils.go `ActivePodsWithRanks.Less`): unassigned,
    pending, not-ready, lower deletion cost (KEDA sets none: all 0), ready for
    less time (log2 buckets, ties by UID), then newer (same buckets). Nothing
    here looks at whether the pod runs a job."""
    assigned = int(pod.scheduled_at is not None)
    ready = int(pod.state == READY)
    if ready and pod.ready_at is not None:
        # Shorter-ready first; an equal bucket is settled by UID before age.
        return (assigned, assigned, ready, _log2_bucket(now - pod.ready_at), uid)
    return (assigned, assigned, ready, _log2_bucket(now - pod.created_at), uid)


class Horizon:
    name = "horizon"
    COOLDOWN, MAX_SHIFT, START_SECONDS = 3.0, 1, 1.0

    def __init__(self, spec: QueueWorkerSpec, model: Model, max_processes: int) -> None:
        self.m = model
        self.max_p = max_processes
        self.min_p = 1
        model.pod_start = self.START_SECONDS
        model.concurrency = 1  # a Horizon worker process runs one job at a time
        model.prefetch = 0  # and takes the next only when it is free
        pools = len(model.queues)
        # Startup goes straight to maxProcesses (Horizon #1536), split over the pools.
        share = max(self.min_p, self.max_p // pools)
        for q in model.queues:
            model.add_pods(share, 0.0, queues=(q,))
        model.every(self.COOLDOWN, self.tick, start=self.COOLDOWN)

    def pool(self, q: str) -> list[Any]:
        return [p for p in self.m.live() if p.queues == (q,)]

    def tick(self, now: float) -> None:
        m = self.m
        sizes = {q: len(m.waiting.get(q, ())) for q in m.queues}
        # Mean runtime per queue of the jobs finished so far (Horizon's `runtime`
        # metric, kept per snapshot there).
        times = {q: sizes[q] * self._mean_runtime(q) for q in m.queues}
        total_time, pools = sum(times.values()), len(m.queues)
        for q in sorted(m.queues, key=lambda q: times[q]):
            if total_time > 0:
                target = self.max_p * times[q] / total_time
            else:
                target = self.max_p if sizes[q] > 0 else self.min_p
            desired = math.ceil(target)
            pool = self.pool(q)
            cur = len(pool)
            total = len(m.live())
            if desired > cur:
                new = min(cur + min(max(0, self.max_p - total), self.MAX_SHIFT),
                          max(self.min_p, self.max_p - (pools - 1) * self.min_p), desired)
            elif desired < cur:
                new = max(cur - min(total - self.min_p, self.MAX_SHIFT), self.min_p, desired)
            else:
                continue
            if new > cur:
                m.add_pods(new - cur, now, queues=(q,))
                m.scaled(now, up=True)
            elif new < cur:
                # ProcessPool marks the oldest processes for termination; they
                # finish the job in hand.
                for pod in pool[: cur - new]:
                    m.remove_pod(pod, now, math.inf)
                m.scaled(now, up=False)

    def _mean_runtime(self, q: str) -> float:
        count, total = self.m.stats.runtime_by_queue.get(q, [0.0, 0.0])
        return total / count if count else 0.0
