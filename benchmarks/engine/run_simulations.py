"""Replay every shipped trace through the three policies and write RESULTS.md tables.

    .venv/bin/python benchmarks/engine/run_simulations.py > benchmarks/engine/simulations.md

Each row is exactly what the printed `queueworker simulate` command prints.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from queueworker.simulate import trace as simulate_trace
from queueworker.simulate.cli import POLICIES, Result, load_spec, simulate

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "benchmarks" / "traces"

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


def command(trace: str, spec: str, start: float, gpus: int | None, policy: str) -> str:
    cmd = (f"queueworker simulate --spec benchmarks/traces/{spec} "
           f"--trace benchmarks/traces/{trace}.csv --policy {policy} "
           f"--pod-start-seconds {start:g}")
    return cmd + (f" --gpus {gpus}" if gpus else "")


def row(r: Result) -> str:
    return (f"| {r.policy} | {r.completed}/{r.jobs} | {r.wait_p50:.1f} | {r.wait_p95:.1f} | "
            f"{r.wait_max:.1f} | {r.worker_seconds:,.0f} | {r.scale_events} | "
            f"{r.interrupted} | {r.max_replicas} |")


def main() -> None:
    for trace, spec_file, start, gpus in RUNS:
        spec = load_spec(str(TRACES / spec_file))
        jobs = simulate_trace.load(TRACES / f"{trace}.csv", spec.queues[0].name)
        title = f"{trace} with {spec_file} ({len(jobs)} jobs, pod start {start:g} s"
        title += f", {gpus} GPUs)" if gpus else ")"
        print(f"### {title}\n")
        print("| policy | jobs done | wait p50 s | wait p95 s | wait max s | worker-seconds "
              "| scale events | interrupted | peak replicas |")
        print("|---|---|---|---|---|---|---|---|---|")
        results = {}
        for policy in POLICIES:
            t0 = time.perf_counter()
            results[policy] = simulate(spec, jobs, policy, start, gpus)
            print(f"  {trace}/{policy}: {time.perf_counter() - t0:.1f}s", file=sys.stderr)
            print(row(results[policy]))
        ours = results["ours"]
        print()
        for other in ("keda-hpa", "keda-hpa-inflight"):
            o = results[other]
            ratio = ours.wait_p95 / o.wait_p95 if o.wait_p95 else float("nan")
            cost = ours.worker_seconds / o.worker_seconds if o.worker_seconds else float("nan")
            print(f"ours / {other}: p95 wait x{ratio:.2f}, worker-seconds x{cost:.2f}  ")
        print()
        print("```")
        for policy in POLICIES:
            print(command(trace, spec_file, start, gpus, policy))
        print("```\n")


if __name__ == "__main__":
    main()
