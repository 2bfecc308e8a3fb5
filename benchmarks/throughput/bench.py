"""No-op job throughput of one worker process: queueworker vs RQ, arq, Celery, Dramatiq,
and two plain redis-py loops (a ceiling), all in the same run on one local redis-server.

    .venv/bin/python benchmarks/throughput/bench.py [--jobs 20000] [--runs 3] [--only NAME,...]
        [--processes N]

For each system and run: flush Redis, enqueue N no-op jobs with the system's own client,
start its worker (its normal CLI, default-ish settings; ``--processes N``: N copies of
it, the multi-process figure), poll Redis every 5 ms for the jobs
not yet finished, and time from the first finished job to the last. Round trips are
``total_reads_processed`` deltas of ``INFO stats`` over the run (one read event per
request or pipeline), commands are ``total_commands_processed`` deltas (they include the
commands that Lua scripts run); the poller's own reads and commands are subtracted.
Prints a Markdown table and writes the raw numbers to benchmarks/out/throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BIN = Path(sys.executable).parent
POLL = 0.005


# ----------------------------------------------------------------------------- systems


def fill_queueworker(r: redis.Redis, n: int) -> None:
    from queueworker.worker.producer import Producer
    Producer(r).enqueue_many("bench", ({"i": i} for i in range(n)))


def remaining_queueworker(pipe: Any) -> int:
    pipe.llen("qw:{bench}:waiting")
    pipe.zcard("qw:{bench}:inflight")
    return 2


def fill_plain(r: redis.Redis, n: int) -> None:
    for start in range(0, n, 1000):
        r.lpush("plain:queue", *(json.dumps({"i": i}) for i in range(start, min(n, start + 1000))))


def remaining_plain(pipe: Any) -> int:
    pipe.llen("plain:queue")
    pipe.eval("local n = 0 for _, k in ipairs(redis.call('KEYS', 'plain:processing:*')) do "
              "n = n + redis.call('LLEN', k) end return n", 0)
    return 2


def fill_stream(r: redis.Redis, n: int) -> None:
    r.xgroup_create("plain:stream", "workers", id="0", mkstream=True)
    for start in range(0, n, 1000):
        with r.pipeline(transaction=False) as pipe:
            for i in range(start, min(n, start + 1000)):
                pipe.xadd("plain:stream", {"p": json.dumps({"i": i})})
            pipe.execute()


def remaining_stream(pipe: Any) -> int:
    pipe.xlen("plain:stream")
    return 1


def fill_rq(r: redis.Redis, n: int) -> None:
    from rq import Queue
    sys.path.insert(0, str(HERE))
    import rq_tasks
    q = Queue("bench", connection=r)
    for start in range(0, n, 1000):
        with r.pipeline() as pipe:
            q.enqueue_many([Queue.prepare_data(rq_tasks.noop, (i,))
                            for i in range(start, min(n, start + 1000))], pipeline=pipe)
            pipe.execute()


def remaining_rq(pipe: Any) -> int:
    pipe.llen("rq:queue:bench")
    pipe.zcard("rq:wip:bench")
    pipe.llen("rq:queue:bench:intermediate")
    return 3


def fill_arq(r: redis.Redis, n: int, url: str) -> None:
    from arq import create_pool
    from arq.connections import RedisSettings

    async def go() -> None:
        pool = await create_pool(RedisSettings.from_dsn(url))
        for start in range(0, n, 200):
            await asyncio.gather(*(pool.enqueue_job("noop", i)
                                   for i in range(start, min(n, start + 200))))
        await pool.aclose()

    asyncio.run(go())


def remaining_arq(pipe: Any) -> int:
    pipe.zcard("arq:queue")
    return 1


def fill_celery(r: redis.Redis, n: int) -> None:
    sys.path.insert(0, str(HERE))
    import celery_tasks
    for i in range(n):
        celery_tasks.noop.apply_async((i,))


def remaining_celery(pipe: Any) -> int:
    pipe.llen("celery")
    pipe.hlen("unacked")
    return 2


def fill_dramatiq(r: redis.Redis, n: int) -> None:
    sys.path.insert(0, str(HERE))
    import dramatiq_tasks
    for i in range(n):
        dramatiq_tasks.noop.send(i)


def remaining_dramatiq(pipe: Any) -> int:
    pipe.hlen("dramatiq:default.msgs")
    return 1


@dataclass
class System:
    name: str
    label: str
    cmd: list[str]
    fill: Callable[[redis.Redis, int], None]
    remaining: Callable[[Any], int]
    exits_by_itself: bool = False
    settings: str = ""
    max_jobs: int | None = None  # a slow system runs fewer jobs (its rate is steady)


def systems(url: str) -> list[System]:
    py = sys.executable
    qw = [py, "-m", "queueworker.cli", "worker", "--queue", "bench", "--log-level", "warning"]
    return [
        System("queueworker", "queueworker (async handler)",
               [*qw, "--handler", "qw_tasks:noop"], fill_queueworker, remaining_queueworker,
               settings="defaults: concurrency 10, prefetch adaptive (300 for no-op jobs), "
                        "lease 30 s renewed, reaper on"),
        System("queueworker-sync", "queueworker (sync handler, thread pool)",
               [*qw, "--handler", "qw_tasks:noop_sync"], fill_queueworker,
               remaining_queueworker, settings="defaults, as above"),
        System("rq", "RQ 3 SimpleWorker",
               [str(BIN / "rq"), "worker", "-w", "rq.worker.SimpleWorker", "--burst", "-u", url,
                "bench"], fill_rq, remaining_rq, exits_by_itself=True,
               settings="--burst, defaults otherwise"),
        System("arq", "arq (defaults)", [str(BIN / "arq"), "arq_tasks.WorkerSettings"],
               lambda r, n: fill_arq(r, n, url), remaining_arq, exits_by_itself=True,
               settings="defaults (max_jobs 10, poll_delay 0.5 s), burst; 500 jobs", max_jobs=500),
        System("arq-fast-poll", "arq (poll_delay 0.01 s)",
               [str(BIN / "arq"), "arq_tasks.FastPollSettings"],
               lambda r, n: fill_arq(r, n, url), remaining_arq, exits_by_itself=True,
               settings="max_jobs 10, poll_delay 0.01 s, burst"),
        System("celery", "Celery (solo pool)",
               [str(BIN / "celery"), "-A", "celery_tasks", "worker", "-P", "solo",
                "--loglevel", "WARNING"], fill_celery, remaining_celery,
               settings="-P solo, defaults otherwise (prefetch 4, early ack)"),
        System("dramatiq", "Dramatiq (1 process, 8 threads)",
               [str(BIN / "dramatiq"), "dramatiq_tasks", "--processes", "1", "--threads", "8"],
               fill_dramatiq, remaining_dramatiq,
               settings="--processes 1 (default threads 8)"),
        System("plain-list", "plain redis-py loop: BLMOVE + LREM (ceiling)",
               [py, "plain_loop.py"], fill_plain, remaining_plain, exits_by_itself=True,
               settings="1 job per BLMOVE"),
        System("plain-stream", "plain redis-py loop: XREADGROUP 100 + XACK/XDEL",
               [py, "stream_loop.py"], fill_stream, remaining_stream, exits_by_itself=True,
               settings="100 per read"),
    ]


# ----------------------------------------------------------------------------- running


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_redis() -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    d = Path(tempfile.mkdtemp(prefix="qw-bench-redis-"))
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port),
                             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(d)], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(200):
        try:
            redis.Redis.from_url(url).ping()
            return proc, url, d
        except redis.ConnectionError:
            time.sleep(0.02)
    raise RuntimeError("redis-server did not start")


def stats(r: redis.Redis) -> tuple[int, int]:
    info = r.info("stats")
    return int(info["total_reads_processed"]), int(info["total_commands_processed"])


@dataclass
class Run:
    seconds: float
    jobs_per_s: float
    round_trips_per_job: float
    commands_per_job: float


@dataclass
class Result:
    system: System
    runs: list[Run] = field(default_factory=list)
    error: str = ""


def run_once(system: System, url: str, n: int, processes: int = 1) -> Run:
    n = min(n, system.max_jobs or n)
    r = redis.Redis.from_url(url)
    r.flushall()
    system.fill(r, n)
    env = dict(os.environ, BENCH_REDIS_URL=url, QUEUEWORKER_REDIS_URL=url,
               PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    polls = 0
    per_poll_cmds = 0

    def remaining() -> int:
        nonlocal polls, per_poll_cmds
        with r.pipeline(transaction=False) as pipe:
            per_poll_cmds = system.remaining(pipe)
            values = pipe.execute()
        polls += 1
        return sum(int(v) for v in values)

    assert remaining() == n, f"{system.name}: expected {n} jobs queued, found {remaining()}"
    reads0, cmds0 = stats(r)
    polls = 0
    logs = ROOT / "benchmarks" / "out" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = open(logs / f"{system.name}.log", "w")  # noqa: SIM115 (closed below)
    procs = [subprocess.Popen(system.cmd, cwd=HERE, env=env, stdout=log,
                              stderr=subprocess.STDOUT) for _ in range(processes)]
    try:
        deadline = time.monotonic() + 600
        left = n
        while left == n:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(f"{system.name} exited early, see {log.name}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{system.name}: no job finished")
            time.sleep(POLL)
            left = remaining()
        t0 = time.monotonic()
        while left > 0:
            if time.monotonic() > deadline or (
                    all(p.poll() is not None for p in procs) and remaining()):
                raise RuntimeError(f"{system.name}: {left} jobs never finished, see {log.name}")
            time.sleep(POLL)
            left = remaining()
        t1 = time.monotonic()
        reads1, cmds1 = stats(r)
    finally:
        for proc in procs:
            if proc.poll() is None and not system.exits_by_itself:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
    # the first finished job counts as time 0: a fetch batch's worth of jobs is not timed,
    # for every system alike (<= 0.1 % of N)
    reads = reads1 - reads0 - polls - 1  # the poller's pipelines and one INFO
    cmds = cmds1 - cmds0 - polls * per_poll_cmds - 1
    return Run(t1 - t0, n / (t1 - t0), reads / n, cmds / n)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=20_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--only", default="", help="comma-separated system names")
    p.add_argument("--processes", type=int, default=1,
                   help="worker processes per system, all on the one Redis (default 1)")
    args = p.parse_args(argv)
    proc, url, d = start_redis()
    os.environ["BENCH_REDIS_URL"] = url  # the peers' task modules read it on import
    results: list[Result] = []
    try:
        chosen = [s for s in systems(url) if not args.only or s.name in args.only.split(",")]
        for rnd in range(args.runs):  # interleave the systems: drift hits all alike
            for s in chosen:
                res = next((x for x in results if x.system is s), None)
                if res is None:
                    res = Result(s)
                    results.append(res)
                if res.error:
                    continue
                try:
                    run = run_once(s, url, args.jobs, args.processes)
                except Exception as exc:
                    res.error = str(exc)[:300]
                    print(f"{s.name}: ERROR {res.error}", file=sys.stderr)
                    continue
                res.runs.append(run)
                print(f"run {rnd + 1} {s.name:<18} {run.jobs_per_s:>9.0f} jobs/s  "
                      f"{run.round_trips_per_job:.3f} round trips/job  "
                      f"{run.commands_per_job:.2f} commands/job", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(d, ignore_errors=True)
    print(table(results, args.jobs))
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    name = "throughput.json" if args.processes == 1 else f"throughput-{args.processes}p.json"
    (out / name).write_text(json.dumps({
        "jobs": args.jobs, "processes": args.processes, "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "redis_py": redis.__version__,
        "results": [{"system": r.system.name, "error": r.error,
                     "runs": [vars(x) for x in r.runs]} for r in results]}, indent=2))
    return 0


def table(results: list[Result], n: int) -> str:
    lines = [f"| system | jobs/s, median of {len(results[0].runs) if results else 0} "
             "(min-max) | round trips / job | commands / job | settings |",
             "|---|---|---|---|---|"]
    for r in results:
        if r.error or not r.runs:
            lines.append(f"| {r.system.label} | error: {r.error} | | | {r.system.settings} |")
            continue
        rates = [x.jobs_per_s for x in r.runs]
        rts = statistics.median(x.round_trips_per_job for x in r.runs)
        cmds = statistics.median(x.commands_per_job for x in r.runs)
        lines.append(f"| {r.system.label} | **{statistics.median(rates):,.0f}** "
                     f"({min(rates):,.0f}-{max(rates):,.0f}) | {rts:.3f} | {cmds:.2f} | "
                     f"{r.system.settings} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
