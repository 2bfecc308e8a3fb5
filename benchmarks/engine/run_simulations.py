"""Replay every trace scenario, over several seeds, through every policy; print RESULTS.md tables.

    nice -n 19 .venv/bin/python benchmarks/engine/run_simulations.py [--seeds 5] \\
        [--before before.json] [--json now.json] [--plots DIR] > /tmp/sim.md

Each scenario is generated afresh per seed by benchmarks/traces/generate.py
(seed s: `generate.py --seed s`); the ReplicaSet's tie-breaking (UIDs) of the
KEDA policies uses the same seed. A cell is the median over the seeds with the
range [min-max]. The "published" columns are the figures RESULTS.md printed
before the honest baseline (RESULTS-before-issue14.md: one trace, seed 7, the
old model: KEDA's pods killed with no grace, random victims, waits taken at a
job's first start).

`--before FILE` adds a row "ours before" from a JSON file this script wrote
(`--json`) with another engine first on the path, e.g. the engine before the
restart-horizon rules:

    git archive 9f6f133 operator worker | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before/operator:/tmp/before/worker nice -n 19 .venv/bin/python \\
        benchmarks/engine/run_simulations.py --policies ours --json /tmp/before.json
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import random
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from queueworker.simulate.cli import POLICIES, Result, load_spec, simulate
from queueworker.simulate.trace import TraceJob

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "benchmarks" / "traces"
BEFORE = Path(__file__).with_name("RESULTS-before-issue14.md")
BASE = "keda-hpa-same-grace"  # the baseline the targets are measured against


class Run(NamedTuple):
    trace: str
    spec: str
    start: float  # pod start seconds
    gpus: int | None = None
    concurrency: int | None = None

    @property
    def title(self) -> str:
        extra = f", {self.gpus} GPUs" if self.gpus else ""
        extra += f", {self.concurrency} jobs per pod" if self.concurrency else ""
        return f"{self.trace} with {self.spec} (pod start {self.start:g} s{extra})"

    @property
    def command(self) -> str:
        csv = f"benchmarks/traces/{self.trace}.csv"
        first = ""
        if not (TRACES / f"{self.trace}.csv").exists():  # not shipped: write it first
            csv = f"/tmp/{self.trace}.csv"
            first = f"python benchmarks/traces/generate.py --only {self.trace} --out /tmp\n"
        cmd = (f"{first}queueworker simulate --spec benchmarks/traces/{self.spec} --trace "
               f"{csv} --pod-start-seconds {self.start:g}")
        cmd += f" --gpus {self.gpus}" if self.gpus else ""
        cmd += f" --concurrency {self.concurrency}" if self.concurrency else ""
        return cmd + " --compare"


RUNS: list[Run] = [
    Run("steady", "cpu-worker.yaml", 20),
    Run("steady", "cpu-worker-wait.yaml", 20),
    Run("bursts", "cpu-worker.yaml", 20),
    Run("diurnal", "cpu-worker.yaml", 20),
    Run("diurnal", "cpu-worker-wait.yaml", 20),
    Run("quiet", "cpu-worker.yaml", 20),
    Run("quiet", "cpu-worker-poll1.yaml", 20),
    Run("gpu", "gpu-worker.yaml", 120, 8),
    Run("gpu", "gpu-worker.yaml", 120, 16),
    # issue 14's workloads
    Run("imagegen", "imagegen-worker.yaml", 45),
    Run("audio", "audio-worker.yaml", 120, 16, 2),
    Run("email", "cpu-worker.yaml", 20),
    Run("nightly", "cpu-worker.yaml", 20),
    Run("quietday", "cpu-worker.yaml", 20),
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
    rows = sorted(_generator()[name](random.Random(f"{seed}-{name}")))
    # generate.py writes 3 decimals; round the same way so a file replays identically.
    return [TraceJob(round(t, 3), round(r, 3), q) for t, r, q in rows]


def published(run: Run) -> dict[str, list[str]]:
    """The old table's rows for this run, by policy."""
    head = f"### {run.trace} with {run.spec} ("
    for block in BEFORE.read_text().split("\n### ")[1:]:
        block = "### " + block
        first = block.split("\n")[0]
        if not block.startswith(head) or (run.gpus and f", {run.gpus} GPUs)" not in first):
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


