"""Data the scaling engine takes and returns. Plain, immutable, no I/O.

This is the contract between the readers (Redis, heartbeats, Kubernetes
Nodes/Pods), the pure decision function and the things that act on a decision
(the operator's Deployment pool, the local process pool, the simulator).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class QueueDepth:
    """One queue at one instant, as a layout reader saw it."""

    name: str
    layout: str
    waiting: int  # ready to run now
    in_flight: int  # taken by a worker, not finished
    delayed: int = 0  # scheduled for later (not demand yet)
    other: int = 0  # neither demand nor running (dead letters), where the layout keeps them
    oldest_age_seconds: float | None = None  # oldest waiting job, where the layout says
    enqueued_total: int | None = None  # monotonic counters, where the layout keeps them
    completed_total: int | None = None
    # (priority, jobs) in the waiting lists, highest first, where the layout has
    # levels (native: 10..1, worker/keys.py); empty otherwise
    waiting_by_priority: tuple[tuple[int, int], ...] = ()
    # Paused (native: ``queueworker queue pause``): its workers take none of its
    # waiting jobs, so those are no demand (engine/queue_admin.py).
    paused: bool = False
    # Seconds from the reading to the queue's earliest schedule tick (negative:
    # overdue), where the layout keeps schedules (native); None: no active one.
    schedule_due_in: float | None = None


@dataclass(frozen=True)
class PodState:
    """One worker replica (pod or local process) as heartbeats and the pool see it."""

    name: str
    busy: bool  # running at least one job
    in_flight: int = 0
    ready: bool = True
    terminating: bool = False
    slots: int | None = None  # jobs its worker runs at once, where the worker says
    # Jobs its worker took beyond its slots (prefetch) and holds for them, where it
    # says: work for this pod (busy), never for another, and not a running job.
    buffered: int = 0
    # How long its longest-running job has run, where the beat says (job starts).
    job_age_seconds: float | None = None
    beat_age_seconds: float | None = None  # age of the heartbeat busy/in_flight come from


@dataclass(frozen=True)
class GPUCapacity:
    """What free GPUs allow this QueueWorker, in whole replicas."""

    resource_name: str
    per_replica: int
    max_replicas: int  # replicas the free (or allotted) GPUs can hold, counting current ones
    free: int = 0  # free units of the resource on eligible nodes
    pending: int = 0  # this QueueWorker's pods waiting to be scheduled
    wanted: int = 0  # replicas the demand asked for when this was computed
    shortfall: int = 0  # wanted minus max_replicas, when the GPUs do not allow it


@dataclass(frozen=True)
class Observation:
    now: float  # seconds (monotonic or epoch: only differences are used)
    queues: tuple[QueueDepth, ...] | None  # None: the queues could not be read
    current_replicas: int
    ready_replicas: int
    pods: tuple[PodState, ...] = ()
    gpu: GPUCapacity | None = None
    error: str | None = None  # why queues is None
    manual_replicas: int | None = None  # spec.replicas, used while paused


@dataclass(frozen=True)
class Decision:
    desired: int
    reason: str  # one line a person can read: why this number
    remove_first: tuple[str, ...] = ()  # pod names, idle first, when scaling down
    gpu_limited: bool = False
    gpu_shortfall: int = 0  # replicas wanted but not allowed by GPUs
    memory: dict[str, Any] = field(default_factory=dict)  # JSON-safe; pass back next call
    direction: str = "none"  # "up" | "down" | "none"
