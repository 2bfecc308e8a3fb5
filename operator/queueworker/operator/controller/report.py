"""Step 6 of a tick: conditions, Events, metrics, and the status write (throttled).

Writes are few (writes.py): the status only when something a person acts on
changes (conditions, replicas, scale reason); the numbers a person reads and
the engine's memory at most every refresh, and only when they changed. An idle
QueueWorker sees the same thing poll after poll, so a fingerprint of what the
report is made of skips the whole step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import kopf

from queueworker.common.log import log_event
from queueworker.engine.types import Decision, GPUCapacity, Observation, QueueDepth
from queueworker.operator import api, metrics, validation_warnings
from queueworker.operator.cluster import deployment as dep
from queueworker.operator.cluster import status as st
from queueworker.operator.controller.context import Shared
from queueworker.operator.controller.writes import StatusWriter, memory_key

logger = logging.getLogger(__name__)

Conditions = list[dict[str, Any]]


def scale_reason(decision: Decision, obs: Observation, paused: bool) -> str:
    """Short CamelCase reason for metrics and Events."""
    if paused:
        return "Manual"
    if obs.queues is None:
        return "Fallback"
    if decision.gpu_limited and decision.direction == "down":
        return "GPULimited"
    if decision.direction == "up":
        # queue_admin.wake: the one replica is for a schedule's tick, not a backlog.
        return "Schedule" if "; schedule of " in decision.reason else "Backlog"
    return "Idle"


@dataclass(frozen=True)
class Seen:
    """What one report is made of (the tick's results, passed down)."""

    obs: Observation
    decision: Decision
    current: int  # replicas after this tick's scale
    ready: int
    pods_now: int  # the Deployment's status.replicas
    gpu: GPUCapacity | None
    paused: bool
    generation: int | None
    pods_refused: str | None = None  # why the Deployment's pods cannot be created
    # {busy, idle, unknown[, source]}: pods whose busy state is known or not (observe.py)
    busy_pods: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, obs: Observation, decision: Decision, live: Mapping[str, Any], current: int,
           gpu: GPUCapacity | None, paused: bool, generation: int | None,
           busy_pods: Mapping[str, Any] | None = None) -> Seen:
        live_status = live.get("status") or {}
        refused = [str(c.get("message") or c.get("reason") or "")
                   for c in live_status.get("conditions") or []
                   if c.get("type") == "ReplicaFailure" and c.get("status") == "True"]
        return cls(obs, decision, current, int(live_status.get("readyReplicas") or 0),
                   int(live_status.get("replicas") or 0), gpu, paused, generation,
                   refused[0] if refused else None, busy_pods)


def conditions(conds: Conditions, seen: Seen, now: str,
               warnings: Sequence[str] = ()) -> Conditions:
    """The five condition types for a tick that got this far (the spec is valid).

    ``warnings`` (validation_warnings): a valid spec that can lose or cut jobs keeps
    SpecValid and Ready True, with reason CanLoseJobs and the warnings in the message."""
    obs, decision, gpu, gen = seen.obs, seen.decision, seen.gpu, seen.generation
    if warnings:
        conds = st.set_condition(conds, "SpecValid", "True", "CanLoseJobs",
                                 ("spec accepted; can lose or cut jobs: "
                                  + "; ".join(warnings))[:1000], generation=gen, now=now)
    else:
        conds = st.set_condition(conds, "SpecValid", "True", "Valid", "spec accepted",
                                 generation=gen, now=now)
    read_failed = (obs.error or "").startswith("QueueReadFailed")
    if obs.queues is None and not read_failed:
        conds = st.set_condition(conds, "RedisReachable", "False", "ConnectionFailed",
                                 obs.error or "queues not readable", generation=gen, now=now)
    else:
        conds = st.set_condition(conds, "RedisReachable", "True", "Connected", "queues read",
                                 generation=gen, now=now)
    if gpu is None:
        conds = st.set_condition(conds, "GPULimited", "False", "NoGPU",
                                 "workers request no GPU", generation=gen, now=now)
    elif decision.gpu_limited:
        conds = st.set_condition(
            conds, "GPULimited", "True", "InsufficientGPUs",
            f"free {gpu.resource_name}: {gpu.free}, {gpu.per_replica} per replica; "
            f"short by {decision.gpu_shortfall} replicas", generation=gen, now=now)
    else:
        conds = st.set_condition(conds, "GPULimited", "False", "Sufficient",
                                 f"free {gpu.resource_name}: {gpu.free}", generation=gen, now=now)
    conds = _scaling_condition(conds, seen, now)
    if seen.pods_refused:  # e.g. Pod Security Admission: no pod will ever start
        return st.set_condition(conds, "Ready", "False", "PodsRefused", seen.pods_refused,
                                generation=gen, now=now)
    if obs.queues is None:
        return st.set_condition(conds, "Ready", "False",
                                "QueueReadFailed" if read_failed else "RedisUnreachable",
                                obs.error or "", generation=gen, now=now)
    if warnings:
        return st.set_condition(conds, "Ready", "True", "CanLoseJobs",
                                "Deployment reconciled and queues read; the spec can lose or "
                                "cut jobs (see SpecValid)", generation=gen, now=now)
    return st.set_condition(conds, "Ready", "True", "Reconciled",
                            "Deployment reconciled and queues read", generation=gen, now=now)


