"""Where one worker process spends its time on no-op jobs: py-spy samples, grouped.

    .venv/bin/pip install -e '.[bench]'   # py-spy
    .venv/bin/python benchmarks/throughput/profile_worker.py --jobs 100000

One local redis-server; N no-op jobs enqueued first; one worker process with its
normal CLI (``--handler qw_tasks:noop --stop-when-empty``) run under ``py-spy
record`` (a sampling profiler: no tracing overhead inside the worker). Each sample
goes to the group of the innermost frame that one of ``GROUPS`` claims (a C
call made from our code counts where it was made, e.g. a ``getpid()`` system call
inside ``asyncio.get_running_loop`` counts in the caller's group). Startup (imports)
is counted apart and left out of the shares. Also prints the worker's CPU time per
job and what Redis spent per job (``INFO commandstats``: the scripts' total time and
the commands they ran). Set PYTHONPATH to profile another tree (a ``git archive``
copy of an older commit, its ``worker:operator`` folders first).
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench import fill_queueworker, start_redis  # noqa: E402 (the sibling module)

# (group, test on "function (file:line)") in order: the first that claims a frame wins,
# frames read from the innermost out.
GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("startup (imports)", ("<frozen importlib",)),
    ("idle: waiting for Redis or work (epoll)", ("select (selectors.py", "(selectors.py")),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("FETCH reply -> Job objects", ("parse_fetched", "_fast_job", "_job (", "Job.fetched",
                                    "/job.py")),
    ("Redis client: pack + send a command", ("pack_command", "send_packed_command",
                                             "send_command", "encoders.py",
                                             "selector_events.py:", "transports.py")),
    ("Redis client: read + parse a reply", ("read_response", "parse_response", "hiredis",
                                            "streams.py")),
    ("Redis client: pool, retry, script call", ("/redis/",)),
    ("settle: outcomes -> SETTLE args", ("settle.py", "Broker.settle")),
    ("run one job: execute, watchdog, handler, JSON", ("execute.py", "timeouts.py",
                                                       "progress.py", "control.py",
                                                       "handlers.py", "qw_tasks.py",
                                                       "json/", "results.py", "crypto.py",
                                                       "throttle.py")),
    ("fetcher + buffer", ("fetcher.py", "broker.py")),
    ("slot loop (runtime.py)", ("runtime.py",)),
    ("asyncio scheduling (tasks, events, futures)", ("asyncio/",)),
]


def group_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, marks in GROUPS:
            if any(m in frame for m in marks):
                return name
    return "other"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--rate", type=int, default=500, help="samples per second")
    args = ap.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    proc, url, d = start_redis()
    raw = Path(tempfile.mkdtemp(prefix="qw-profile-")) / "samples.txt"
    try:
        r = redis.Redis.from_url(url)
        fill_queueworker(r, args.jobs)
        r.config_resetstat()
        env = dict(os.environ, QUEUEWORKER_REDIS_URL=url,
                   PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        subprocess.run([spy, "record", "-r", str(args.rate), "-f", "raw", "-o", str(raw),
                        "--", sys.executable, "-m", "queueworker.cli", "worker", "--queue",
                        "bench", "--handler", "qw_tasks:noop", "--stop-when-empty",
                        "--log-level", "warning"], cwd=HERE, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        stats: dict[str, Any] = r.info("commandstats")  # type: ignore[assignment]
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(d, ignore_errors=True)
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        counts[group_of(stack.split(";"))] += int(count)
    shutil.rmtree(raw.parent, ignore_errors=True)
    startup = counts.pop("startup (imports)", 0)
    total = sum(counts.values())
    cpu: float = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"{args.jobs} jobs in {wall:.2f} s (py-spy and startup included); worker and "
          f"py-spy CPU {cpu * 1e6 / args.jobs:.1f} us/job; samples {total} "
          f"(+{startup} startup)\n")
    print("| where | share of samples |\n|---|---|")
    for name, n in counts.most_common():
        print(f"| {name} | {100 * n / total:.1f} % |")
    scripts = sum(v["usec"] for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))
    inner = {k.removeprefix("cmdstat_"): v for k, v in stats.items()
             if k not in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_config|resetstat",
                          "cmdstat_info", "cmdstat_script|load")}
    calls = sum(v["calls"] for v in inner.values())
    print(f"\nRedis: scripts {scripts / args.jobs:.1f} us/job in all, of which the commands "
          f"they ran {sum(v['usec'] for v in inner.values()) / args.jobs:.1f} us/job "
          f"({calls / args.jobs:.2f} commands/job):")
    for name, v in sorted(inner.items(), key=lambda kv: -kv[1]["calls"]):
        if v["calls"] >= args.jobs / 100:
            print(f"  {name}: {v['calls'] / args.jobs:.2f}/job, {v['usec_per_call']:.2f} us each")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
