"""The cases issue 14 names, each over seeds 1-5: a trickle of short jobs, an
e-mail campaign (trickle plus 5,000-job spikes of 0.2 s jobs) at the default
target and at targetBacklogPerReplica 200 with both policies, and 4-minute GPU
jobs. Prints one markdown table (median [min-max] over the seeds).

    nice -n 10 .venv/bin/python benchmarks/engine/issue14_cases.py

To see the engine before issue 14 on the same cases, run it with the package
of commit 677715b first on the path:

    git archive 677715b operator worker | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before/operator:/tmp/before/worker nice -n 10 \\
        .venv/bin/python benchmarks/engine/issue14_cases.py --only ours
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from queueworker.operator.api import QueueWorkerSpec
from queueworker.operator.validation import parse_spec
from queueworker.simulate.cli import Result, simulate
from queueworker.simulate.trace import TraceJob


def spec(scaling: dict[str, Any]) -> QueueWorkerSpec:
    return parse_spec({"redis": {"url": "redis://redis:6379/0"},
                       "queues": [{"name": "default"}],
                       "template": {"spec": {"containers": [{"name": "w", "image": "x"}]}},
                       "scaling": scaling})


def trickle(rng: random.Random, rate: float, median: float, end: float) -> list[TraceJob]:
    t, out = 0.0, []
    while True:
        t += rng.expovariate(rate)
        if t > end:
            return out
        out.append(TraceJob(t, min(5.0, median * math.exp(rng.gauss(0, 0.5))), "default"))


def trickle_2h(seed: int) -> list[TraceJob]:
    """0.5 jobs/s of 0.3 s jobs for 2 h."""
    return trickle(random.Random(f"{seed}-trickle"), 0.5, 0.3, 7200)


def email(seed: int) -> list[TraceJob]:
    """0.5 jobs/s of 0.2 s e-mails for 3 h, plus 5,000 within a minute every hour."""
    rng = random.Random(f"{seed}-email")
    out = trickle(rng, 0.5, 0.2, 3 * 3600)
    for start in (1800, 5400, 9000):
        out += [TraceJob(start + rng.uniform(0, 60), 0.2 * math.exp(rng.gauss(0, 0.4)),
                         "default") for _ in range(5000)]
    return sorted(out, key=lambda j: j.arrival)


def gpu_4min(seed: int) -> list[TraceJob]:
    """Batches of 1-4 jobs of 3-5 minutes, one batch every ~7 minutes, 4 h."""
    rng = random.Random(f"{seed}-gpu4")
    out: list[TraceJob] = []
    t = 0.0
    while t < 4 * 3600:
        t += rng.expovariate(1 / 400)
        out += [TraceJob(t + rng.uniform(0, 30), rng.uniform(180, 300), "default")
                for _ in range(rng.randint(1, 4))]
    return sorted(out, key=lambda j: j.arrival)


CASES: list[tuple[str, Callable[[int], list[TraceJob]], dict[str, Any], float]] = [
    ("trickle 0.5/s x 0.3 s", trickle_2h, {"maxReplicas": 100}, 20),
    ("e-mail campaign, defaults", email, {"maxReplicas": 100}, 20),
    ("e-mail campaign, target 200", email,
     {"maxReplicas": 100, "targetBacklogPerReplica": 200}, 20),
    ("e-mail campaign, waitTime + target 200", email,
     {"maxReplicas": 100, "targetBacklogPerReplica": 200, "policy": "waitTime"}, 20),
    ("4-minute GPU jobs (pod start 60 s)", gpu_4min, {"maxReplicas": 20}, 60),
]


def cell(values: Sequence[float], fmt: str) -> str:
    lo, hi, med = min(values), max(values), statistics.median(values)
    return fmt.format(med) if lo == hi else f"{fmt.format(med)} [{fmt.format(lo)}-{fmt.format(hi)}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--only", default=None, help="one policy")
    args = ap.parse_args()
    policies = [args.only] if args.only else ["ours", "keda-hpa-same-grace", "keda-hpa"]
    print("| case | policy | wait p95 s | wait mean s | worker-seconds | interrupted | "
          "scale events | peak replicas | never-ran pod-s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, make, scaling, start in CASES:
        s = spec(scaling)
        for policy in policies:
            rs: list[Result] = [simulate(s, make(seed), policy, start, seed=seed)
                                for seed in range(1, args.seeds + 1)]
            print(f"| {name} | {policy} | {cell([r.wait_p95 for r in rs], '{:.1f}')} | "
                  f"{cell([r.wait_mean for r in rs], '{:.2f}')} | "
                  f"{cell([r.worker_seconds for r in rs], '{:,.0f}')} | "
                  f"{cell([r.interrupted for r in rs], '{:.0f}')} | "
                  f"{cell([r.scale_events for r in rs], '{:.0f}')} | "
                  f"{cell([r.max_replicas for r in rs], '{:.0f}')} | "
                  f"{cell([r.never_ran_seconds for r in rs], '{:,.0f}')} |")


if __name__ == "__main__":
    main()
