"""Chaos: jobs through `queueworker local` while everything that can fail does.

    .venv/bin/python benchmarks/chaos/chaos.py --jobs 3000 --seconds 180

During the run, on a schedule: SIGKILL a random worker process every
`--kill-every` seconds; restart the redis-server (AOF, fsync always) every
`--restart-every` seconds; SIGSTOP Redis for `--pause` seconds (longer than
the 5 s client timeouts) every `--pause-every` seconds; and every
`--crash-every` seconds SIGKILL local mode itself *and all its workers* (a
machine crash mid-scale), then start a fresh local mode. At the end: every job
done at least once (lost = 0), duplicates counted and checked against
redeliveries (a job may run twice only if its worker died with it in flight).
Prints a markdown summary.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
import yaml

from queueworker.local.embedded_redis import EmbeddedRedis
from queueworker.worker import keys
from queueworker.worker.producer import Producer

HERE = Path(__file__).resolve().parent


def children(pid: int) -> list[int]:
    out: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def manifest(url: str) -> dict[str, Any]:
    return {
        "apiVersion": "queueworker.dev/v1alpha1", "kind": "QueueWorker",
        "metadata": {"name": "chaos"},
        "spec": {
            "redis": {"url": url},
            "queues": [{"name": "chaos-high"}, {"name": "chaos"}],
            "scaling": {"minReplicas": 0, "maxReplicas": 6, "targetBacklogPerReplica": 10,
                        "pollIntervalSeconds": 0.5, "idleSecondsBeforeZero": 10,
                        "scaleDown": {"stabilizationSeconds": 2}},
            "drain": {"graceSeconds": 20, "deadlineMarginSeconds": 5},
            "template": {"spec": {"containers": [{
                "name": "worker", "image": "local",
                "args": ["queueworker", "worker", "--handler", "chaos_jobs:handle",
                         "--concurrency", "4", "--lease", "3", "--reap-interval", "0.5",
                         "--max-lost", "0"],
                "env": [{"name": "PYTHONPATH", "value": str(HERE)}],
            }]}},
        },
    }


class Local:
    def __init__(self, qw: Path, log: Path) -> None:
        self.qw, self.log = qw, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        fh = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([sys.executable, "-m", "queueworker.cli", "local", "-f",
                                      str(self.qw), "--no-ui"], stdout=fh,
                                     stderr=subprocess.STDOUT)
        self.starts += 1

    def crash(self) -> int:
        """SIGKILL local mode and every worker it started: a machine crash."""
        assert self.proc is not None
        victims = children(self.proc.pid)
        self.proc.kill()
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        return len(victims)

    def workers(self) -> list[int]:
        return children(self.proc.pid) if self.proc else []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=180)
    ap.add_argument("--kill-every", type=float, default=2.0)
    ap.add_argument("--restart-every", type=float, default=45.0)
    ap.add_argument("--pause-every", type=float, default=60.0)
    ap.add_argument("--pause", type=float, default=8.0)
    ap.add_argument("--crash-every", type=float, default=50.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="qw-chaos-"))
    server = EmbeddedRedis(data_dir=work / "redis").start()
    client = redis.Redis.from_url(server.url, socket_timeout=5,
                                  retry_on_error=[redis.ConnectionError, redis.TimeoutError])
    producer = Producer(client)
    qw = work / "chaos.yaml"
    qw.write_text(yaml.safe_dump(manifest(server.url)))
    local = Local(qw, work / "local.log")
    local.start()
    counts = {"kills": 0, "restarts": 0, "pauses": 0, "crashes": 0, "crash_victims": 0}
    sent = 0
    start = time.monotonic()
    nxt = {"kill": start + args.kill_every, "restart": start + args.restart_every,
           "pause": start + args.pause_every, "crash": start + args.crash_every}

    def enqueue_some(k: int) -> None:
        nonlocal sent
        for _ in range(k):
            if sent >= args.jobs:
                return
            queue = "chaos-high" if rng.random() < 0.2 else "chaos"
            for attempt in range(100):  # Redis may be down or paused right now
                try:
                    producer.enqueue(queue, {"n": sent, "seconds": round(rng.uniform(0.02, 0.5),
                                                                         3)}, max_tries=20)
                    break
                except (redis.ConnectionError, redis.TimeoutError):
                    time.sleep(0.2 * (attempt + 1))
            sent += 1

    per_tick = max(1, int(args.jobs / (args.seconds * 0.8) * 0.2))
    while time.monotonic() - start < args.seconds:
        enqueue_some(per_tick)
        now = time.monotonic()
        if now >= nxt["kill"]:
            workers = local.workers()
            if workers:
                try:
                    os.kill(rng.choice(workers), signal.SIGKILL)
                    counts["kills"] += 1
                except ProcessLookupError:
                    pass
            nxt["kill"] = now + args.kill_every
        if now >= nxt["restart"]:
            server.restart()
            counts["restarts"] += 1
            nxt["restart"] = now + args.restart_every
        if now >= nxt["pause"] and server.pid:
            os.kill(server.pid, signal.SIGSTOP)
            time.sleep(args.pause)
            os.kill(server.pid, signal.SIGCONT)
            counts["pauses"] += 1
            nxt["pause"] = time.monotonic() + args.pause_every
        if now >= nxt["crash"] and local.workers():  # crash mid-scale, with workers busy
            counts["crash_victims"] += local.crash()
            counts["crashes"] += 1
            local.start()
            nxt["crash"] = now + args.crash_every
        time.sleep(0.2)
    enqueue_some(args.jobs)
    deadline = time.monotonic() + 180
    while client.scard("chaos:done") < sent and time.monotonic() < deadline:
        time.sleep(0.5)
    done = {int(x) for x in client.smembers("chaos:done")}
    runs = {int(k): int(v) for k, v in client.hgetall("chaos:runs").items()}
    deliveries: dict[int, int] = {}
    for key in client.scan_iter(match=keys.job("*")):
        h = client.hgetall(key)
        if b"payload" in h:
            deliveries[int(json.loads(h[b"payload"])["n"])] = int(h.get(b"deliveries", 1))
    assert local.proc is not None
    local.proc.send_signal(signal.SIGINT)
    try:
        code = local.proc.wait(60)
    except subprocess.TimeoutExpired:
        code = -1
        local.crash()
    server.stop()
    lost = sorted(set(range(sent)) - done)
    twice = sorted(n for n, r in runs.items() if r > 1)
    unexplained = [n for n in twice if deliveries.get(n, 1) <= 1]
    redelivered = sum(1 for d in deliveries.values() if d > 1)
    print(f"## Chaos: {sent} jobs in {args.seconds:g} s (seed {args.seed})\n")
    print("| jobs | worker SIGKILLs | Redis restarts | Redis SIGSTOP pauses | local-mode "
          "crashes (workers killed with it) | lost | duplicates | duplicates without a "
          "redelivery | redelivered jobs | final drain exit |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {sent} | {counts['kills']} | {counts['restarts']} | {counts['pauses']} "
          f"({args.pause:g} s each) | {counts['crashes']} ({counts['crash_victims']}) | "
          f"**{len(lost)}** | {len(twice)} | {len(unexplained)} | {redelivered} | {code} |")
    if lost:
        print(f"\nlost: {lost[:50]}")
    return 0 if not lost and not unexplained else 1


if __name__ == "__main__":
    sys.exit(main())