def _scaling_condition(conds: Conditions, seen: Seen, now: str) -> Conditions:
    current, ready, gen = seen.current, seen.ready, seen.generation
    if seen.paused:
        return st.set_condition(conds, "Scaling", "False", "Paused",
                                "autoscaling paused; spec.replicas decides",
                                generation=gen, now=now)
    if current != ready or seen.pods_now != current:
        return st.set_condition(
            conds, "Scaling", "True", "ScalingUp" if current > ready else "ScalingDown",
            f"{ready} ready of {current}", generation=gen, now=now)
    return st.set_condition(conds, "Scaling", "False", "Stable", f"{ready} ready of {current}",
                            generation=gen, now=now)


def volatile_status(seen: Seen) -> dict[str, Any]:
    """The numbers that move poll after poll (written at most every refresh)."""
    volatile: dict[str, Any] = {}
    queues = seen.obs.queues
    if queues is not None:
        ages = [q.oldest_age_seconds for q in queues if q.oldest_age_seconds is not None]
        volatile.update({
            "backlog": backlog_of(queues),
            "oldestJobAgeSeconds": round(max(ages), 3) if ages else None,
            "queues": [{"name": q.name, "layout": q.layout, "waiting": q.waiting,
                        "inFlight": q.in_flight, "delayed": q.delayed,
                        "oldestAgeSeconds": q.oldest_age_seconds, "paused": q.paused,
                        "nextScheduleTime": None if q.schedule_due_in is None
                        else st.now_iso(round(time.time() + q.schedule_due_in))}
                       for q in queues],
        })
    if seen.busy_pods is not None:
        # "unknown": pods whose busy state no heartbeat, registry or event reports.
        volatile["busyPods"] = dict(seen.busy_pods)
    gpu = seen.gpu
    if gpu is not None:
        volatile["gpu"] = {
            "resourceName": gpu.resource_name, "perReplica": gpu.per_replica,
            "free": gpu.free, "needed": seen.decision.desired * gpu.per_replica,
            "limitedBy": seen.decision.gpu_shortfall,
        }
    return volatile


def _steady(queues: tuple[QueueDepth, ...] | None) -> tuple[QueueDepth, ...] | None:
    """The queues with a schedule's countdown as its (whole-second) time: an idle
    QueueWorker with a schedule reads the same poll after poll."""
    if queues is None or all(q.schedule_due_in is None for q in queues):
        return queues
    now = time.time()
    return tuple(q if q.schedule_due_in is None
                 else replace(q, schedule_due_in=round(now + q.schedule_due_in))
                 for q in queues)


def backlog_of(queues: tuple[QueueDepth, ...] | None) -> int:
    return sum(q.waiting + q.in_flight for q in queues or ())


