"""One operator process, thousands of QueueWorkers over many real Redis servers (issue 17).

    nice -n 19 .venv/bin/python benchmarks/operator_scale/bench.py \\
        --queueworkers 5000 --redis 20 --poll 5 --warmup 40 --measure 60

The real `queueworker operator` CLI runs in its own process against the kmock
emulator (tests/support/operator_cluster.py), as in benchmarks/operator/; the
QueueWorkers (one native queue each) are spread round-robin over ``--redis``
real redis-server processes on loopback. ``--busy`` of them get a backlog that
changes every second (they scale up and down); the rest stay idle at 0.

Measured over the window after the warm-up:
- operator CPU (utime + stime from /proc) in cores, and per poll of one
  QueueWorker; RSS and its peak;
- per Redis, from INFO: commands/s, polls/s (one HMGET per native queue per
  poll: commandstats), reply writes/s (``total_writes_processed`` less this
  script's own INFO and churn calls: at least one per pipeline, more where a
  pipeline's query exceeds Redis's 16 KB read buffer), and the connections the
  operator holds (``connected_clients`` less this script's);
- the operator's own count of read pipelines and of the QueueWorker reads they
  carried (``queueworker_redis_pipelines_total``, observe/batch.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks" / "operator"))

import redis  # noqa: E402
from bench_operator import api_calls, proc_cpu_seconds, proc_mem_mb  # noqa: E402

from support.operator_cluster import Cluster, wait_for  # noqa: E402
from support.operator_specs import spec  # noqa: E402
from support.redis_server import RedisServer, free_port  # noqa: E402


def start_operator(kubeconfig: str, metrics_port: int, log_path: str, source: str | None
                   ) -> subprocess.Popen[bytes]:
    """The CLI; ``source``: another checkout's operator/ and worker/ come first on the
    path (``git archive COMMIT operator worker``: the code before a change)."""
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    if source:
        env["PYTHONPATH"] = f"{source}/operator:{source}/worker"
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            ["nice", "-n", "19", sys.executable, "-m", "queueworker.cli", "operator",
             "--all-namespaces", "--standalone", "--metrics-port", str(metrics_port),
             "--log-level", "warning"],
            env=env, stdout=log,
            stderr=subprocess.STDOUT)


def profile(pid: int, path: str, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy (the ``bench`` extra) samples the operator over the window into collapsed
    stacks for profile_summary.py. Blocking (py-spy stops the process for each
    sample): ``--nonblocking`` read torn stacks here, with trivial functions on top."""
    return subprocess.Popen(
        ["nice", "-n", "19", str(Path(sys.executable).parent / "py-spy"), "record",
         "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "50",
         "--format", "raw", "--output", path],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def batch_counters(port: int) -> tuple[float, float]:
    """(pipelines, reads) the operator's read batchers have sent so far."""
    pipelines = reads = 0.0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("queueworker_redis_pipelines_total "):
                pipelines = float(line.split()[1])
            elif line.startswith("queueworker_redis_batched_reads_total "):
                reads = float(line.split()[1])
    return pipelines, reads


def redis_counters(r: redis.Redis) -> dict[str, int]:
    stats = r.info("stats")
    cmds = r.info("commandstats")
    clients = r.info("clients")
    return {"commands": int(stats["total_commands_processed"]),
            "writes": int(stats["total_writes_processed"]),
            "opened": int(stats["total_connections_received"]),
            "polls": int((cmds.get("cmdstat_hmget") or {}).get("calls", 0)),
            "clients": int(clients["connected_clients"])}


async def churn(servers: list[redis.Redis], busy: dict[int, list[int]],
                sent: list[int]) -> None:
    """Busy queues change every second: one pipeline per Redis (counted in ``sent``)."""
    while True:
        for s, queues in busy.items():
            pipe = servers[s].pipeline(transaction=False)
            for i in queues:
                pipe.lpush(f"qw:{{q{i}}}:waiting",
                           *[f"{int(time.time() * 1000):013d}-{k}"
                             for k in range(random.randint(1, 20))])
                pipe.ltrim(f"qw:{{q{i}}}:waiting", 0, random.randint(0, 100))
            pipe.execute()
            sent[s] += 1
        await asyncio.sleep(1.0)


def per_redis(before: list[dict[str, int]], after: list[dict[str, int]], churned: list[int],
              seconds: float, busy: dict[int, list[int]]) -> list[dict[str, float]]:
    out = []
    for s, (b, a) in enumerate(zip(before, after, strict=True)):
        own_cmds = churned[s] * 2 * len(busy.get(s, [])) + 3  # LPUSH + LTRIM, and 3 INFO
        own_writes = churned[s] + 3
        polls = a["polls"] - b["polls"]
        out.append({
            "commands_s": (a["commands"] - b["commands"] - own_cmds) / seconds,
            "reply_writes_s": (a["writes"] - b["writes"] - own_writes) / seconds,
            "polls_s": polls / seconds,
            "operator_connections": a["clients"] - 1,  # less this script's one
            "opened_s": (a["opened"] - b["opened"]) / seconds,
        })
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    servers = [RedisServer().start() for _ in range(args.redis)]
    clients = [redis.Redis.from_url(s.url) for s in servers]
    tmp = tempfile.mkdtemp(prefix="qw-scale-")
    proc: subprocess.Popen[bytes] | None = None
    n = args.queueworkers
    step = max(1, n // args.busy) if args.busy else 0
    busy: dict[int, list[int]] = {}
    for i in range(0, n, step) if step else ():
        busy.setdefault(i % args.redis, []).append(i)
    try:
        async with Cluster(controllers=False) as c:
            created = time.monotonic()
            for i in range(n):
                await c.create_qw(f"qw{i:05d}", spec(servers[i % args.redis].url, [f"q{i}"],
                                                     poll=args.poll, maxReplicas=20,
                                                     targetBacklogPerReplica=10))
            print(f"{n} QueueWorkers created in {time.monotonic() - created:.0f}s", flush=True)
            metrics_port = free_port()
            proc = start_operator(c.kubeconfig(os.path.join(tmp, "kubeconfig")), metrics_port,
                                  os.path.join(tmp, "operator.log"), args.source)
            started = time.monotonic()
            await wait_for(lambda: sum(1 for i in range(n)
                                       if c.deployment(f"qw{i:05d}") is not None) == n,
                           args.start_limit, "every Deployment", interval=2.0)
            ready_s = time.monotonic() - started
            print(f"{n} Deployments created {ready_s:.0f}s after the operator started",
                  flush=True)
            churned = [0] * args.redis
            task = asyncio.create_task(churn(clients, busy, churned))
            await asyncio.sleep(args.warmup)
            calls0 = api_calls(metrics_port)
            batch0 = batch_counters(metrics_port)
            before = [redis_counters(r) for r in clients]
            churned[:] = [0] * args.redis
            spy = profile(proc.pid, args.profile, args.measure) if args.profile else None
            cpu0, t0 = proc_cpu_seconds(proc.pid), time.monotonic()
            await asyncio.sleep(args.measure)
            cpu1, t1 = proc_cpu_seconds(proc.pid), time.monotonic()
            after = [redis_counters(r) for r in clients]
            rss, hwm = proc_mem_mb(proc.pid)
            calls1 = api_calls(metrics_port)
            batch1 = batch_counters(metrics_port)
            task.cancel()
            if spy is not None:
                spy.wait(60)
            seconds = t1 - t0
            rows = per_redis(before, after, churned, seconds, busy)
            polls_s = sum(r["polls_s"] for r in rows)
            cores = (cpu1 - cpu0) / seconds
            scaled = sum(1 for qs in busy.values() for i in qs
                         if (c.replicas(f"qw{i:05d}") or 0) > 0)
            result = {
                "queueworkers": n, "redis": args.redis, "poll_s": args.poll,
                "source": args.source or "this tree",
                "busy": sum(len(q) for q in busy.values()), "busy_scaled_up": scaled,
                "deployments_ready_s": round(ready_s, 1), "window_s": round(seconds, 1),
                "operator_cores": round(cores, 3),
                "operator_cpu_ms_per_poll": round(1000 * cores / polls_s, 3) if polls_s else None,
                "rss_mb": round(rss), "rss_peak_mb": round(hwm),
                "polls_s": round(polls_s, 1), "expected_polls_s": round(n / args.poll, 1),
                "api_calls_s": {op: round((v - calls0.get(op, 0)) / seconds, 2)
                                for op, v in sorted(calls1.items())
                                if v - calls0.get(op, 0) > 0},
                "per_redis_median": {k: round(statistics.median(r[k] for r in rows), 2)
                                     for k in rows[0]},
                "per_redis_max": {k: round(max(r[k] for r in rows), 2) for k in rows[0]},
            }
            pipelines = (batch1[0] - batch0[0]) / seconds
            reads = (batch1[1] - batch0[1]) / seconds
            result["pipelines_s"] = round(pipelines, 2)
            result["pipelines_per_redis_per_poll"] = round(pipelines * args.poll / args.redis, 2)
            result["reads_per_pipeline"] = round(reads / pipelines, 1) if pipelines else None
            return result
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for s in servers:
            s.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--queueworkers", type=int, default=5000)
    p.add_argument("--redis", type=int, default=20)
    p.add_argument("--poll", type=float, default=5.0)
    p.add_argument("--busy", type=int, default=50, help="QueueWorkers with a changing backlog")
    p.add_argument("--warmup", type=float, default=40.0)
    p.add_argument("--measure", type=float, default=60.0)
    p.add_argument("--start-limit", type=float, default=600.0,
                   help="seconds the operator may take to create every Deployment")
    p.add_argument("--source", help="run the operator from this tree (a before/after pair)")
    p.add_argument("--profile", metavar="PATH",
                   help="py-spy the operator over the window into PATH (collapsed stacks)")
    p.add_argument("--json", help="append the result as one JSON line to this file")
    args = p.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
