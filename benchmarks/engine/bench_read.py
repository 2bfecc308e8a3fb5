"""Reading many queues in one pipelined round trip.

Starts its own redis-server, fills N queues of each layout with a few jobs,
then times `read_depths` over all of them (one pipeline, one round trip).
Run: .venv/bin/python benchmarks/engine/bench_read.py [--queues 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import redis
import redis.asyncio

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from queueworker.observe.layouts import read_depths
from queueworker.operator.api import QueueSpec
from queueworker.worker import keys

from support.redis_server import RedisServer

LAYOUTS = ("native", "list", "celery", "rq", "laravel", "bullmq", "sidekiq")


def fill(r: redis.Redis, n: int) -> list[QueueSpec]:
    specs = []
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        layout = LAYOUTS[i % len(LAYOUTS)]
        name = f"q{i}"
        key = {
            "native": keys.waiting(name),
            "list": name,
            "celery": name,
            "rq": f"rq:queue:{name}",
            "laravel": f"queues:{name}",
            "bullmq": f"bull:{name}:wait",
            "sidekiq": f"queue:{name}",
        }[layout]
        pipe.lpush(key, *[f"{int(time.time() * 1000):013d}-{j}" for j in range(i % 5 + 1)])
        specs.append(QueueSpec.model_validate({"name": name, "layout": layout}))
    pipe.execute()
    return specs


async def bench(url: str, specs: list[QueueSpec], rounds: int) -> list[float]:
    client = redis.asyncio.Redis.from_url(url)
    out = []
    try:
        await read_depths(client, specs, time.time())  # connect, warm up
        for _ in range(rounds):
            t0 = time.perf_counter()
            res = await read_depths(client, specs, time.time())
            out.append(time.perf_counter() - t0)
            assert len(res) == len(specs)
    finally:
        await client.aclose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queues", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    server = RedisServer().start()
    try:
        r = redis.Redis.from_url(server.url)
        specs = fill(r, args.queues)
        r.config_resetstat()
        times = asyncio.run(bench(server.url, specs, args.rounds))
        calls = int(r.info("stats")["total_commands_processed"])
    finally:
        server.cleanup()
    ms = sorted(t * 1000 for t in times)
    print(f"read_depths: {args.queues} queues ({len(LAYOUTS)} layouts), {args.rounds} rounds: "
          f"median {statistics.median(ms):.1f} ms, max {ms[-1]:.1f} ms per poll, "
          f"{calls / (args.rounds + 1):.0f} Redis commands per poll in one round trip")


if __name__ == "__main__":
    main()
