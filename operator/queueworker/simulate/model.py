"""Discrete-event model of a queue worker fleet: jobs, queues, pods, a clock.

Policies (policies.py) only read the state and call `add_pods`,
`remove_pod`; the model runs the jobs, up to `concurrency` at a time per pod
(Horizon's PHP processes run one). A pod costs worker-seconds from the moment
it holds its node resources (scheduled, not Pending) until it is gone, which
includes its start, its time terminating and pods that never ran a job (both
are also reported on their own). A removed pod gets SIGTERM and its grace
period: an idle worker exits at once, a busy one stops fetching and finishes
its jobs; whatever still runs when the grace ends is cut off, counted as
interrupted, and goes back to the front of its queue to be run again. A job's
wait runs from its enqueue to the start of the run that completes it, so a
job cut off and re-run shows its whole delay; jobs never completed count their
wait up to the end of the run.

Heartbeats: `beat_seconds` > 0 makes `seen_busy` answer what the pod's last
heartbeat said, as the operator sees it (a pod that took a job after its last
beat still looks idle). `quiet_pod` is Sidekiq's quiet: the pod reads it at
its next beat, then takes no new job; `quiet_seen` is a later beat saying so.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from queueworker.simulate.timeline import Timeline
from queueworker.simulate.trace import TraceJob

PENDING, STARTING, READY, DRAINING, GONE = "pending", "starting", "ready", "draining", "gone"
CHURN_SECONDS = 60.0  # a scale-up this soon after a scale-down undoes it


@dataclass
class Job:
    id: int
    arrival: float
    run: float
    queue: str
    start: float | None = None  # start of the current (or last) run
    token: int = 0  # bumped when interrupted, so its old finish event is void


@dataclass
class Pod:
    id: int
    name: str
    queues: tuple[str, ...]
    state: str = PENDING
    scheduled_at: float | None = None
    jobs: list[Job] = field(default_factory=list)  # running
    concurrency: int = 1
    buffer: deque[Job] = field(default_factory=deque)  # prefetched, waiting for a slot here
    created_at: float = 0.0
    ready_at: float | None = None
    ran_job: bool = False
    busy_since: float = 0.0  # when its job count last went from 0 to 1
    idle_since: float = 0.0  # when its job count last went to 0
    draining_since: float | None = None
    quiet_since: float | None = None  # stopped taking jobs (quiet_pod)


@dataclass
class Stats:
    waits: list[float] = field(default_factory=list)
    worker_seconds: float = 0.0
    busy_seconds: float = 0.0
    scale_events: int = 0
    churn_ups: int = 0  # scale-ups within CHURN_SECONDS of a scale-down
    interrupted: int = 0
    completed: int = 0
    unfinished: int = 0
    never_ran_pods: int = 0
    never_ran_seconds: float = 0.0  # worker-seconds of pods that never ran a job
    terminating_seconds: float = 0.0  # worker-seconds of pods after their SIGTERM
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
        beat_seconds: float = 0.0,
        prefetch: int = 0,
    ) -> None:
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.beat_seconds = beat_seconds
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
        self._last_down = -math.inf
        self.unfinished: dict[int, Job] = {}
        for i, tj in enumerate(jobs):
            job = Job(i, tj.arrival, tj.run_seconds, tj.queue)
            self.unfinished[i] = job
            self.at(tj.arrival, partial(self._arrive, job))
        self.trace_end = max((j.arrival + j.run_seconds for j in jobs), default=0.0)
        self.timeline: Timeline | None = None

    def record(self, timeline: Timeline) -> None:
        """Sample the fleet into `timeline` as the run goes (for plots)."""
        self.timeline = timeline
        self.every(timeline.interval, partial(timeline.sample, self))

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
        # Jobs never completed waited at least until the end.
        for job in self.unfinished.values():
            self.stats.waits.append(end - job.arrival)
        self.stats.unfinished = len(self.unfinished)
        self.stats.end = end
        return self.stats

    def scaled(self, now: float, up: bool) -> None:
        """Count one change of the replica count (and churn: up soon after down)."""
        self.stats.scale_events += 1
        if not up:
            self._last_down = now
        elif now - self._last_down <= CHURN_SECONDS:
            self.stats.churn_ups += 1

    # ------------------------------------------------------------------- jobs

    def _arrive(self, job: Job, now: float) -> None:
        self.waiting.setdefault(job.queue, deque()).append(job)
        self.enqueued += 1
        self.dispatch(now)

    def waiting_count(self, queues: Sequence[str] | None = None) -> int:
        return sum(len(self.waiting.get(q, ())) for q in (queues or self.waiting))

    def in_flight(self) -> int:
        """Jobs taken by a worker: running, and prefetched into a buffer (the
        queue counts both: both hold a lease)."""
        return sum(len(p.jobs) + len(p.buffer) for p in self.pods.values())

    def dispatch(self, now: float) -> None:
        for pod in list(self.pods.values()):
            if pod.state == READY and pod.quiet_since is None and (
                    len(pod.jobs) < pod.concurrency
                                       or len(pod.buffer) < self.prefetch):
                self._take(pod, now)

    def _take(self, pod: Pod, now: float) -> None:
        """Fill the pod's free job slots (its buffer first), queues in priority
        order; then prefetch up to `prefetch` more into its buffer."""
        if pod.quiet_since is not None:
            return
        while pod.buffer and len(pod.jobs) < pod.concurrency:
            self._start(pod, pod.buffer.popleft(), now)
        for q in pod.queues:
            waiting = self.waiting.get(q)
            while waiting and len(pod.jobs) < pod.concurrency:
                self._start(pod, waiting.popleft(), now)
            while waiting and pod.state == READY and len(pod.buffer) < self.prefetch:
                pod.buffer.append(waiting.popleft())

    def _start(self, pod: Pod, job: Job, now: float) -> None:
        job.start = now
        if not pod.jobs:
            pod.busy_since = now
        pod.ran_job = True
        pod.jobs.append(job)
        self.at(now + job.run, partial(self._done, pod, job, job.token))

    def _done(self, pod: Pod, job: Job, token: int, now: float) -> None:
        if job.token != token or job not in pod.jobs:
            return  # interrupted earlier; this finish never happened
        pod.jobs.remove(job)
        if not pod.jobs:
            pod.idle_since = now
        self.finished += 1
        self.stats.completed += 1
        del self.unfinished[job.id]
        # The wait of the run that succeeded: a job cut off earlier shows it all.
        wait = (job.start or job.arrival) - job.arrival
        self.stats.waits.append(wait)
        if self.timeline is not None:
            self.timeline.starts.append((job.start or job.arrival, wait))
        self.stats.busy_seconds += job.run
        per_queue = self.stats.runtime_by_queue.setdefault(job.queue, [0.0, 0.0])
        per_queue[0] += 1
        per_queue[1] += job.run
        if pod.state == DRAINING:
            if not pod.jobs:
                self._gone(pod, now)
        else:
            self._take(pod, now)

    def _interrupt(self, pod: Pod, now: float) -> None:
        for job in reversed(pod.jobs):
            job.token += 1
            self.stats.interrupted += 1
            self.waiting[job.queue].appendleft(job)
        if pod.jobs:
            pod.idle_since = now
        pod.jobs.clear()

    def _last_beat(self, pod: Pod, now: float) -> float | None:
        """A worker beats once when ready, then every beat_seconds from its own
        phase (spread by pod id, so beats do not line up with the polls)."""
        if self.beat_seconds <= 0 or pod.ready_at is None:
            return None
        first = pod.ready_at + self._phase(pod)
        if now < first:
            return pod.ready_at
        return first + math.floor((now - first) / self.beat_seconds) * self.beat_seconds

    def _phase(self, pod: Pod) -> float:
        return (pod.id * 0.6180339887) % 1.0 * self.beat_seconds

    def quiet_pod(self, pod: Pod, now: float) -> None:
        """Quiet a pod: its next beat reads the signal (Sidekiq pops its signal list
        at each beat), from then on it takes no job and finishes what it holds."""
        at = now
        if self.beat_seconds > 0 and pod.ready_at is not None:
            first = pod.ready_at + self._phase(pod)
            at = first if now < first else first + self.beat_seconds * (
                math.floor((now - first) / self.beat_seconds) + 1)
        self.at(at, partial(self._quieted, pod))

    def _quieted(self, pod: Pod, now: float) -> None:
        if pod.quiet_since is None:
            pod.quiet_since = now

    def quiet_seen(self, pod: Pod, now: float) -> bool:
        """Whether the pod's last beat says it is quiet: one written after the quiet."""
        last = self._last_beat(pod, now)
        return pod.quiet_since is not None and (last is None or last > pod.quiet_since)

    def beat_age(self, pod: Pod, now: float) -> float | None:
        """Seconds since the pod's last heartbeat (None before it is ready or without beats)."""
        last = self._last_beat(pod, now)
        return None if last is None else now - last

    def job_age(self, pod: Pod, now: float) -> float | None:
        """How long the pod's longest-running job has run (its beat lists job starts)."""
        starts = [j.start for j in pod.jobs if j.start is not None]
        return now - min(starts) if starts else None

    def seen_busy(self, pod: Pod, now: float) -> int:
        """Jobs in hand as the pod's last heartbeat reported them (exact without beats)."""
        last_beat = self._last_beat(pod, now)
        if last_beat is None:
            return len(pod.jobs)
        if pod.jobs:
            return len(pod.jobs) if pod.busy_since <= last_beat else 0
        # Idle now: busy at the beat if it went idle after it.
        return 1 if pod.ran_job and pod.busy_since <= last_beat < pod.idle_since else 0

    # ------------------------------------------------------------------- pods

    def live(self) -> list[Pod]:
        """Pods that count as replicas (not leaving)."""
        return [p for p in self.pods.values() if p.state in (PENDING, STARTING, READY)]

    def holding(self) -> int:
        return sum(1 for p in self.pods.values() if p.state in (STARTING, READY, DRAINING))

    def add_pods(self, count: int, now: float, queues: tuple[str, ...] | None = None) -> None:
        for _ in range(count):
            i = next(self._pod_ids)
            pod = Pod(i, f"pod-{i}", queues or self.queues, concurrency=self.concurrency,
                      created_at=now)
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
            pod.ready_at = now
            pod.idle_since = now
            self._take(pod, now)

    def remove_pod(self, pod: Pod, now: float, grace_seconds: float) -> None:
        """Scale-down of one pod: SIGTERM, then `grace_seconds` to finish its jobs.

        An idle (or not yet ready) worker exits at once; a busy one stops
        fetching and finishes; what still runs at the end of the grace is cut.
        """
        if pod.state in (GONE, DRAINING):
            return
        # The worker hands its prefetched jobs back at once (their order kept).
        handed = bool(pod.buffer)
        while pod.buffer:
            job = pod.buffer.pop()
            self.waiting[job.queue].appendleft(job)
        if not pod.jobs or pod.state != READY:
            self._gone(pod, now)
        elif grace_seconds > 0:
            pod.state = DRAINING
            pod.draining_since = now
            self.at(now + grace_seconds, partial(self._deadline, pod))
        else:
            self._interrupt(pod, now)
            self._gone(pod, now)
            handed = True
        if handed:
            self.dispatch(now)

    def _deadline(self, pod: Pod, now: float) -> None:
        if pod.state == DRAINING and pod.id in self.pods:
            self._interrupt(pod, now)
            self._gone(pod, now)
            self.dispatch(now)

    def _stop_cost(self, pod: Pod, now: float) -> None:
        if pod.scheduled_at is not None:
            spent = now - pod.scheduled_at
            self.stats.worker_seconds += spent
            if not pod.ran_job:
                self.stats.never_ran_pods += 1
                self.stats.never_ran_seconds += spent
            if pod.draining_since is not None:
                self.stats.terminating_seconds += now - pod.draining_since
            pod.scheduled_at = None

    def _gone(self, pod: Pod, now: float) -> None:
        self._stop_cost(pod, now)
        pod.state = GONE
        del self.pods[pod.id]
        self._schedule(now)
