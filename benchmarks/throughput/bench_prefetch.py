"""Does a busy worker hoard jobs a new replica could run? (issue 15, item 7)

    .venv/bin/python benchmarks/throughput/bench_prefetch.py [--jobs 4] [--seconds 1] [--runs 3]

One local redis-server. Enqueue N jobs of S seconds, start worker A (concurrency 2), and
0.3 s later worker B (the replica the autoscaler just added), both with their normal CLI;
time from A's start until every job is done. Once with the default prefetch (adaptive),
once with ``--prefetch 2`` (the old default, = concurrency) and once with ``--prefetch 0``.
Prints a Markdown table (median and range of the runs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import start_redis  # noqa: E402 (the throughput bench's redis-server)

MODES = {"default (adaptive)": [], "--prefetch 2 (the old default)": ["--prefetch", "2"],
         "--prefetch 0": ["--prefetch", "0"]}


def once(url: str, extra: list[str], n: int, seconds: float) -> float:
    from queueworker.worker.producer import Producer
    r = redis.Redis.from_url(url)
    r.flushall()
    Producer(r).enqueue_many("pf", [{"s": seconds}] * n)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH",
                                                                              "")]))
    cmd = [sys.executable, "-m", "queueworker.cli", "worker", "--queue", "pf", "--handler",
           "qw_tasks:sleep", "--concurrency", "2", "--redis-url", url, "--log-level",
           "warning", *extra]
    t0 = time.monotonic()
    procs = [subprocess.Popen(cmd, env=env, cwd=HERE)]
    time.sleep(0.3)
    procs.append(subprocess.Popen(cmd, env=env, cwd=HERE))
    try:
        while int(r.hget("qw:{pf}:stats", "completed") or 0) < n:
            if time.monotonic() - t0 > 60:
                raise RuntimeError("jobs not done within 60 s")
            time.sleep(0.01)
        return time.monotonic() - t0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    proc, url, tmp = start_redis()
    times: dict[str, list[float]] = {m: [] for m in MODES}
    try:
        for _ in range(args.runs):
            for mode, extra in MODES.items():
                times[mode].append(once(url, extra, args.jobs, args.seconds))
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"| prefetch | all {args.jobs} jobs of {args.seconds:g} s done after, median of "
          f"{args.runs} (min-max) |\n|---|---|")
    for mode, ts in times.items():
        print(f"| {mode} | {statistics.median(ts):.2f} s ({min(ts):.2f}-{max(ts):.2f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
