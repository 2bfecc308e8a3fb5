"""`queueworker demo`: local mode with a load generator, 0 -> N -> 0 workers in a minute.

Runs `examples/local-demo.yaml` through local mode (an embedded redis-server
when none is reachable), sends bursts of jobs of different lengths from a
thread through the worker's producer API, lets the autoscaler grow the pool
and shrink it back to zero, then prints a summary: jobs done, queue wait
(p50/p95), worker-seconds, failures, and lost jobs, which must be 0: every job
id sent must have been recorded as done by the demo's handler
(`demo_jobs.handle`). Exit code 1 when any job is lost, or not done at the
end of an uninterrupted run. After Ctrl-C, jobs handed back and still queued
are counted apart (they are not lost).

``DEMO_SECONDS`` (or ``--seconds``) sets the length of the scenario (default
80; CI runs it with about 20).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import redis

from queueworker.local.runner import LocalRunner
from queueworker.local.session import (
    LocalError,
    Setup,
    Signals,
    load_manifest,
    make_view,
    session,
    setup_logging,
)
from queueworker.worker import keys
from queueworker.worker.producer import Producer

DEFAULT_SECONDS = 80.0
MANIFEST = Path(__file__).resolve().parents[3] / "examples" / "local-demo.yaml"


@dataclass(frozen=True)
class Send:
    at: float  # seconds after the start
    queue: str
    seconds: float  # how long the job runs
    flaky: bool = False


def plan(total: float, queues: list[str], seed: int = 7) -> list[Send]:
    """The scenario: a quiet start, a burst of mixed jobs, a burst of short urgent jobs
    with a few long ones, a trickle, then nothing (so the pool goes back to zero).

    Sizes scale with `total` so a short CI run is not a flood on a small machine.
    """
    rng = random.Random(seed)
    k = total / DEFAULT_SECONDS
    high, normal = queues[0], queues[-1]
    sends: list[Send] = []
    for _ in range(max(8, round(36 * k))):
        sends.append(Send(0.06 * total + rng.uniform(0, 1), normal, rng.uniform(0.3, 1.2)))
    for _ in range(max(12, round(60 * k))):
        sends.append(Send(0.30 * total + rng.uniform(0, 1), high, rng.uniform(0.05, 0.3)))
    for _ in range(max(2, round(6 * k))):
        sends.append(Send(0.30 * total, normal, rng.uniform(1.5, 2.5)))
    # A trickle one replica can serve (jittered, so polls do not alias with it).
    t = 0.45 * total
    while t < 0.6 * total:
        sends.append(Send(t, normal, rng.uniform(0.5, 1.0)))
        t += rng.uniform(0.4, 0.9)
    sends.sort(key=lambda s: s.at)
    # Every 10th job fails once and is retried by the runtime.
    return [Send(s.at, s.queue, s.seconds, flaky=(i % 10 == 9)) for i, s in enumerate(sends)]


@dataclass
class Load:
    """The load generator: a thread that enqueues the plan on time."""

    client: redis.Redis
    run: str
    sends: list[Send]
    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    errors: int = 0
    finished: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Load:
        threading.Thread(target=self._run, name="demo-load", daemon=True).start()
        return self

    def _run(self) -> None:
        producer = Producer(self.client)
        try:
            for i, send in enumerate(self.sends):
                delay = self.started + send.at - time.monotonic()
                if delay > 0 and self.stop.wait(delay):
                    return
                did = f"{i:05d}"
                payload = {"run": self.run, "did": did, "sent": time.time(),
                           "seconds": round(send.seconds, 3), "flaky": send.flaky}
                try:
                    # Recorded before the enqueue: a job is "sent" once we tried.
                    self.client.sadd(f"demo:{self.run}:sent", did)
                    producer.enqueue(send.queue, payload, max_tries=3, backoff=0.5)
                    self.sent += 1
                except redis.RedisError:
                    self.errors += 1
        finally:
            self.finished.set()


@dataclass
class Summary:
    elapsed: float
    sent: int
    done: int
    queued: int  # not done, still in Redis (handed back on Ctrl-C, or not reached in time)
    lost: int  # sent, not done and nowhere in Redis
    retried_failures: int
    failed_for_good: int
    waits: list[float]
    peak: int
    ups: int
    downs: int
    ended_at_zero: bool
    worker_seconds: float
    interrupted: bool

    def p(self, q: float) -> float:
        if not self.waits:
            return 0.0
        ordered = sorted(self.waits)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def _end(self) -> str:
        if self.ended_at_zero:
            return "0"
        return "0 (drained on Ctrl-C)" if self.interrupted else "0 (drained at the time limit)"

    def lines(self) -> list[str]:
        always_on = self.peak * self.elapsed
        saved = ""
        if self.peak:
            saved = f" (a fixed pool of {self.peak} would have used {always_on:.0f})"
        return [
            "",
            "demo summary" + ("  (interrupted)" if self.interrupted else ""),
            f"  jobs sent         {self.sent}",
            f"  jobs done         {self.done}",
            f"  lost              {self.lost}",
            *([f"  still queued      {self.queued} (handed back on Ctrl-C, not lost)"]
              if self.queued else []),
            f"  failures          {self.retried_failures} failed attempts, retried; "
            f"{self.failed_for_good} failed for good",
            f"  queue wait        p50 {self.p(0.5):.2f}s  p95 {self.p(0.95):.2f}s  "
            f"max {max(self.waits, default=0.0):.2f}s",
            f"  replicas          0 -> {self.peak} -> {self._end()}  ({self.ups} scale-ups, "
            f"{self.downs} scale-downs)",
            f"  worker-seconds    {self.worker_seconds:.0f} over {self.elapsed:.0f}s{saved}",
            "",
            "next steps",
            "  on a cluster:  kubectl apply -f crds/ -f examples/native-worker.yaml",
            "  the operator:  helm install queueworker-operator charts/queueworker-operator",
            "  your own spec: .venv/bin/queueworker local -f examples/YOURS.yaml --embedded-redis",
        ]


# redis-py's sync and async clients share annotations (`Awaitable[T] | T`);
# these helpers say once that the demo's client is the sync one.


def _count(client: redis.Redis, key: str) -> int:
    return int(cast(int, client.scard(key)))


def _members(client: redis.Redis, key: str) -> set[str]:
    return {x.decode() for x in cast(set[bytes], client.smembers(key))}


def _list(client: redis.Redis, key: str) -> list[bytes]:
    return cast(list[bytes], client.lrange(key, 0, -1))


def _zset(client: redis.Redis, key: str) -> list[bytes]:
    return cast(list[bytes], client.zrange(key, 0, -1))


def queued_dids(client: redis.Redis, queues: list[str], run: str) -> set[str]:
    """Demo ids of this run's jobs still waiting, delayed or in flight in Redis."""
    ids: list[bytes] = []
    for q in queues:
        ids += _list(client, keys.waiting(q))
        ids += _zset(client, keys.delayed(q))
        ids += _zset(client, keys.inflight(q))
    if not ids:
        return set()
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(keys.job(job_id.decode()), "payload")
    out: set[str] = set()
    for raw in pipe.execute():
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            continue  # not a demo job
        if isinstance(payload, dict) and payload.get("run") == run:
            out.add(str(payload.get("did")))
    return out


