"""Latency of one job on an idle worker: enqueue -> the handler starts (no-op job).

    .venv/bin/python benchmarks/throughput/bench_latency.py --jobs 1000 [--gap 0.02]

One local redis-server (no persistence), one worker process with its normal CLI
and defaults (``queueworker worker --handler qw_tasks:started``: the handler
returns ``time.time()`` when it starts). One client repeats: sleep ``--gap``
seconds (so the worker is idle again, blocked on its queue's notify list), take
``time.time()``, ``Producer.enqueue``, then ``Producer.wait`` for the result; the
latency is the handler's start time minus the time taken before the enqueue (same
machine, same clock): the enqueue script, the worker's wake-up, its FETCH and the
dispatch to a slot. Prints p50/p90/p99/max and writes benchmarks/out/latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from bench import start_redis  # noqa: E402 (the sibling module, after sys.path)

from queueworker.worker.producer import Producer  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def measure(p: Producer, jobs: int, gap: float) -> list[float]:
    out = []
    for n in range(jobs):
        time.sleep(gap)
        t0 = time.time()
        job_id = p.enqueue("bench", {"n": n})
        started = p.wait(job_id, timeout=30)
        out.append(float(started) - t0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--gap", type=float, default=0.02,
                    help="seconds between jobs (the worker goes idle; default 0.02)")
    args = ap.parse_args()
    proc, url, _ = start_redis()
    env = dict(os.environ, QUEUEWORKER_REDIS_URL=url,
               PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    worker = subprocess.Popen([sys.executable, "-m", "queueworker.cli", "worker", "--queue",
                               "bench", "--handler", "qw_tasks:started", "--log-level",
                               "warning"], cwd=HERE, env=env)
    try:
        p = Producer(redis.Redis.from_url(url, decode_responses=True), keyring=None)
        measure(p, 20, args.gap)  # warm-up: the worker is up, its scripts loaded
        xs = measure(p, args.jobs, args.gap)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        proc.terminate()
        proc.wait(10)
    row = {"jobs": len(xs), "gap_s": args.gap,
           **{f"p{int(q * 100)}_ms": round(pct(xs, q) * 1000, 3) for q in (0.5, 0.9, 0.99)},
           "max_ms": round(max(xs) * 1000, 3)}
    print("| jobs | p50 ms | p90 ms | p99 ms | max ms |\n|---|---|---|---|---|\n"
          f"| {row['jobs']} | {row['p50_ms']} | {row['p90_ms']} | {row['p99_ms']} | "
          f"{row['max_ms']} |")
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "latency.json").write_text(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
