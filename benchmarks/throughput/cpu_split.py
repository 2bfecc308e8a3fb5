"""Which side bounds one worker process: its CPU time and redis-server's, per job.

    nice -n 19 .venv/bin/python benchmarks/throughput/cpu_split.py [--jobs 100000] [--runs 3]

One local redis-server; N no-op jobs enqueued first; one worker process with its normal
CLI (``--handler qw_tasks:noop --stop-when-empty``). Per run: wall time of the worker
process, its CPU time (``getrusage`` of the child) and redis-server's (``/proc/PID/stat``
utime + stime over the same interval), each per job, and their share of the wall time:
a side near 100 % of the wall is the one that bounds the process. Also Redis' own
per-script time (``INFO commandstats``). ``--stream``: the same for the batched
XREADGROUP loop (``stream_loop.py``; its wall time less the 1 s it blocks before it
exits). Set PYTHONPATH to measure another tree.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import fill_queueworker, fill_stream, start_redis  # noqa: E402 (the sibling module)

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def script_usec(r: redis.Redis) -> float:
    stats = r.info("commandstats")
    return sum(float(v["usec"]) for k, v in stats.items() if k in ("cmdstat_evalsha",
                                                                   "cmdstat_eval"))


QW = ["-m", "queueworker.cli", "worker", "--queue", "bench", "--handler", "qw_tasks:noop",
      "--stop-when-empty", "--log-level", "warning"]


def one(url: str, pid: int, n: int, stream: bool) -> dict[str, float]:
    r = redis.Redis.from_url(url)
    r.flushall()
    (fill_stream if stream else fill_queueworker)(r, n)
    r.config_resetstat()
    env = dict(os.environ, QUEUEWORKER_REDIS_URL=url, BENCH_REDIS_URL=url,
               PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    c0, t0 = proc_cpu(pid), time.monotonic()
    subprocess.run([sys.executable, *(["stream_loop.py"] if stream else QW)], cwd=HERE,
                   env=env, check=True, timeout=600)
    wall, redis_cpu = time.monotonic() - t0 - (1.0 if stream else 0.0), proc_cpu(pid) - c0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    left = r.xpending("plain:stream", "workers")["pending"] if stream else r.llen(
        "qw:{bench}:waiting")
    assert left == 0, left
    return {"wall_us": wall / n * 1e6, "worker_us": worker_cpu / n * 1e6,
            "redis_us": redis_cpu / n * 1e6, "lua_us": script_usec(r) / n,
            "jobs_per_s": n / wall}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--jobs", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--stream", action="store_true", help="the XREADGROUP loop instead")
    a = p.parse_args()
    proc, url, d = start_redis()
    try:
        rows = [one(url, proc.pid, a.jobs, a.stream) for _ in range(a.runs)]
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(d, ignore_errors=True)
    for row in rows:
        print("  ".join(f"{k} {v:,.1f}" for k, v in row.items()))
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    print("median (µs per job, the whole consumer process incl. startup): " + "  ".join(
        f"{k} {v:,.1f}" for k, v in med.items()))
    print(f"share of wall: consumer {med['worker_us'] / med['wall_us']:.0%}, "
          f"redis-server {med['redis_us'] / med['wall_us']:.0%}; CPU per job in all "
          f"{med['worker_us'] + med['redis_us']:.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
