"""One interface for every library whose workers say in Redis whether they are busy.

Like the queue layouts (observe/layouts/), an adapter never talks to Redis: it
gives one command for the shared pipeline (a script that walks the library's
worker registry, so that a whole registry costs one round trip) and turns the
reply into `WorkerReport`s. `assign` maps reports to pods, by hostname (a
pod's hostname is its name), by pod IP (a connection's address in CLIENT
LIST, clients.py) or, in local mode, by process id, and turns them
into `PodBeat`s, so observe/heartbeats.py's one busy rule decides for foreign
workers as it does for native ones. A pod no report maps to is *unknown*: it
gets no beat, counts as not busy, and the engine's in-flight count is then all
that holds replicas up (as for any worker whose busy state cannot be seen).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from queueworker.observe.heartbeats import PodBeat
from queueworker.observe.layouts.base import Command, LayoutError, text
from queueworker.operator.api import QueueLayout, QueueSpec


@dataclass(frozen=True)
class WorkerReport:
    """One worker process as its library registers it."""

    worker: str  # the library's id for it (RQ worker key, Sidekiq identity)
    hostname: str | None
    pid: int | None
    busy: bool
    running: int  # jobs it runs now; at least 1 when busy
    quiet: bool = False  # stopped fetching (Sidekiq quiet, a worker told to stop)
    ip: str | None = None  # the address it connects from (CLIENT LIST)
    beat_at: float | None = None  # when its library last wrote this report (epoch s)
    registry: str = ""  # the registry key it was read from (its adapter's `registry`)


@dataclass(frozen=True)
class PodRef:
    """What identifies a pod to a worker registry: its name and IP; in local mode its pid."""

    name: str
    pid: int | None = None
    ip: str | None = None


class Adapter(ABC):
    layout: ClassVar[QueueLayout]
    label: ClassVar[str | None] = None  # how errors name it; "<layout> workers" if None
    can_quiet: ClassVar[bool] = False  # `quiet` gives commands (a scale-down quiets first)
    # Reads one key per pod (arq's per-pod health records): no command without pods.
    per_pod: ClassVar[bool] = False

    @abstractmethod
    def registry(self, q: QueueSpec) -> str:
        """The registry key a queue's workers are listed in (one command per registry)."""

    @abstractmethod
    def command(self, q: QueueSpec) -> Command:
        """The one command that reads the whole registry."""

    def command_for(self, q: QueueSpec, pods: Sequence[PodRef]) -> Command:
        """`command`, for an adapter that reads the pods' own keys (`per_pod`)."""
        return self.command(q)

    @abstractmethod
    def parse(self, reply: Any, key: str) -> list[WorkerReport]:
        """Reports from the reply; LayoutError when it does not fit."""

    def quiet(self, report: WorkerReport) -> tuple[Command, ...] | None:
        """The commands that make this worker stop fetching and finish what it
        holds (engine/quiet.py); None when its library has no such signal."""
        return None


def rows(reply: Any, key: str, width: int) -> list[list[str | None]]:
    """A flat script reply as rows of `width` texts (an empty string reads as None)."""
    if not isinstance(reply, list | tuple) or len(reply) % width:
        raise LayoutError(key, f"expected a flat list of {width}-field rows, got {reply!r:.60}")
    flat = [text(v) or None for v in reply]
    return [flat[i:i + width] for i in range(0, len(flat), width)]


def number(value: str | None) -> int | None:
    try:
        return int(float(value)) if value else None
    except ValueError:
        return None


def assign(reports: Iterable[WorkerReport], pods: Sequence[PodRef]) -> dict[str, PodBeat]:
    """Pod name -> a beat summing the workers running in it; pods with none are left out.

    Several workers in one pod (RQ's worker-pool, two Sidekiq processes) make
    it busy when any is, with the jobs of all. Hostnames are matched exactly;
    a pid only where the caller knows one (local mode: every pod of a cluster
    has its own pid 1, so pids mean nothing there); an IP only where it is one
    pod's (local replicas all connect from 127.0.0.1).
    """
    out: dict[str, PodBeat] = {}
    for pod, mine in group(reports, pods).items():
        running = sum(max(r.running, 1 if r.busy else 0) for r in mine)
        busy = any(r.busy for r in mine) or running > 0
        state = "busy" if busy else "draining" if all(r.quiet for r in mine) else "idle"
        # The report's own time lets the engine take the idle pod with the freshest
        # report first: the one least likely to have taken a job since it was written.
        beat_at = max((r.beat_at or 0.0) for r in mine)
        out[pod] = PodBeat(pod, state, running, beat_at)
    return out


def group(reports: Iterable[WorkerReport], pods: Sequence[PodRef]
          ) -> dict[str, list[WorkerReport]]:
    """Pod name -> the reports mapped to it (`assign`'s rule)."""
    by_name = {p.name: p.name for p in pods}
    by_pid = {p.pid: p.name for p in pods if p.pid is not None}
    ips = [p.ip for p in pods if p.ip]
    by_ip = {p.ip: p.name for p in pods if p.ip and ips.count(p.ip) == 1}
    found: dict[str, list[WorkerReport]] = {}
    for r in reports:
        pod = by_pid.get(r.pid) if r.pid is not None else None
        if pod is None and r.hostname is not None:
            pod = by_name.get(r.hostname)
        if pod is None and r.ip is not None:
            pod = by_ip.get(r.ip)
        if pod is not None:
            found.setdefault(pod, []).append(r)
    return found
