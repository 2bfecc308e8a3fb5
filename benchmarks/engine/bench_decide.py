"""Cost of one `decide` call, with memory carried between calls as the operator does.

Run: .venv/bin/python benchmarks/engine/bench_decide.py [--calls N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

from queueworker.engine import GPUCapacity, Observation, PodState, QueueDepth, decide
from queueworker.operator.validation import parse_spec

SPEC = parse_spec(
    {
        "redis": {"url": "redis://localhost:6379/0"},
        "queues": [{"name": "a"}, {"name": "b"}],
        "template": {"spec": {"containers": [{"name": "w", "image": "x"}]}},
        "scaling": {
            "maxReplicas": 50,
            "policy": "waitTime",
            "scaleUp": {"rateLimit": {"pods": 4, "periodSeconds": 15}},
            "scaleDown": {"stabilizationSeconds": 300,
                          "rateLimit": {"percent": 50, "periodSeconds": 60}},
        },
        "gpu": {"capToFreeCapacity": True},
    }
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--pods", type=int, default=20)
    args = ap.parse_args()
    rng = random.Random(1)
    memory: dict[str, Any] | None = None
    current = 5
    samples: list[float] = []
    enq = done = 0
    for i in range(args.calls):
        enq += rng.randint(0, 20)
        done = max(done, enq - rng.randint(0, 40))
        pods = tuple(PodState(f"p{j}", busy=rng.random() < 0.6) for j in range(args.pods))
        qs = (
            QueueDepth("a", "native", rng.randint(0, 80), rng.randint(0, 20),
                       enqueued_total=enq, completed_total=done),
            QueueDepth("b", "native", rng.randint(0, 10), 0, enqueued_total=0,
                       completed_total=0),
        )
        obs = Observation(i * 5.0, qs, current, current, pods,
                          GPUCapacity("nvidia.com/gpu", 1, 40, 12))
        t0 = time.perf_counter()
        d = decide(SPEC, obs, memory)
        samples.append(time.perf_counter() - t0)
        memory, current = d.memory, d.desired
    us = [x * 1e6 for x in samples]
    # The machine is shared: besides the whole run, report the quietest batch
    # of 1,000 consecutive calls (as timeit reports its best repeat).
    batches = [us[i : i + 1000] for i in range(0, len(us) - 999, 1000)]
    best = min(batches, key=statistics.fmean)
    ordered = sorted(us)
    print(f"decide: {args.calls} calls, {args.pods} pods: mean {statistics.fmean(us):.1f} us, "
          f"p50 {ordered[len(us) // 2]:.1f} us, p99 {ordered[int(len(us) * 0.99)]:.1f} us; "
          f"quietest 1000-call batch: mean {statistics.fmean(best):.1f} us, "
          f"p99 {sorted(best)[989]:.1f} us")


if __name__ == "__main__":
    main()
