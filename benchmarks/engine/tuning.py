"""How scaling knobs trade wait for cost on the CPU traces (policy ours only).

    .venv/bin/python benchmarks/engine/tuning.py

Each variant is cpu-worker.yaml with the scaling fields shown changed; pods run
one job at a time in every variant, so only the decisions differ.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from queueworker.operator.validation import parse_spec
from queueworker.simulate import trace as simulate_trace
from queueworker.simulate.cli import load_spec, simulate

TRACES = Path(__file__).resolve().parents[2] / "benchmarks" / "traces"
VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("defaults (cpu-worker.yaml)", {}),
    ("scaleUp.stabilizationSeconds 10", {"scaleUp": {"stabilizationSeconds": 10}}),
    ("scaleUp.stabilizationSeconds 20", {"scaleUp": {"stabilizationSeconds": 20}}),
    ("targetBacklogPerReplica 2", {"targetBacklogPerReplica": 2}),
    ("policy waitTime, target 10 s", {"policy": "waitTime", "targetWaitSeconds": 10}),
    ("scaleDown.stabilizationSeconds 300 (the HPA's)",
     {"scaleDown": {"stabilizationSeconds": 300}}),
]


def main() -> None:
    base = load_spec(str(TRACES / "cpu-worker.yaml")).model_dump(
        by_alias=True, exclude_none=True, mode="json")
    print("| trace | variant | wait p95 s | worker-seconds | scale events | peak replicas |")
    print("|---|---|---|---|---|---|")
    for trace in ("steady", "diurnal", "bursts"):
        jobs = simulate_trace.load(TRACES / f"{trace}.csv", "default")
        for name, change in VARIANTS:
            raw = copy.deepcopy(base)
            raw["scaling"].update(change)
            r = simulate(parse_spec(raw), jobs, "ours", 20, concurrency=1)
            print(f"| {trace} | {name} | {r.wait_p95:.1f} | {r.worker_seconds:,.0f} | "
                  f"{r.scale_events} | {r.max_replicas} |")


if __name__ == "__main__":
    main()
