"""Discrete-event model of a queue worker fleet: jobs, queues, pods, a clock.

Policies (simulate_policies.py) only read the state and call `add_pods`,
`remove_pod`; the model runs the jobs, up to `concurrency` at a time per pod
(Horizon's PHP processes run one). A pod costs
worker-seconds from the moment it holds its node resources (scheduled, not
Pending) until it is gone. A job cut off by a scale-down is counted as
interrupted and goes back to the front of its queue to be run again.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from queueworker.simulate.trace import TraceJob

PENDING, STARTING, READY, DRAINING, GONE = "pending", "starting", "ready", "draining", "gone"


@dataclass
class Job:
    id: int
    arrival: float
    run: float
    queue: str
    start: float | None = None
    token: int = 0  # bumped when interrupted, so its old finish event is void


@dataclass
class Pod:
    id: int
    name: str
    queues: tuple[str, ...]
    state: str = PENDING
    scheduled_at: float | None = None
    jobs: list[Job] = field(default_factory=list)
    concurrency: int = 1


@dataclass
class Stats:
    waits: list[float] = field(default_factory=list)
    worker_seconds: float = 0.0
    busy_seconds: float = 0.0
    scale_events: int = 0
    interrupted: int = 0
    completed: int = 0
    max_replicas: int = 0
    end: float = 0.0
    runtime_by_queue: dict[str, list[float]] = field(default_factory=dict)  # [count, sum]


Handler = Callable[[float], None]


class Model:
    def __init__(
        self,
        jobs: Sequence[TraceJob],
        queues: Sequence[str],
        pod_start_seconds: float,
        slots: int | None,
        drain_seconds: float,
        concurrency: int = 1,
    ) -> None:
        self.concurrency = concurrency
        self.queues = tuple(queues)
        self.waiting: dict[str, deque[Job]] = {q: deque() for q in self.queues}
        self.pods: dict[int, Pod] = {}
        self.pod_start = pod_start_seconds
        self.slots = slots  # pods that fit the GPUs (None: unlimited)
        self.drain_seconds = drain_seconds
        self.stats = Stats()
        self.enqueued = 0
        self.finished = 0
        self.total_jobs = len(jobs)
        self._heap: list[tuple[float, int, Handler]] = []
        self._seq = itertools.count()
        self._pod_ids = itertools.count()
        self._pending_pods: deque[Pod] = deque()
        self.now = 0.0
        for i, tj in enumerate(jobs):
            job = Job(i, tj.arrival, tj.run_seconds, tj.queue)
            self.at(tj.arrival, partial(self._arrive, job))
        self.trace_end = max((j.arrival + j.run_seconds for j in jobs), default=0.0)

    # ------------------------------------------------------------------ clock

    def at(self, when: float, handler: Handler) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), handler))

    def every(self, interval: float, handler: Handler, start: float = 0.0) -> None:
        def tick(now: float) -> None:
            handler(now)
            self.at(now + interval, tick)

        self.at(start, tick)

    def run(self, tail_seconds: float, overrun_seconds: float = 6 * 3600) -> Stats:
        """Until every job ran and `tail_seconds` past the trace's end.

        A policy can keep cutting the same job off forever (a cooldown shorter
        than the job); `overrun_seconds` past the tail ends the run anyway and
        the result shows fewer jobs completed than the trace holds.
        """
        stop = self.trace_end + tail_seconds
        while self._heap:
            when, _, handler = heapq.heappop(self._heap)
            if when > stop and (self.finished >= self.total_jobs or when > stop + overrun_seconds):
                break
            self.now = when
            handler(when)
        end = max(stop, self.now)
        for pod in self.pods.values():
            self._stop_cost(pod, end)
        self.stats.end = end
        return self.stats

    # ------------------------------------------------------------------- jobs

    def _arrive(self, job: Job, now: float) -> None:
        self.waiting.setdefault(job.queue, deque()).append(job)
        self.enqueued += 1
        self.dispatch(now)

    def waiting_count(self, queues: Sequence[str] | None = None) -> int:
        return sum(len(self.waiting.get(q, ())) for q in (queues or self.waiting))

    def in_flight(self) -> int:
        return sum(len(p.jobs) for p in self.pods.values())

    def dispatch(self, now: float) -> None:
        for pod in list(self.pods.values()):
            if pod.state == READY and len(pod.jobs) < pod.concurrency:
                self._take(pod, now)

    def _take(self, pod: Pod, now: float) -> None:
        """Fill the pod's free job slots, queues in priority order."""
        for q in pod.queues:
            waiting = self.waiting.get(q)
            while waiting and len(pod.jobs) < pod.concurrency:
                job = waiting.popleft()
                if job.start is None:
                    job.start = now
                    self.stats.waits.append(now - job.arrival)
                pod.jobs.append(job)
                self.at(now + job.run, partial(self._done, pod, job, job.token))

    def _done(self, pod: Pod, job: Job, token: int, now: float) -> None:
        if job.token != token or job not in pod.jobs:
            return  # interrupted earlier; this finish never happened
        pod.jobs.remove(job)
        self.finished += 1
        self.stats.completed += 1
        self.stats.busy_seconds += job.run
        per_queue = self.stats.runtime_by_queue.setdefault(job.queue, [0.0, 0.0])
        per_queue[0] += 1
        per_queue[1] += job.run
        if pod.state == DRAINING:
            if not pod.jobs:
                self._gone(pod, now)
        else:
            self._take(pod, now)

    def _interrupt(self, pod: Pod) -> None:
        for job in reversed(pod.jobs):
            job.token += 1
            self.stats.interrupted += 1
            self.waiting[job.queue].appendleft(job)
        pod.jobs.clear()

    # ------------------------------------------------------------------- pods

    def live(self) -> list[Pod]:
        """Pods that count as replicas (not leaving)."""
        return [p for p in self.pods.values() if p.state in (PENDING, STARTING, READY)]

    def holding(self) -> int:
        return sum(1 for p in self.pods.values() if p.state in (STARTING, READY, DRAINING))

    def add_pods(self, count: int, now: float, queues: tuple[str, ...] | None = None) -> None:
        for _ in range(count):
            i = next(self._pod_ids)
            pod = Pod(i, f"pod-{i}", queues or self.queues, concurrency=self.concurrency)
            self.pods[i] = pod
            self._pending_pods.append(pod)
        self._schedule(now)
        self.stats.max_replicas = max(self.stats.max_replicas, len(self.live()))

    def _schedule(self, now: float) -> None:
        while self._pending_pods and (self.slots is None or self.holding() < self.slots):
            pod = self._pending_pods.popleft()
            if pod.state != PENDING:
                continue
            pod.state = STARTING
            pod.scheduled_at = now
            self.at(now + self.pod_start, partial(self._ready, pod))

    def _ready(self, pod: Pod, now: float) -> None:
        if pod.state == STARTING:
            pod.state = READY
            self._take(pod, now)

    def remove_pod(self, pod: Pod, now: float, graceful: bool) -> None:
        """Scale-down of one pod: graceful drains its jobs, else they are cut."""
        if pod.state in (GONE, DRAINING):
            return
        if not pod.jobs or pod.state != READY:
            self._gone(pod, now)
        elif graceful:
            pod.state = DRAINING
            # The worker hands unfinished jobs back at its drain deadline.
            self.at(now + self.drain_seconds, partial(self._deadline, pod))
        else:
            self._interrupt(pod)
            self._gone(pod, now)
            self.dispatch(now)

    def _deadline(self, pod: Pod, now: float) -> None:
        if pod.state == DRAINING and pod.id in self.pods:
            self._interrupt(pod)
            self._gone(pod, now)
            self.dispatch(now)

    def _stop_cost(self, pod: Pod, now: float) -> None:
        if pod.scheduled_at is not None:
            self.stats.worker_seconds += now - pod.scheduled_at
            pod.scheduled_at = None

    def _gone(self, pod: Pod, now: float) -> None:
        self._stop_cost(pod, now)
        pod.state = GONE
        del self.pods[pod.id]
        self._schedule(now)
