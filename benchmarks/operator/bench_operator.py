"""Operator benchmarks against the kmock emulator and a real redis-server.

    .venv/bin/python benchmarks/operator/bench_operator.py latency [--trials 40 --poll 1]
    .venv/bin/python benchmarks/operator/bench_operator.py scale [--queueworkers 1000 --poll 2]

latency: time from a backlog appearing in Redis to the Deployment's replicas
  being patched, over many trials started at random phases of the poll.
scale: one operator process (the real `queueworker operator` CLI, in its own
  process so only it is measured) handling N QueueWorkers; the emulator and
  Redis run in this process / their own. Reports the operator's CPU (cores)
  and RSS over a measuring window after a warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import redis  # noqa: E402

from support.operator_cluster import Cluster, wait_for  # noqa: E402
from support.operator_specs import clear_queue, fast_config, push_jobs, spec  # noqa: E402
from support.redis_server import RedisServer, free_port  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


async def latency(args: argparse.Namespace) -> None:
    server = RedisServer().start()
    config = fast_config()
    config.status_refresh_seconds = 5.0
    try:
        async with Cluster(config=config, controllers=False) as c:
            await c.start_operator()
            names = [f"lat{i}" for i in range(args.queueworkers)]
            for name in names:
                await c.create_qw(name, spec(server.url, [name], poll=args.poll,
                                             idleSecondsBeforeZero=0,
                                             scaleDown={"stabilizationSeconds": 0}))
            for name in names:
                await wait_for(lambda n=name: c.replicas(n) == 0, 30, f"{name} at 0")
            samples: list[float] = []
            for trial in range(args.trials):
                name = names[trial % len(names)]
                await wait_for(lambda n=name: c.replicas(n) == 0, 30, f"{name} back at 0")
                await asyncio.sleep(random.uniform(0, args.poll))  # a random poll phase
                push_jobs(server.url, name, 5)
                t0 = time.monotonic()
                await wait_for(lambda n=name: (c.replicas(n) or 0) > 0, 30, "a scale-up",
                               interval=0.005)
                samples.append(time.monotonic() - t0)
                clear_queue(server.url, name)
            p50, p95 = pct(samples, 0.5), pct(samples, 0.95)
            print(f"latency backlog->replicas patched, poll {args.poll}s, "
                  f"{args.queueworkers} QueueWorkers, {len(samples)} trials: "
                  f"p50 {p50:.3f}s ({p50 / args.poll:.2f} polls), "
                  f"p95 {p95:.3f}s ({p95 / args.poll:.2f} polls), "
                  f"max {max(samples):.3f}s, mean {statistics.mean(samples):.3f}s")
    finally:
        server.cleanup()


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def proc_mem_mb(pid: int) -> tuple[float, float]:
    rss = hwm = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    return rss, hwm


def api_calls(port: int) -> dict[str, float]:
    """The operator's own API calls so far, by operation (from its metrics)."""
    out: dict[str, float] = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as resp:
        for line in resp.read().decode().splitlines():
            for prefix in ("queueworker_api_requests_total", "queueworker_api_errors_total"):
                if line.startswith(prefix + "{"):
                    op = line.split('operation="', 1)[1].split('"', 1)[0]
                    kind = "errors" if "errors" in prefix else "calls"
                    out[f"{kind} {op}"] = float(line.rsplit(" ", 1)[1])
    return out


def start_operator(kubeconfig: str, metrics_port: int, log_path: str
                   ) -> subprocess.Popen[bytes]:
    profile = os.environ.get("BENCH_PROFILE")  # a cProfile output file, when set
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, *(["-m", "cProfile", "-o", profile] if profile else []),
             "-m", "queueworker.cli", "operator", "--all-namespaces", "--standalone",
             "--metrics-port", str(metrics_port), "--log-level", "warning"],
            env={**os.environ, "KUBECONFIG": kubeconfig}, stdout=log,
            stderr=subprocess.STDOUT)