def collect(runner: LocalRunner, load: Load, started: float, interrupted: bool,
            ended_at_zero: bool) -> Summary:
    client, run = runner.client, load.run
    sent = _count(client, f"demo:{run}:sent")
    done_ids = _members(client, f"demo:{run}:done")
    missing = _members(client, f"demo:{run}:sent") - done_ids
    still = queued_dids(client, [q.name for q in runner.spec.queues], run)
    waits = [float(w) for w in client.lrange(f"demo:{run}:waits", 0, -1)]  # type: ignore[union-attr]
    failures = int(client.get(f"demo:{run}:failures") or 0)  # type: ignore[arg-type]
    # Leave a Redis we did not start as we found it (the runtime's job hashes expire).
    client.delete(*(f"demo:{run}:{k}" for k in ("sent", "done", "waits", "attempts",
                                                "failures")))
    return Summary(
        elapsed=time.monotonic() - started,
        sent=sent,
        done=len(done_ids),
        queued=len(still & missing),
        lost=len(missing - still),
        retried_failures=failures,
        failed_for_good=runner.snap.failed,  # since this run started
        waits=waits,
        peak=runner.max_running,
        ups=runner.scale_ups,
        downs=runner.scale_downs,
        ended_at_zero=ended_at_zero,
        worker_seconds=runner.pool.worker_seconds(),
        interrupted=interrupted,
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="queueworker demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-f", "--filename", type=Path, default=MANIFEST,
                        help="QueueWorker manifest (default: examples/local-demo.yaml)")
    parser.add_argument("--seconds", type=float,
                        default=float(os.environ.get("DEMO_SECONDS") or DEFAULT_SECONDS),
                        help="length of the scenario (env DEMO_SECONDS; default 80)")
    parser.add_argument("--redis-url", help="use this Redis (default: the manifest's, else "
                        "an embedded redis-server)")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    parser.add_argument("--no-ui", action="store_true", help="plain lines, no live view")
    args = parser.parse_args(argv)
    ui = not args.no_ui and sys.stdout.isatty()
    log_dir = Path(tempfile.mkdtemp(prefix="queueworker-demo-"))
    log_path = log_dir / "demo.log"
    # Logs go to a file in both modes: the demo's own output tells the story.
    setup_logging(True, log_path)
    try:
        name, spec = load_manifest(str(args.filename))
    except LocalError as exc:
        hint = ""
        if not args.filename.exists():
            hint = " (the demo manifest ships in the repository: run from a checkout, or -f)"
        print(f"queueworker demo: {exc}{hint}", file=sys.stderr)
        return 1
    total = max(5.0, float(args.seconds))
    run = secrets.token_hex(4)
    sends = plan(total, [q.name for q in spec.queues])
    summary: Summary | None = None
    with contextlib.ExitStack() as stack:
        # Workers always log to a file: the demo's own output is the story.
        worker_log = stack.enter_context(open(log_dir / "workers.log", "ab"))
        signals = stack.enter_context(Signals())
        view = stack.enter_context(make_view(ui))
        view.note(f"demo: {len(sends)} jobs over ~{0.6 * total:.0f}s, then back to zero "
                  f"(logs in {log_dir})")
        setup = Setup(name=name, spec=spec, redis_url=args.redis_url,
                      embedded_redis=args.redis_url is None,
                      metrics_port=args.metrics_port, worker_log=worker_log)
        try:
            runner = stack.enter_context(session(setup, view))
        except LocalError as exc:
            print(f"queueworker demo: {exc}", file=sys.stderr)
            return 1
        started = time.monotonic()
        load = Load(runner.client, run, sends).start()
        load_end = max(s.at for s in sends)
        hard_limit = total + max(30.0, total)

        def finished() -> bool:
            elapsed = time.monotonic() - started
            if elapsed > hard_limit:
                view.note(f"demo: time is up after {elapsed:.0f}s")
                return True
            if not load.finished.is_set() or elapsed < load_end:
                return False
            all_done = _count(runner.client, f"demo:{run}:done") >= load.sent
            return all_done and not runner.pool.running()

        signals.runner = runner
        runner.run(until=finished)
        interrupted = runner.stop_event.is_set()
        ended_at_zero = not runner.pool.running()
        load.stop.set()
        runner.drain()  # before the summary: workers finish or hand their jobs back
        summary = collect(runner, load, started, interrupted, ended_at_zero)
    for line in summary.lines():
        print(line)
    if summary.lost or (summary.queued and not summary.interrupted):
        print(f"\n{summary.lost} job(s) lost, {summary.queued} not done: see {log_dir}",
              file=sys.stderr)
        tail = (log_dir / "workers.log").read_text(errors="replace")[-3000:]
        print(tail, file=sys.stderr)
        return 1
    return 0