class Series:
    """The per-QueueWorker metric children, looked up once (a poll is hot)."""

    def __init__(self, namespace: str, name: str) -> None:
        self.labels = {"namespace": namespace, "queueworker": name}
        labels = self.labels
        self.last_poll = metrics.last_poll.labels(**labels)
        self.max_replicas = metrics.max_replicas.labels(**labels)
        self.spec_valid = metrics.spec_valid.labels(**labels)
        self.decision = metrics.decision_duration.labels(**labels)
        self.reconcile = metrics.reconcile_duration.labels(**labels)
        self.redis_errors = metrics.redis_errors.labels(**labels)
        self.redis_up = metrics.redis_up.labels(**labels)
        self.desired = metrics.desired_replicas.labels(**labels)
        self.current = metrics.current_replicas.labels(**labels)
        self.ready = metrics.ready_replicas.labels(**labels)
        self.gpu_limited = metrics.gpu_limited.labels(**labels)

    def queue_read(self, ok: bool, reachable: bool) -> None:
        if not ok:
            self.redis_errors.inc()
        self.redis_up.set(1 if reachable else 0)

    def export(self, seen: Seen) -> None:
        m, labels, decision, gpu = metrics, self.labels, seen.decision, seen.gpu
        self.desired.set(decision.desired)
        self.current.set(seen.pods_now)
        self.ready.set(seen.ready)
        self.gpu_limited.set(1 if decision.gpu_limited else 0)
        for q in seen.obs.queues or ():
            for state, value in (("waiting", q.waiting), ("in_flight", q.in_flight),
                                 ("delayed", q.delayed)):
                m.queue_jobs.labels(**labels, queue=q.name, state=state).set(value)
            m.queue_oldest_age.labels(**labels, queue=q.name).set(q.oldest_age_seconds or 0)
            m.queue_paused.labels(**labels, queue=q.name).set(1 if q.paused else 0)
            for level, n in q.waiting_by_priority:
                m.queue_waiting_by_priority.labels(**labels, queue=q.name,
                                                   priority=str(level)).set(n)
        if gpu is not None:
            m.gpu_free.labels(**labels, resource=gpu.resource_name).set(gpu.free)
            m.gpu_needed.labels(**labels, resource=gpu.resource_name).set(
                decision.desired * gpu.per_replica)


