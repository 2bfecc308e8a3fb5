"""Replay every trace scenario, over several seeds, through every policy; print RESULTS.md tables.

    nice -n 10 .venv/bin/python benchmarks/engine/run_simulations.py [--seeds 5] > /tmp/sim.md

Each scenario is generated afresh per seed by benchmarks/traces/generate.py
(seed s: `generate.py --seed s`); the ReplicaSet's tie-breaking (UIDs) of the
KEDA policies uses the same seed. A cell is the median over the seeds with the
range [min-max]. The "published" columns are the figures RESULTS.md printed
before the honest baseline (RESULTS-before-issue14.md: one trace, seed 7, the
old model: KEDA's pods killed with no grace, random victims, waits taken at a
job's first start).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from queueworker.operator.api import QueueWorkerSpec
from queueworker.simulate.cli import POLICIES, Result, load_spec, simulate
from queueworker.simulate.trace import TraceJob

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "benchmarks" / "traces"
BEFORE = Path(__file__).with_name("RESULTS-before-issue14.md")

# (trace, spec, pod start seconds, GPUs)
RUNS: list[tuple[str, str, float, int | None]] = [
    ("steady", "cpu-worker.yaml", 20, None),
    ("steady", "cpu-worker-wait.yaml", 20, None),
    ("bursts", "cpu-worker.yaml", 20, None),
    ("diurnal", "cpu-worker.yaml", 20, None),
    ("diurnal", "cpu-worker-wait.yaml", 20, None),
    ("quiet", "cpu-worker.yaml", 20, None),
    ("quiet", "cpu-worker-poll1.yaml", 20, None),
    ("gpu", "gpu-worker.yaml", 120, 8),
    ("gpu", "gpu-worker.yaml", 120, 16),
]


def _generator() -> dict[str, Callable[..., list[tuple[float, float, str]]]]:
    spec = importlib.util.spec_from_file_location("generate", TRACES / "generate.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {TRACES / 'generate.py'}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    scenarios: dict[str, Callable[..., list[tuple[float, float, str]]]] = mod.SCENARIOS
    return scenarios


def trace(name: str, seed: int) -> list[TraceJob]:
    import random

    rows = sorted(_generator()[name](random.Random(f"{seed}-{name}")))
    # generate.py writes 3 decimals; round the same way so a file replays identically.
    return [TraceJob(round(t, 3), round(r, 3), q) for t, r, q in rows]


def published(trace_name: str, spec_file: str, gpus: int | None) -> dict[str, list[str]]:
    """The old table's rows for this run, by policy."""
    text = BEFORE.read_text()
    head = f"### {trace_name} with {spec_file} ("
    for block in text.split("\n### ")[1:]:
        block = "### " + block
        if not block.startswith(head) or (gpus and f", {gpus} GPUs)" not in block.split("\n")[0]):
            continue
        rows = {}
        for line in block.splitlines():
            cells = [c.strip() for c in line.strip("|").split("|")]
            if line.startswith("| ") and cells[0] in POLICIES:
                rows[cells[0]] = cells
        return rows
    return {}


def cell(values: Sequence[float], fmt: str = "{:,.1f}") -> str:
    med = statistics.median(values)
    lo, hi = min(values), max(values)
    if lo == hi:
        return fmt.format(med)
    return f"{fmt.format(med)} [{fmt.format(lo)}-{fmt.format(hi)}]"


def ratio(a: float, b: float) -> float:
    return a / b if b else (1.0 if a == b else float("inf"))


def one_run(spec: QueueWorkerSpec, trace_name: str, start: float, gpus: int | None,
            seeds: Sequence[int]) -> dict[str, list[Result]]:
    results: dict[str, list[Result]] = {p: [] for p in POLICIES}
    for seed in seeds:
        jobs = trace(trace_name, seed)
        for policy in POLICIES:
            results[policy].append(simulate(spec, jobs, policy, start, gpus, seed=seed))
    return results


def table(results: dict[str, list[Result]], old: dict[str, list[str]]) -> None:
    print("| policy | done (unfinished) | wait p95 s | wait mean s | worker-seconds | "
          "interrupted | scale events (ups <= 60 s after a down) | never-ran pod-s | "
          "published p95 s | published worker-s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for policy, rs in results.items():
        o = old.get(policy)
        print(
            f"| {policy} | {cell([r.completed for r in rs], '{:.0f}')} "
            f"({cell([r.unfinished for r in rs], '{:.0f}')}) | "
            f"{cell([r.wait_p95 for r in rs])} | {cell([r.wait_mean for r in rs])} | "
            f"{cell([r.worker_seconds for r in rs], '{:,.0f}')} | "
            f"{cell([r.interrupted for r in rs], '{:.0f}')} | "
            f"{cell([r.scale_events for r in rs], '{:.0f}')} "
            f"({cell([r.churn_ups for r in rs], '{:.0f}')}) | "
            f"{cell([r.never_ran_seconds for r in rs], '{:,.0f}')} | "
            f"{o[3] if o else '-'} | {o[5] if o else '-'} |"
        )


def targets(results: dict[str, list[Result]]) -> list[float]:
    """Print ours against each KEDA; return the same-grace cost ratios."""
    ours = results["ours"]
    costs: list[float] = []
    for other in ("keda-hpa-same-grace", "keda-hpa", "keda-hpa-inflight"):
        os_ = results[other]
        p95 = [ratio(a.wait_p95, b.wait_p95) for a, b in zip(ours, os_, strict=True)]
        cost = [ratio(a.worker_seconds, b.worker_seconds) for a, b in zip(ours, os_, strict=True)]
        ev = [ratio(a.scale_events, b.scale_events) for a, b in zip(ours, os_, strict=True)]
        if other == "keda-hpa-same-grace":
            costs = cost
        print(f"ours / {other}: p95 wait x{cell(p95, '{:.2f}')}, worker-seconds "
              f"x{cell(cost, '{:.2f}')}, scale events x{cell(ev, '{:.2f}')}  ")
    return costs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    seeds = list(range(1, args.seeds + 1))
    all_costs: list[float] = []
    for trace_name, spec_file, start, gpus in RUNS:
        spec = load_spec(str(TRACES / spec_file))
        title = f"{trace_name} with {spec_file} (pod start {start:g} s"
        title += f", {gpus} GPUs)" if gpus else ")"
        print(f"### {title}\n")
        results = one_run(spec, trace_name, start, gpus, seeds)
        print(f"seeds {seeds[0]}-{seeds[-1]}; jobs per seed "
              f"{cell([r.jobs for r in results['ours']], '{:.0f}')}\n", file=sys.stdout)
        table(results, published(trace_name, spec_file, gpus))
        print()
        all_costs += [statistics.median(targets(results))]
        print()
        cmd = (f"queueworker simulate --spec benchmarks/traces/{spec_file} --trace "
               f"benchmarks/traces/{trace_name}.csv --pod-start-seconds {start:g}")
        print("```\n" + cmd + (f" --gpus {gpus}" if gpus else "") + " --policy POLICY\n```\n")
        print(f"  done {title}", file=sys.stderr)
    geo = statistics.geometric_mean(all_costs) if all_costs else float("nan")
    print(f"Geometric mean over the runs of the median worker-seconds ratio, ours / "
          f"keda-hpa-same-grace: x{geo:.2f}")


if __name__ == "__main__":
    main()
