"""What each restart-horizon rule (engine/churn.py) buys: ours with one rule
switched off at a time, seeds 1-5, medians.

    nice -n 19 .venv/bin/python benchmarks/engine/ablation.py [--runs steady,bursts,...]

Switching a rule off replaces its function in engine/churn.py with one that
leaves the count as it was, in this process only.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from typing import Any

from run_simulations import RUNS, TRACES, trace

from queueworker.engine import churn
from queueworker.simulate.cli import load_spec, simulate

RULES: dict[str, tuple[str, Callable[..., Any]]] = {
    "start only what finds a job": ("worth_starting", lambda d, r, h, c, des, s: (des, "")),
    "keep the forecast": ("keep", lambda c, des, a, w: (des, "")),
    "drain ahead": ("drain_ahead", lambda *a: None),
    "scale-downs a horizon apart": ("spacing", lambda last, now, c, des, h: (des, "")),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", default="steady,bursts,diurnal,gpu,imagegen,audio")
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    wanted = set(args.runs.split(","))
    print("| run | rule off | wait p95 s | worker-seconds | scale events | "
          "ups <= 60 s after a down |")
    print("|---|---|---|---|---|---|")
    originals = {name: getattr(churn, name) for name, _ in RULES.values()}
    for run in (r for r in RUNS if r.trace in wanted):
        spec = load_spec(str(TRACES / run.spec))
        for label in ("none (all rules)", *RULES):
            for name, fn in originals.items():
                setattr(churn, name, fn)
            if label in RULES:
                name, off = RULES[label]
                setattr(churn, name, off)
            rs = [simulate(spec, trace(run.trace, s), "ours", run.start, run.gpus, seed=s,
                           concurrency=run.concurrency) for s in range(1, args.seeds + 1)]

            def med(key: str, rs: list[Any] = rs) -> float:
                return statistics.median(getattr(r, key) for r in rs)

            print(f"| {run.title} | {label} | {med('wait_p95'):,.1f} | "
                  f"{med('worker_seconds'):,.0f} | {med('scale_events'):.0f} | "
                  f"{med('churn_ups'):.0f} |")
    for name, fn in originals.items():
        setattr(churn, name, fn)


if __name__ == "__main__":
    main()
