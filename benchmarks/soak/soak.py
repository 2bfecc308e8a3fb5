"""Soak: steady load through `queueworker local` for N minutes; RSS and Redis growth.

    .venv/bin/python benchmarks/soak/soak.py --minutes 10 --rate 40

Runs the real local mode (the operator's engine with worker processes) against
an embedded redis-server (AOF on), enqueues `rate` jobs/s (a share of them fail
on purpose), samples every `--sample-seconds`: RSS of local mode and of each
worker process, Redis DBSIZE and used_memory, failed-store size. At the end it
drains, checks every job was settled (done or failed; none lost) and prints a
markdown report (growth = median of the last quarter minus median of the
second quarter, so start-up warm-up is not counted as a leak).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import statistics
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
QUEUE = "soak"


def failed_max_flag(n: int) -> list[str]:
    """The worker's failed-store cap flag, when this build has it."""
    out = subprocess.run([sys.executable, "-m", "queueworker.cli", "worker", "--help"],
                         capture_output=True, text=True).stdout
    return ["--failed-max-count", str(n)] if "--failed-max-count" in out else []


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            out += [int(x) for x in text]
    except OSError:
        pass
    return out


def manifest(url: str, result_ttl: int, failed_max: int) -> dict[str, Any]:
    return {
        "apiVersion": "queueworker.dev/v1alpha1", "kind": "QueueWorker",
        "metadata": {"name": "soak"},
        "spec": {
            "redis": {"url": url},
            "queues": [{"name": QUEUE}],
            "scaling": {"minReplicas": 1, "maxReplicas": 4, "targetBacklogPerReplica": 20,
                        "pollIntervalSeconds": 1, "idleSecondsBeforeZero": 30},
            "drain": {"graceSeconds": 20, "deadlineMarginSeconds": 5},
            "template": {"spec": {"containers": [{
                "name": "worker", "image": "local",
                "args": ["queueworker", "worker", "--handler", "soak_jobs:handle",
                         "--concurrency", "8", "--result-ttl", str(result_ttl),
                         *failed_max_flag(failed_max)],
                "env": [{"name": "PYTHONPATH", "value": str(HERE)}],
            }]}},
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=40.0, help="jobs per second")
    ap.add_argument("--fail-ratio", type=float, default=0.05)
    ap.add_argument("--sample-seconds", type=float, default=10.0)
    ap.add_argument("--result-ttl", type=int, default=30)
    ap.add_argument("--failed-max", type=int, default=500)
    ap.add_argument("--json", type=Path, help="also write the samples here")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="qw-soak-"))
    server = EmbeddedRedis(data_dir=work / "redis").start()
    client = redis.Redis.from_url(server.url)
    producer = Producer(client)
    qw_file = work / "soak.yaml"
    qw_file.write_text(yaml.safe_dump(manifest(server.url, args.result_ttl, args.failed_max)))
    log = open(work / "local.log", "wb")  # noqa: SIM115 - lives as long as the process
    local = subprocess.Popen([sys.executable, "-m", "queueworker.cli", "local", "-f",
                              str(qw_file), "--no-ui"], stdout=log, stderr=subprocess.STDOUT)
    samples: list[dict[str, Any]] = []
    sent = 0
    rng = random.Random(7)
    start = time.monotonic()
    next_sample = start
    end = start + args.minutes * 60
    try:
        while time.monotonic() < end:
            due = int((time.monotonic() - start) * args.rate)
            batch = []
            while sent < due:
                batch.append({"seconds": rng.uniform(0.001, 0.02),
                              "fail": rng.random() < args.fail_ratio})
                sent += 1
            for payload in batch:
                producer.enqueue(QUEUE, payload, max_tries=1)
            if time.monotonic() >= next_sample:
                workers = children(local.pid)
                info = client.info("memory")
                samples.append({
                    "t": round(time.monotonic() - start, 1),
                    "local_rss_kb": rss_kb(local.pid),
                    "worker_rss_kb": [rss_kb(p) for p in workers],
                    "workers": len(workers),
                    "redis_keys": client.dbsize(),
                    "redis_used_memory": int(info["used_memory"]),
                    "failed_store": client.zcard(keys.failed()),
                    "sent": sent,
                })
                next_sample += args.sample_seconds
            time.sleep(0.05)
        # Let the backlog finish, then drain like a pod's SIGTERM.
        settle_deadline = time.monotonic() + 60
        while time.monotonic() < settle_deadline:
            st = client.hgetall(keys.stats(QUEUE))
            settled = int(st.get(b"completed", 0)) + int(st.get(b"failed", 0))
            if settled >= sent:
                break
            time.sleep(0.5)
    finally:
        local.send_signal(signal.SIGINT)
        try:
            local.wait(60)
        except subprocess.TimeoutExpired:
            local.kill()
    st = {k.decode(): int(v) for k, v in client.hgetall(keys.stats(QUEUE)).items()}
    waiting = client.llen(keys.waiting(QUEUE))
    inflight = client.zcard(keys.inflight(QUEUE))
    orphan_workers = client.zcard(keys.workers())
    final_keys = client.dbsize()
    server.stop()
    report(args, samples, sent, st, waiting, inflight, orphan_workers, final_keys,
           local.returncode)
    if args.json:
        args.json.write_text(json.dumps(samples, indent=1))
    lost = sent - st.get("completed", 0) - st.get("failed", 0) - waiting - inflight
    return 0 if lost == 0 and local.returncode == 0 else 1


def _growth(values: list[float]) -> tuple[float, float]:
    n = len(values)
    if n < 4:
        return (values[0] if values else 0.0, values[-1] if values else 0.0)
    q = n // 4
    return statistics.median(values[q:2 * q]), statistics.median(values[-q:])


def report(args: argparse.Namespace, samples: list[dict[str, Any]], sent: int,
           st: dict[str, int], waiting: int, inflight: int, orphan_workers: int,
           final_keys: int, rc: int | None) -> None:
    local = [s["local_rss_kb"] / 1024 for s in samples]
    worker = [statistics.median(s["worker_rss_kb"]) / 1024 for s in samples if s["worker_rss_kb"]]
    rkeys = [float(s["redis_keys"]) for s in samples]
    rmem = [s["redis_used_memory"] / 1048576 for s in samples]
    failed = [float(s["failed_store"]) for s in samples]
    lost = sent - st.get("completed", 0) - st.get("failed", 0) - waiting - inflight
    print(f"## Soak: {args.minutes:g} min at {args.rate:g} jobs/s "
          f"({args.fail_ratio:.0%} fail on purpose), result TTL {args.result_ttl} s, "
          f"failed store max {args.failed_max}\n")
    print(f"jobs sent {sent}, completed {st.get('completed', 0)}, failed {st.get('failed', 0)}, "
          f"left waiting {waiting}, in flight {inflight}, **lost {lost}**; "
          f"local mode exit code {rc}; worker heartbeats left in Redis after drain "
          f"{orphan_workers}; keys after drain {final_keys}\n")
    print("| series | 2nd quarter median | last quarter median | max |")
    print("|---|---|---|---|")
    for name, vals, unit in (("local mode (engine) RSS", local, "MiB"),
                             ("worker RSS (median of processes)", worker, "MiB"),
                             ("Redis keys", rkeys, ""), ("Redis used_memory", rmem, "MiB"),
                             ("failed store size", failed, "")):
        if not vals:
            continue
        a, b = _growth(vals)
        print(f"| {name} | {a:.1f} {unit} | {b:.1f} {unit} | {max(vals):.1f} {unit} |")


if __name__ == "__main__":
    sys.exit(main())