class Reporter:
    """One QueueWorker's conditions, scale history, Events, metrics and status."""

    def __init__(self, shared: Shared, body: Any) -> None:
        self.body = body  # kopf's live view, for Events
        meta, status = body["metadata"], dict(body.get("status") or {})
        self.name: str = meta["name"]
        self.series = Series(meta["namespace"], self.name)
        self.status = StatusWriter(shared, meta["namespace"], self.name)
        self.conditions: Conditions = st.with_all_types(status.get("conditions") or [])
        self.last_scale_time: str | None = status.get("lastScaleTime")
        self.last_scale_reason: str | None = status.get("lastScaleReason")
        self.last_problem: str | None = None
        self.last_refused: str | None = None
        self.last_fingerprint: tuple[Any, ...] | None = None
        self.warnings: tuple[str, ...] = ()  # validation_warnings of the current spec
        self._warned_spec: api.QueueWorkerSpec | None = None

    async def invalid(self, reason: str, message: str, generation: int | None) -> None:
        """The QueueWorker cannot be acted on: SpecValid and Ready False, one Event."""
        self.last_fingerprint = None
        self.series.spec_valid.set(0)
        now = st.now_iso()
        conds = st.set_condition(self.conditions, "SpecValid", "False", reason, message,
                                 generation=generation, now=now)
        self.conditions = st.set_condition(conds, "Ready", "False", reason, message,
                                           generation=generation, now=now)
        if message != self.last_problem:
            self.last_problem = message
            kopf.event(self.body, type="Warning", reason=reason, message=message[:1000])
            log_event(logger, "queueworker.unusable", logging.WARNING, qw=self.name,
                      reason=reason, problem=message)
        await self.status.write({"observedGeneration": generation,
                                 "conditions": self.conditions})

    def valid(self, spec: api.QueueWorkerSpec | None = None) -> None:
        """The spec is usable; one Warning Event when it (newly) can lose or cut jobs."""
        self.series.spec_valid.set(1)
        self.last_problem = None
        if spec is None or spec is self._warned_spec:
            return
        self._warned_spec = spec  # SpecReader keeps one object per generation
        found = tuple(str(w) for w in validation_warnings.warnings(spec))
        if found and found != self.warnings:
            message = "; ".join(found)
            kopf.event(self.body, type="Warning", reason="CanLoseJobs", message=message[:1000])
            log_event(logger, "queueworker.can_lose_jobs", logging.WARNING, qw=self.name,
                      warnings=message)
        self.warnings = found

    def drift_corrected(self, parts: tuple[str, ...]) -> None:
        kopf.event(self.body, type="Warning", reason="DriftCorrected",
                   message=f"Deployment edited outside the QueueWorker ({', '.join(parts)}); "
                   "restored")

    def rollout_without_surge(self, why: str) -> None:
        kopf.event(self.body, type="Warning", reason="RolloutWithoutSurge", message=why[:1000])
        log_event(logger, "deployment.rollout_without_surge", logging.WARNING, qw=self.name,
                  reason=why)

    def scaled(self, decision: Decision, obs: Observation, paused: bool) -> None:
        current = obs.current_replicas
        reason = scale_reason(decision, obs, paused)
        direction = "up" if decision.desired > current else "down"
        self.last_scale_time = st.now_iso()
        self.last_scale_reason = f"{reason}: {decision.reason}"[:300]
        metrics.scale_events.labels(**self.series.labels, direction=direction,
                                    reason=reason).inc()
        kopf.event(self.body, type="Normal",
                   reason="ScaledUp" if direction == "up" else "ScaledDown",
                   message=f"{current} -> {decision.desired} ({reason}): {decision.reason}"[:1000])
        log_event(logger, "scaled", qw=self.name, previous=current, desired=decision.desired,
                  reason=decision.reason)

    async def report(self, seen: Seen, memory: dict[str, Any]) -> None:
        """Conditions, metrics and status of a tick that reached a decision."""
        obs, decision = seen.obs, seen.decision
        fingerprint = (_steady(obs.queues), obs.error, decision.desired, decision.gpu_limited,
                       decision.gpu_shortfall, seen.current, seen.ready, seen.pods_now, seen.gpu,
                       seen.paused, seen.generation, self.last_scale_time, memory_key(memory),
                       seen.pods_refused, tuple(sorted((seen.busy_pods or {}).items())),
                       self.warnings)
        if fingerprint == self.last_fingerprint:
            return
        if seen.pods_refused and seen.pods_refused != self.last_refused:
            kopf.event(self.body, type="Warning", reason="PodsRefused",
                       message=seen.pods_refused[:1000])
            log_event(logger, "deployment.pods_refused", logging.WARNING, qw=self.name,
                      reason=seen.pods_refused)
        self.last_refused = seen.pods_refused
        self.conditions = conditions(self.conditions, seen, st.now_iso(), self.warnings)
        important: dict[str, Any] = {
            "observedGeneration": seen.generation,
            "replicas": seen.pods_now,
            "desiredReplicas": decision.desired,
            "readyReplicas": seen.ready,
            "selector": dep.selector_string(self.name),
            "gpuLimited": decision.gpu_limited,
            "lastScaleTime": self.last_scale_time,
            "lastScaleReason": self.last_scale_reason,
            "conditions": self.conditions,
        }
        self.series.export(seen)
        backlog = backlog_of(obs.queues)
        done = await self.status.write(important, volatile=volatile_status(seen), memory=memory,
                                       force=bool(backlog) != bool(self.status.last_backlog))
        # Only once all of it is written: a failed write retries, and a change that
        # waits for its refresh is looked at again next poll (else it would wait for
        # the next change).
        self.last_fingerprint = fingerprint if done else None
