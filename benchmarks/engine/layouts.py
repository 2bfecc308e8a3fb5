"""What the operator sees, per layout: what blindness costs (issue 13 item 7), seeds 1-5.

    nice -n 19 .venv/bin/python benchmarks/engine/layouts.py [--seeds 5]

Replays traces through ours as each layout lets the operator see the fleet
(`queueworker simulate --layout`, the rows of simulate/visibility.py): native
(in-flight ZSET and 5 s heartbeats), RQ (busy exact), Celery (2 s heartbeats,
confirmed before a scale-down), Sidekiq (running jobs and busy as of the last
10 s beat; victims quieted first, removed once a beat says quiet and idle;
`-t` 25 s), unnamed BullMQ workers (a free slot while blocked in CLIENT LIST;
Laravel alike, with one slot), Dramatiq and arq (running jobs counted, busy
unknown; 600 s stop timeout / cancelled at SIGTERM) and `list` (neither). Each
cell: median over the seeds [min-max].
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from run_simulations import RUNS, TRACES, Run, cell, trace

from queueworker.operator.api import QueueWorkerSpec
from queueworker.simulate.cli import Result, load_spec, simulate
from queueworker.simulate.visibility import BEATS, TABLE

LAYOUTS = ("native", "rq", "celery", "sidekiq", "bullmq-unnamed", "dramatiq",
           "dramatiq-unnamed", "arq", "arq-cancel", "arq-unnamed", "list")
CASES: list[tuple[Run, int | None]] = [  # a run of run_simulations, and a grace override
    (next(r for r in RUNS if (r.trace, r.spec) == ("steady", "cpu-worker.yaml")), None),
    (next(r for r in RUNS if r.trace == "gpu" and r.gpus == 16), None),
    (next(r for r in RUNS if r.trace == "audio"), None),
    (next(r for r in RUNS if r.trace == "audio"), 120),
]


def with_grace(spec: QueueWorkerSpec, grace: int | None) -> QueueWorkerSpec:
    if grace is None:
        return spec
    margin = min(spec.drain.deadline_margin_seconds, grace // 4)
    drain = spec.drain.model_copy(update={"grace_seconds": grace,
                                          "deadline_margin_seconds": margin})
    return spec.model_copy(update={"drain": drain})


def seen(name: str) -> tuple[str, str]:
    v = TABLE[name]
    running = v.running + (f" ({v.beat_seconds:g} s)" if v.running == BEATS else "")
    busy = v.busy + (f" ({v.beat_seconds:g} s)" if v.busy == BEATS else "")
    return running, busy + (", confirmed" if v.confirmed else "") + (
        ", quieted first" if v.quiet else "")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    seeds = range(1, ap.parse_args(argv).seeds + 1)
    print("| trace | layout | running jobs | busy pods | wait p95 s | worker-seconds | "
          "x native | interrupted | unfinished |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run, grace in CASES:
        spec = with_grace(load_spec(str(TRACES / run.spec)), grace)
        title = f"{run.trace} ({run.spec}, grace {spec.drain.grace_seconds} s)"
        out: dict[str, list[Result]] = {lay: [] for lay in LAYOUTS}
        for seed in seeds:
            jobs = trace(run.trace, seed)
            for lay in LAYOUTS:
                out[lay].append(simulate(spec, jobs, "ours", run.start, run.gpus, seed=seed,
                                         concurrency=run.concurrency, layout=lay))
        base = out["native"]
        for lay, rs in out.items():
            running, busy = seen(lay)
            vs = [r.worker_seconds / b.worker_seconds for r, b in zip(rs, base, strict=True)]
            print(f"| {title} | {lay} | {running} | {busy} | "
                  f"{cell([r.wait_p95 for r in rs])} | "
                  f"{cell([r.worker_seconds for r in rs], '{:,.0f}')} | "
                  f"{cell(vs, '{:.2f}')} | {cell([r.interrupted for r in rs], '{:,.0f}')} | "
                  f"{cell([r.unfinished for r in rs], '{:,.0f}')} |")


if __name__ == "__main__":
    main()
