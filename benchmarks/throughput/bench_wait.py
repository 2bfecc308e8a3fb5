"""Latency of ``Producer.wait``: enqueue -> result delivered, for a no-op job (results.py).

    .venv/bin/python benchmarks/throughput/bench_wait.py --jobs 2000 --clients 1,8

One local redis-server (no persistence), one worker process started with its
normal CLI (``queueworker worker --handler qw_tasks:echo``, defaults otherwise).
Each client thread repeats: enqueue a job, ``wait`` for its result, and times the
pair; ``--clients`` runs the measurement with that many threads enqueueing and
waiting at once. Prints p50/p90/p99/max per client count and writes
benchmarks/out/wait.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from bench import start_redis  # noqa: E402 (the sibling module, after sys.path)

from queueworker.worker.producer import Producer  # noqa: E402


def measure(url: str, jobs: int, clients: int) -> list[float]:
    per_client = max(1, jobs // clients)
    out: list[float] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        p = Producer(redis.Redis.from_url(url, decode_responses=True), keyring=None)
        mine = []
        for n in range(per_client):
            t0 = time.perf_counter()
            job_id = p.enqueue("bench", {"i": i, "n": n})
            assert p.wait(job_id, timeout=30) == {"i": i, "n": n}
            mine.append(time.perf_counter() - t0)
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--clients", default="1,8")
    args = ap.parse_args()
    proc, url, _ = start_redis()
    env = dict(os.environ, QUEUEWORKER_REDIS_URL=url,
               PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    worker = subprocess.Popen([sys.executable, "-m", "queueworker.cli", "worker", "--queue",
                               "bench", "--handler", "qw_tasks:echo", "--log-level", "warning"],
                              cwd=HERE, env=env)
    rows = []
    try:
        measure(url, 50, 1)  # warm-up: the worker is up, scripts are loaded
        for clients in (int(c) for c in args.clients.split(",")):
            xs = measure(url, args.jobs, clients)
            row = {"clients": clients, "jobs": len(xs),
                   "p50_ms": round(pct(xs, 0.50) * 1000, 2),
                   "p90_ms": round(pct(xs, 0.90) * 1000, 2),
                   "p99_ms": round(pct(xs, 0.99) * 1000, 2),
                   "max_ms": round(max(xs) * 1000, 2),
                   "mean_ms": round(statistics.fmean(xs) * 1000, 2)}
            rows.append(row)
            print(f"| {clients} | {len(xs)} | {row['p50_ms']} | {row['p90_ms']} | "
                  f"{row['p99_ms']} | {row['max_ms']} |", flush=True)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        proc.terminate()
        proc.wait(10)
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "wait.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
