"""Each library's worker command, stop settings and producer for long_jobs.py.

The job code is the tests' own (tests/local/*, tests/peers/*), so the
benchmark runs what `make test` runs, at the issue's sizes. Two kinds of stop
settings, as docs/workers/ recommends for each:

- busy replicas known (RQ, Celery, BullMQ, Sidekiq): a grace far below the long
  jobs, so a busy replica stopped by a scale-down would be SIGKILLed (or, for
  Sidekiq, have its job pushed back after `-t`) and its job cut;
- busy replicas unknown (Dramatiq, arq, Laravel): the library's own stop
  timeout above the longest job and the grace above that timeout, since a
  scale-down may stop a busy replica and only the library's stop path saves it;
- Dramatiq and arq with their opt-ins (`dramatiq-named`, `arq-named`: the
  broker id / health key named after the replica, docs/workers/): busy
  replicas known, and a grace far below the long jobs with nothing else to
  save a busy replica (Dramatiq's 600 s default shutdown timeout: SIGKILL at
  the grace; arq `job_completion_wait` 0: cancelled at SIGTERM).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from support.engine_layouts import NODE_DIR, ensure_node, ensure_sidekiq, sidekiq_push
from support.laravel_app import PREFIX, make_app

ROOT = Path(__file__).resolve().parents[2]
TESTS_LOCAL = ROOT / "tests" / "local"
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
Jobs = list[tuple[str, float]]  # (name, seconds) in the order they are enqueued


@dataclass
class Setup:
    queue: dict[str, Any]
    command: list[str]
    env: dict[str, str]
    grace: int
    send: Callable[[Jobs], None]
    stop: str  # the stop settings, in words, for the table
    scaling: dict[str, Any] = field(default_factory=dict)  # overrides of local_foreign's


def rq(tmp: Path, url: str, marks: Path, wait: int) -> Setup:
    from rq import Queue

    def send(jobs: Jobs) -> None:
        queue = Queue("work", connection=redis.Redis.from_url(url))
        for name, seconds in jobs:
            queue.enqueue("rq_marks.sleep_job", str(marks), name, seconds, job_timeout=600)

    return Setup({"name": "work", "layout": "rq"},
                 [str(BIN / "rq"), "worker", "--url", url, "work"], {}, 10, send,
                 "warm shutdown (no limit), grace 10 s")


def celery(tmp: Path, url: str, marks: Path, wait: int) -> Setup:
    from celery import Celery

    def send(jobs: Jobs) -> None:
        app = Celery(broker=url)
        for name, seconds in jobs:
            app.send_task("celery_app.sleep_job", args=[str(marks), name, seconds],
                          queue="work")
        app.close()

    return Setup({"name": "work", "layout": "celery"},
                 [str(BIN / "celery"), "-A", "celery_app", "worker", "-Q", "work", "-c", "1",
                  "--prefetch-multiplier", "1", "-O", "fair", "--loglevel", "INFO"],
                 {"CELERY_BROKER_URL": url}, 10, send,
                 "prefork -c 1, early ack, warm shutdown (no limit), grace 10 s",
                 # as tests/local/test_local_celery.py: heartbeats come every 2 s
                 {"idleSecondsBeforeZero": 6, "scaleDown": {"stabilizationSeconds": 6}})


def dramatiq(tmp: Path, url: str, marks: Path, wait: int) -> Setup:
    from dramatiq import Message
    from dramatiq.brokers.redis import RedisBroker

    def send(jobs: Jobs) -> None:
        broker = RedisBroker(url=url)
        broker.declare_queue("work")
        for name, seconds in jobs:
            broker.enqueue(Message(queue_name="work", actor_name="sleep_job",
                                   args=(str(marks), name, seconds), kwargs={}, options={}))
        broker.close()

    return Setup({"name": "work", "layout": "dramatiq"},
                 [str(BIN / "dramatiq"), "dramatiq_jobs", "--processes", "1", "--threads", "1",
                  "--worker-shutdown-timeout", str(wait * 1000)],
                 {"DRAMATIQ_REDIS_URL": url}, wait + 15, send,
                 f"--worker-shutdown-timeout {wait} s, grace {wait + 15} s")


def arq(tmp: Path, url: str, marks: Path, wait: int) -> Setup:
    from arq import create_pool
    from arq.connections import RedisSettings

    async def enqueue(jobs: Jobs) -> None:
        pool = await create_pool(RedisSettings.from_dsn(url))
        for name, seconds in jobs:
            await pool.enqueue_job("sleep_job", str(marks), name, seconds)
        await pool.aclose()

    return Setup({"name": "arq:queue", "layout": "arq"},
                 [str(BIN / "arq"), "arq_jobs.WorkerSettings"],
                 {"ARQ_REDIS_URL": url, "ARQ_JOB_COMPLETION_WAIT": str(wait)}, wait + 15,
                 lambda jobs: asyncio.run(enqueue(jobs)),
                 f"job_completion_wait {wait} s, grace {wait + 15} s")


def dramatiq_named(tmp: Path, url: str, marks: Path, wait: int) -> Setup:
    setup = dramatiq(tmp, url, marks, wait)
    return Setup(setup.queue, [str(BIN / "dramatiq"), "dramatiq_named_jobs", "--processes", "1",
                               "--threads", "1"], setup.env, 10, setup.send,
                 "broker_id named after the replica, --worker-shutdown-timeout 600 s "
                 "(default), grace 10 s")


def arq_named(tmp: Path, url: str, marks: Path, wait: int) -> Setup:
    setup = arq(tmp, url, marks, wait)
    return Setup(setup.queue, [str(BIN / "arq"), "arq_named_jobs.WorkerSettings"],
                 {**setup.env, "ARQ_JOB_COMPLETION_WAIT": "0"}, 10, setup.send,
                 "health_check_key per replica (1 s), job_completion_wait 0 (cancel at "
                 "SIGTERM), grace 10 s")


def bullmq(tmp: Path, url: str, marks: Path, wait: int) -> Setup:
    # QW_BULLMQ_DIR: another BullMQ version, installed beside a copy of bullmq_jobs.mjs
    node_dir = Path(os.environ.get("QW_BULLMQ_DIR", NODE_DIR))
    if node_dir == NODE_DIR:
        ensure_node()
    version = json.loads((node_dir / "node_modules" / "bullmq" / "package.json").read_text(
        encoding="utf-8"))["version"]

    def send(jobs: Jobs) -> None:
        subprocess.run(["node", "bullmq_jobs.mjs", "add", url, "render",
                        *[f"{n}:{s}" for n, s in jobs]], cwd=node_dir, check=True, timeout=60)

    return Setup({"name": "render", "layout": "bullmq"},
                 ["node", str(node_dir / "bullmq_jobs.mjs"), "worker", url, "render", str(marks),
                  "-"], {}, 10, send,
                 f"BullMQ {version}, named after the replica, worker.close() on SIGTERM "
                 "(no limit), grace 10 s")


def sidekiq(tmp: Path, url: str, marks: Path, wait: int) -> Setup:
    ensure_sidekiq()
    binary = shutil.which("sidekiq")
    if binary is None:
        raise RuntimeError("sidekiq not found after scripts/ensure-sidekiq.sh")

    def send(jobs: Jobs) -> None:
        sidekiq_push(url, *[{"class": "Sleep", "queue": "default",
                             "args": [str(marks), n, s]} for n, s in jobs])

    return Setup({"name": "default", "layout": "sidekiq"},
                 [binary, "-r", str(TESTS_LOCAL / "sidekiq_sleep.rb"), "-c", "1", "-t", "3"],
                 {"REDIS_URL": url}, 8, send,
                 "-c 1 -t 3 (then running jobs pushed back), grace 8 s",
                 # as tests/local/test_local_sidekiq.py: `busy` is written at each 5 s beat
                 {"idleSecondsBeforeZero": 10, "scaleDown": {"stabilizationSeconds": 10}})


def laravel(tmp: Path, url: str, marks: Path, wait: int) -> Setup:
    # retry_after is 90 s in tests/peers/laravel/config/queue.php: --timeout must stay below
    timeout = min(wait, 85)
    app = make_app(tmp, url, QUEUE_BLOCK_FOR="2")
    return Setup({"name": "default", "layout": "laravel", "keyPrefix": PREFIX},
                 app.worker("--sleep=0", f"--timeout={timeout}", "--tries=1"), app.env,
                 timeout + 15, lambda jobs: app.dispatch(marks, *[f"{n}:{s}" for n, s in jobs]),
                 f"finish then exit, --timeout {timeout} s, grace {timeout + 15} s, "
                 "block_for 2 s (idle replicas seen)")


LIBRARIES: dict[str, Callable[[Path, str, Path, int], Setup]] = {
    "rq": rq, "celery": celery, "dramatiq": dramatiq, "dramatiq-named": dramatiq_named,
    "arq": arq, "arq-named": arq_named, "bullmq": bullmq, "sidekiq": sidekiq,
    "laravel": laravel,
}
