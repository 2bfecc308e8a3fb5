"""CPU of one QueueWorker poll in the operator's own code: no API server, no kopf.

    nice -n 19 .venv/bin/python benchmarks/operator_scale/tick_cpu.py --loops 1000 --polls 5
    nice -n 19 .venv/bin/python benchmarks/operator_scale/tick_cpu.py --profile

``--loops`` QueueWorkerLoops (controller/loop.py), one native queue each, on one
real redis-server, poll together as the loops of one Redis do (their reads go
out in one pipeline, observe/batch.py); the API client is a stub that answers
at once (a status write costs its JSON body here, not the HTTP round trip).
``--busy`` of the queues get jobs between polls. Printed: process CPU per
poll over ``--polls`` rounds after one warm-up round (the Deployments'
creation), and with ``--profile`` the functions by cumulative time (cProfile).
bench.py measures the whole operator process; this isolates the tick.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import kopf  # noqa: E402
import redis  # noqa: E402
from kopf._core.engines import posting  # noqa: E402

from queueworker.operator import cli_operator  # noqa: E402
from queueworker.operator.cluster import index as kube_index  # noqa: E402
from queueworker.operator.controller import loop as loop_module  # noqa: E402
from queueworker.operator.controller import observe as observe_module  # noqa: E402
from queueworker.operator.controller import report as report_module  # noqa: E402
from queueworker.operator.controller import writes as writes_module  # noqa: E402
from queueworker.operator.controller.context import (  # noqa: E402
    Indexes,
    OperatorConfig,
    Shared,
)
from queueworker.operator.controller.loop import QueueWorkerLoop  # noqa: E402

from support.operator_specs import spec  # noqa: E402
from support.redis_server import RedisServer  # noqa: E402


class Clock:
    """``time`` for the controller modules: a round is ``step`` seconds later than the
    last, give or take 0.3 s, so the engine and the status throttle see polls about
    5 s apart, as in a run (where a loop's tick starts a little late, or early)."""

    def __init__(self, step: float) -> None:
        self.step, self.offset = step, 0.0

    def advance(self) -> None:
        self.offset += self.step + random.uniform(-0.3, 0.3)

    def time(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def perf_counter(self) -> float:
        return time.perf_counter()


class StubKube:
    """The API calls a tick makes, answered at once; Deployments go into the index."""

    def __init__(self, deployments: dict[Any, Any]) -> None:
        self.deployments = deployments
        self.writes = 0

    async def apply(self, path: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        meta = body.get("metadata") or {}
        if "template" in (body.get("spec") or {}):
            entry = kube_index.deployment_entry(meta, body["spec"], {})
            self.deployments[(meta.get("namespace"), meta["name"])] = [entry]
            return {**body, "status": {}}
        return body

    async def patch(self, path: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.writes += 1
        return body

    async def get(self, path: str, **_: Any) -> dict[str, Any] | None:
        return None

    async def close(self) -> None:
        pass


def body(i: int, url: str, poll: float) -> dict[str, Any]:
    return {"metadata": {"name": f"qw{i:05d}", "namespace": "default", "uid": f"u{i}",
                         "generation": 1},
            "spec": spec(url, [f"q{i}"], poll=poll, maxReplicas=20,
                         targetBacklogPerReplica=10),
            "status": {}}


async def run(args: argparse.Namespace) -> None:
    # kopf.event (a scale's Event) posts through these; nothing reads the queue here.
    posting.settings_var.set(kopf.OperatorSettings())
    posting.event_queue_var.set(asyncio.Queue())
    posting.event_queue_loop_var.set(asyncio.get_running_loop())
    server = RedisServer().start()
    try:
        deployments: dict[Any, Any] = {}
        kube = StubKube(deployments)
        shared = Shared(OperatorConfig(), lambda: kube)  # type: ignore[arg-type, return-value]
        indexes = Indexes(pods={}, nodes={}, deployments=deployments)
        loops = [QueueWorkerLoop(shared, body(i, server.url, args.poll), indexes)
                 for i in range(args.loops)]
        r = redis.Redis.from_url(server.url)
        step = max(1, args.loops // args.busy) if args.busy else 0
        busy = list(range(0, args.loops, step)) if step else []

        clock = Clock(args.poll)
        for module in (loop_module, report_module, observe_module, writes_module):
            module.time = clock  # type: ignore[assignment]

        async def round_() -> None:
            clock.advance()
            for i in busy:
                r.lpush(f"qw:{{q{i}}}:waiting", *[f"{int(time.time() * 1000):013d}-{k}"
                                                  for k in range(i % 7 + 1)])
            await asyncio.gather(*(loop.tick() for loop in loops))

        for _ in range(args.warmup):  # the Deployments, then the engine's memory settles
            await round_()
        profiler = cProfile.Profile() if args.profile else None
        writes0, cpu0 = kube.writes, time.process_time()
        if profiler:
            profiler.enable()
        for _ in range(args.polls):
            await round_()
        if profiler:
            profiler.disable()
        cpu = time.process_time() - cpu0
        polls = args.loops * args.polls
        print(f"{polls} polls: {1e6 * cpu / polls:.0f} us CPU per poll, "
              f"{(kube.writes - writes0) / polls:.2f} status writes per poll")
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.top)
        await shared.close()
    finally:
        server.cleanup()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loops", type=int, default=1000)
    p.add_argument("--polls", type=int, default=5)
    p.add_argument("--busy", type=int, default=10, help="queues that get jobs each round")
    p.add_argument("--poll", type=float, default=5.0, help="seconds between rounds, as the "
                   "controller's clock sees them (the rounds run back to back)")
    p.add_argument("--warmup", type=int, default=20, help="rounds before the measured ones")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--default-gc", action="store_true",
                   help="Python's GC thresholds, not the operator's (cli_operator.tune_gc)")
    p.add_argument("--top", type=int, default=45)
    args = p.parse_args()
    if not args.default_gc:
        cli_operator.tune_gc()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
