"""What a minReplicasSchedules window costs and saves: a morning rush, seeds 1-5.

    nice -n 19 .venv/bin/python benchmarks/engine/schedules.py

The trace starts Monday 2026-03-02 06:00 in Berlin: 0.01 jobs/s until 08:00,
then 0.8 jobs/s (30 s jobs: about 24 busy pods) until 10:00, then 0.2 jobs/s
until 12:00. Pods take 90 s to start. The window opens at 07:45 and holds 24
replicas until 10:00. Rows: ours without and with the window, and KEDA+HPA with
the same grace (no window). "rush" is the first 15 minutes after 08:00.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from queueworker.operator.validation import parse_spec
from queueworker.simulate.cli import Result, percentile, simulate
from queueworker.simulate.timeline import Timeline
from queueworker.simulate.trace import TraceJob

START = datetime(2026, 3, 2, 6, 0, tzinfo=ZoneInfo("Europe/Berlin")).timestamp()
RUSH = (7200.0, 7200.0 + 900)  # 08:00-08:15, seconds into the trace
WINDOW = {"name": "morning", "start": "45 7 * * 1-5", "end": "0 10 * * 1-5",
          "timezone": "Europe/Berlin", "minReplicas": 24}


def rate(t: float) -> float:
    return 0.01 if t < 7200 else 0.8 if t < 14400 else 0.2 if t < 21600 else 0.0


def trace(seed: int) -> list[TraceJob]:
    rng, t, out = random.Random(f"{seed}-rush"), 0.0, []
    while t < 21600:
        t += rng.expovariate(0.8)
        if rng.random() * 0.8 <= rate(t):
            out.append(TraceJob(t, 30 * math.exp(rng.gauss(0, 0.3)), "default"))
    return out


def spec(windows: list[dict[str, Any]]) -> Any:
    return parse_spec({"redis": {"url": "redis://r:6379/0"}, "queues": [{"name": "default"}],
                       "template": {"spec": {"containers": [{"name": "w", "image": "x"}]}},
                       "scaling": {"maxReplicas": 40, "minReplicasSchedules": windows}})


def rush_waits(tl: Timeline) -> list[float]:
    return [w for start, w in tl.starts if RUSH[0] <= start - w < RUSH[1]]


def cell(values: Sequence[float], fmt: str) -> str:
    lo, hi, mid = min(values), max(values), statistics.median(values)
    return fmt.format(mid) if lo == hi else f"{fmt.format(mid)} [{fmt.format(lo)}-{fmt.format(hi)}]"


def main() -> None:
    print("| policy | rush p95 wait s | rush mean wait s | day p95 wait s | worker-seconds |")
    print("|---|---|---|---|---|")
    for label, policy, windows in (("ours, no window", "ours", []),
                                   ("ours, window 07:45-10:00 at 24", "ours", [WINDOW]),
                                   ("keda-hpa-same-grace", "keda-hpa-same-grace", [])):
        rush: list[float] = []
        rush_mean: list[float] = []
        rs: list[Result] = []
        for seed in range(1, 6):
            tl = Timeline(interval=30.0)
            rs.append(simulate(spec(windows), trace(seed), policy, 90, seed=seed,
                               timeline=tl, start_time=START))
            waits = rush_waits(tl)
            rush.append(percentile(waits, 95))
            rush_mean.append(statistics.mean(waits))
        print(f"| {label} | {cell(rush, '{:.1f}')} | {cell(rush_mean, '{:.1f}')} | "
              f"{cell([r.wait_p95 for r in rs], '{:.1f}')} | "
              f"{cell([r.worker_seconds for r in rs], '{:,.0f}')} |")


if __name__ == "__main__":
    main()