def one_run(run: Run, seeds: Sequence[int], policies: Sequence[str]) -> dict[str, list[Result]]:
    spec = load_spec(str(TRACES / run.spec))
    results: dict[str, list[Result]] = {p: [] for p in policies}
    for seed in seeds:
        jobs = trace(run.trace, seed)
        for policy in policies:
            results[policy].append(simulate(spec, jobs, policy, run.start, run.gpus, seed=seed,
                                            concurrency=run.concurrency))
    return results


def table(results: dict[str, list[Result]], old: dict[str, list[str]]) -> list[str]:
    out = ["| policy | done (unfinished) | wait p95 s | wait mean s | worker-seconds | "
           "interrupted | scale events (ups <= 60 s after a down) | never-ran pods (pod-s) | "
           "published p95 s | published worker-s |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for policy, rs in results.items():
        o = old.get(policy)
        out.append(
            f"| {policy} | {cell([r.completed for r in rs], '{:.0f}')} "
            f"({cell([r.unfinished for r in rs], '{:.0f}')}) | "
            f"{cell([r.wait_p95 for r in rs])} | {cell([r.wait_mean for r in rs])} | "
            f"{cell([r.worker_seconds for r in rs], '{:,.0f}')} | "
            f"{cell([r.interrupted for r in rs], '{:.0f}')} | "
            f"{cell([r.scale_events for r in rs], '{:.0f}')} "
            f"({cell([r.churn_ups for r in rs], '{:.0f}')}) | "
            f"{cell([r.never_ran_pods for r in rs], '{:.0f}')} "
            f"({cell([r.never_ran_seconds for r in rs], '{:,.0f}')}) | "
            f"{o[3] if o else '-'} | {o[5] if o else '-'} |"
        )
    return out


def ratios(ours: Sequence[Result], other: Sequence[Result]) -> dict[str, list[float]]:
    pairs = list(zip(ours, other, strict=True))
    return {
        "p95": [ratio(a.wait_p95, b.wait_p95) for a, b in pairs],
        "cost": [ratio(a.worker_seconds, b.worker_seconds) for a, b in pairs],
        "events": [ratio(a.scale_events, b.scale_events) for a, b in pairs],
    }


def verdict(results: dict[str, list[Result]]) -> tuple[str, list[str]]:
    """Issue 14's targets for one run: (summary row cells, what was missed)."""
    ours = results["ours"]
    r = {k: statistics.median(v) for k, v in ratios(ours, results[BASE]).items()}
    missed = []
    if r["p95"] > 0.5:
        missed.append(f"p95 x{r['p95']:.2f}")
    if r["cost"] > 1.0:
        missed.append(f"cost x{r['cost']:.2f}")
    if r["events"] > 1.5:
        missed.append(f"events x{r['events']:.2f}")
    interrupted = max(x.interrupted for x in ours)
    if interrupted:
        missed.append(f"{interrupted} interrupted")
    before = results.get("ours before")
    if before:
        med = statistics.median
        if (med(x.wait_p95 for x in ours) > med(x.wait_p95 for x in before)
                and med(x.worker_seconds for x in ours) > med(x.worker_seconds for x in before)):
            missed.append("worse than before on wait and cost")
    return f"x{r['p95']:.2f}, x{r['cost']:.2f}, x{r['events']:.2f}", missed


def _load_before(path: str | None) -> dict[str, list[Result]]:
    if not path:
        return {}
    raw = json.loads(Path(path).read_text())
    names = {f.name for f in dataclasses.fields(Result)}
    return {title: [Result(**{k: v for k, v in r.items() if k in names}) for r in rows]
            for title, rows in raw.items()}


def _summary_row(run: Run, results: dict[str, list[Result]]) -> str:
    def three(rs: Sequence[Result]) -> str:
        m = statistics.mean
        return (f"{statistics.median(x.wait_p95 for x in rs):,.1f} / "
                f"{statistics.median(x.worker_seconds for x in rs):,.0f} / "
                f"{statistics.median(x.scale_events for x in rs):.0f} "
                f"(mean {m(x.wait_p95 for x in rs):,.1f} / {m(x.worker_seconds for x in rs):,.0f})")
    rats, missed = verdict(results)
    before = results.get("ours before")
    return (f"| {run.title} | {three(before) if before else '-'} | {three(results['ours'])} | "
            f"{three(results[BASE])} | {rats} | "
            f"{'missed: ' + ', '.join(missed) if missed else 'met'} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--policies", default=",".join(POLICIES))
    ap.add_argument("--runs", default=None, help="trace names, comma-separated (default all)")
    ap.add_argument("--json", default=None, help="write every result here (for --before)")
    ap.add_argument("--before", default=None, help="JSON of another engine: row 'ours before'")
    ap.add_argument("--plots", default=None, help="write a PNG per run (seed 1) into DIR")
    args = ap.parse_args()
    seeds = list(range(1, args.seeds + 1))
    policies = args.policies.split(",")
    wanted = set(args.runs.split(",")) if args.runs else None
    before = _load_before(args.before)
    dump: dict[str, list[dict[str, Any]]] = {}
    summary: list[str] = []
    sections: list[str] = []
    costs: list[float] = []
    for run in RUNS:
        if wanted and run.trace not in wanted:
            continue
        results = one_run(run, seeds, policies)
        dump[run.title] = [dataclasses.asdict(r) for r in results.get("ours", [])]
        if run.title in before:
            results["ours before"] = before[run.title]
        print(f"  done {run.title}", file=sys.stderr)
        if args.plots:
            from plots import write_plot  # benchmarks/engine/plots.py

            write_plot(run, TRACES, Path(args.plots))
        sections += [f"### {run.title}\n", f"seeds {seeds[0]}-{seeds[-1]}; jobs per seed "
                     f"{cell([r.jobs for r in next(iter(results.values()))], '{:.0f}')}\n"]
        sections += [*table(results, published(run)), ""]
        if "ours" in results and BASE in results:
            summary.append(_summary_row(run, results))
            costs.append(statistics.median(ratios(results["ours"], results[BASE])["cost"]))
            for other in (BASE, "keda-hpa", "keda-hpa-inflight", "horizon", "ours before"):
                if other in results and other != "ours":
                    r = ratios(results["ours"], results[other])
                    sections.append(f"ours / {other}: p95 wait x{cell(r['p95'], '{:.2f}')}, "
                                    f"worker-seconds x{cell(r['cost'], '{:.2f}')}, scale events "
                                    f"x{cell(r['events'], '{:.2f}')}  ")
        sections += ["", "```\n" + run.command + "\n```\n"]
        if args.plots:
            rel = os.path.relpath(Path(args.plots) / f"{plot_name(run)}.png",
                                  Path(__file__).parent)
            sections.append(f"![{run.title}]({rel})\n")
    if summary:
        print("| run | ours before: p95 s / worker-s / events | ours now | "
              f"{BASE} | now / {BASE}: p95, worker-s, events | targets |")
        print("|---|---|---|---|---|---|")
        print("\n".join(summary))
        print(f"\nGeometric mean over the runs of the median worker-seconds ratio, ours / "
              f"{BASE}: x{statistics.geometric_mean(costs):.2f}\n")
    print("\n".join(sections))
    if args.json:
        Path(args.json).write_text(json.dumps(dump))


def plot_name(run: Run) -> str:
    spec = run.spec.removesuffix(".yaml")
    return f"{run.trace}-{spec}" + (f"-{run.gpus}gpu" if run.gpus else "")


if __name__ == "__main__":
    main()