async def scale(args: argparse.Namespace) -> None:
    server = RedisServer().start()
    tmp = tempfile.mkdtemp(prefix="qw-bench-")
    proc: subprocess.Popen[bytes] | None = None
    try:
        async with Cluster(controllers=False) as c:
            n = args.queueworkers
            busy = set(range(0, n, max(1, n // max(1, args.busy)))) if args.busy else set()
            for i in range(n):
                await c.create_qw(f"qw{i:04d}", spec(server.url, [f"q{i}"], poll=args.poll,
                                                     maxReplicas=20,
                                                     targetBacklogPerReplica=10))
            kubeconfig = c.kubeconfig(os.path.join(tmp, "kubeconfig"))
            metrics_port = free_port()
            proc = start_operator(kubeconfig, metrics_port, os.path.join(tmp, "operator.log"))
            r = redis.Redis.from_url(server.url)
            started = time.monotonic()
            await wait_for(lambda: sum(1 for i in range(n)
                                       if c.deployment(f"qw{i:04d}") is not None) == n,
                           300, "every Deployment", interval=1.0)
            print(f"{n} Deployments created in {time.monotonic() - started:.1f}s")

            async def churn() -> None:
                # Busy queues change every second so the loops keep deciding and writing.
                while True:
                    for i in busy:
                        r.lpush(f"qw:{{q{i}}}:waiting",
                                *[f"{int(time.time() * 1000):013d}-{k}"
                                  for k in range(random.randint(1, 20))])
                        if random.random() < 0.5:
                            r.ltrim(f"qw:{{q{i}}}:waiting", 0, random.randint(0, 100))
                    await asyncio.sleep(1.0)

            task = asyncio.create_task(churn())
            await asyncio.sleep(args.warmup)
            calls0 = api_calls(metrics_port)
            conns0 = int(r.info("stats")["total_connections_received"])
            cpu0, t0 = proc_cpu_seconds(proc.pid), time.monotonic()
            requests0 = c.k.handled
            await asyncio.sleep(args.measure)
            cpu1, t1 = proc_cpu_seconds(proc.pid), time.monotonic()
            requests1 = c.k.handled
            rss, hwm = proc_mem_mb(proc.pid)
            task.cancel()
            calls1 = api_calls(metrics_port)
            conns1 = int(r.info("stats")["total_connections_received"])
            print(f"  redis connections opened: {(conns1 - conns0) / (t1 - t0):.1f}/s, "
                  f"commands: {r.info('stats')['instantaneous_ops_per_sec']}/s now")
            for op, count in sorted(calls1.items()):
                print(f"  {op}: {(count - calls0.get(op, 0)) / (t1 - t0):.1f}/s")
            scaled = sum(1 for i in busy if (c.replicas(f"qw{i:04d}") or 0) > 0)
            print(f"{n} QueueWorkers at poll {args.poll}s ({len(busy)} with changing backlog,"
                  f" {scaled} of them scaled up): operator CPU "
                  f"{(cpu1 - cpu0) / (t1 - t0):.3f} cores over {t1 - t0:.0f}s, "
                  f"RSS {rss:.0f} MB (peak {hwm:.0f} MB), API requests "
                  f"{(requests1 - requests0) / (t1 - t0):.1f}/s")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--trials", type=int, default=40)
    lat.add_argument("--poll", type=float, default=1.0)
    lat.add_argument("--queueworkers", type=int, default=8)
    sc = sub.add_parser("scale")
    sc.add_argument("--queueworkers", type=int, default=1000)
    sc.add_argument("--poll", type=float, default=2.0)
    sc.add_argument("--busy", type=int, default=100)
    sc.add_argument("--warmup", type=float, default=30.0)
    sc.add_argument("--measure", type=float, default=60.0)
    args = p.parse_args()
    asyncio.run(latency(args) if args.what == "latency" else scale(args))


if __name__ == "__main__":
    main()
