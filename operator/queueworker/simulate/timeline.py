"""What a replay looked like over time, for `queueworker simulate --plot`.

The model samples itself every `interval` seconds (jobs waiting, replicas the
policy asked for, replicas ready, pods running a job) and records each
completed job's start and wait. Nothing here draws; plot.py does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from queueworker.simulate.model import Model

MAX_SAMPLES = 400  # a plot needs no more points than this per line


@dataclass
class Timeline:
    interval: float
    t: list[float] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    desired: list[int] = field(default_factory=list)  # replicas: pods not leaving
    ready: list[int] = field(default_factory=list)
    busy: list[int] = field(default_factory=list)  # pods running a job (draining ones too)
    starts: list[tuple[float, float]] = field(default_factory=list)  # (start, wait) per job

    @classmethod
    def for_duration(cls, seconds: float, poll: float = 5.0) -> Timeline:
        return cls(interval=max(poll, seconds / MAX_SAMPLES))

    def sample(self, m: Model, now: float) -> None:
        from queueworker.simulate.model import READY

        live = m.live()
        self.t.append(now)
        self.waiting.append(m.waiting_count())
        self.desired.append(len(live))
        self.ready.append(sum(1 for p in live if p.state == READY))
        self.busy.append(sum(1 for p in m.pods.values() if p.jobs))

    def wait_p95(self) -> tuple[list[float], list[float]]:
        """Per sample interval: the p95 wait of the jobs that started in it (NaN: none)."""
        if not self.t:
            return [], []
        bins: dict[int, list[float]] = {}
        for start, wait in self.starts:
            bins.setdefault(int(start // self.interval), []).append(wait)
        xs, ys = [], []
        for i in range(int(self.t[-1] // self.interval) + 1):
            waits = sorted(bins.get(i, ()))
            xs.append(i * self.interval)
            ys.append(waits[max(0, math.ceil(0.95 * len(waits)) - 1)] if waits else math.nan)
        return xs, ys
