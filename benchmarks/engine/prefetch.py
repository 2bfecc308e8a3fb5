"""Workers that prefetch (a fixed `--prefetch N`) and the engine, seeds 1-5.

    nice -n 19 .venv/bin/python benchmarks/engine/prefetch.py

A prefetched job holds a lease, so the queue counts it in flight, but it runs
only on the pod that took it. Rows: ours told how many jobs each pod holds
(the beat's `buffered`), ours not told (a beat without it), and KEDA+HPA with
the same grace, on the steady and audio traces. The native worker's default
(adaptive) prefetch takes none for jobs of more than a few milliseconds: that
is prefetch 0.
"""

from __future__ import annotations

from run_simulations import RUNS, TRACES, cell, trace

from queueworker.simulate.cli import Result, load_spec, simulate

CASES = [("ours, told", "ours", True), ("ours, not told", "ours", False),
         ("keda-hpa-same-grace", "keda-hpa-same-grace", True)]


def main() -> None:
    print("| trace | prefetch | policy | wait p95 s | wait mean s | worker-seconds | "
          "scale events | never-ran pods |")
    print("|---|---|---|---|---|---|---|---|")
    for run in (r for r in RUNS if r.spec in ("cpu-worker.yaml", "audio-worker.yaml")
                and r.trace in ("steady", "audio")):
        spec = load_spec(str(TRACES / run.spec))
        for prefetch in (0, 1):
            for label, policy, told in CASES:
                rs: list[Result] = [
                    simulate(spec, trace(run.trace, s), policy, run.start, run.gpus, seed=s,
                             concurrency=run.concurrency, prefetch=prefetch,
                             beats_say_buffered=told) for s in range(1, 6)]
                print(f"| {run.trace} | {prefetch} | {label} | "
                      f"{cell([r.wait_p95 for r in rs])} | {cell([r.wait_mean for r in rs])} | "
                      f"{cell([r.worker_seconds for r in rs], '{:,.0f}')} | "
                      f"{cell([r.scale_events for r in rs], '{:.0f}')} | "
                      f"{cell([r.never_ran_pods for r in rs], '{:.0f}')} |")


if __name__ == "__main__":
    main()
