"""One PNG per benchmark run (seed 1): `queueworker simulate --compare --plot`'s
picture, for RESULTS.md. Called by run_simulations.py --plots DIR."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from queueworker.simulate.cli import TAIL_SECONDS, load_spec, simulate
from queueworker.simulate.compare import COMPARED, table
from queueworker.simulate.plot import write
from queueworker.simulate.timeline import Timeline


def write_plot(run: Any, traces: Path, out: Path) -> Path:
    """`run` is run_simulations.Run; returns the file written."""
    from run_simulations import plot_name, trace

    spec = load_spec(str(traces / run.spec))
    jobs = trace(run.trace, 1)
    end = max(j.arrival + j.run_seconds for j in jobs) + TAIL_SECONDS
    results, timelines = [], []
    for policy in COMPARED:
        tl = Timeline.for_duration(end, spec.scaling.poll_interval_seconds)
        results.append(simulate(spec, jobs, policy, run.start, run.gpus, seed=1,
                                concurrency=run.concurrency, timeline=tl))
        timelines.append((policy, tl))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{plot_name(run)}.png"
    write(path, timelines, f"{run.title}, seed 1", table(results))
    return path
