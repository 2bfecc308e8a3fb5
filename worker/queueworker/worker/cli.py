"""``queueworker worker``: consume jobs.

    queueworker worker --queue high,default,low --handler app.jobs:handle \\
        [--concurrency N] [--max-jobs N] [--max-time S] [--stop-when-empty]

Queues are tried in the order given (like Laravel's ``queue:work
--queue=high,low``). Settings also come from the environment the operator
sets (see ``config``). Exit codes: 0 after a drain, 2 for a bad option or
handler, 3 when Redis cannot be reached at start, 75 when handler threads are
stuck past their timeout (a fresh process is needed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import redis

from queueworker.worker import config, handlers, log, sidecar
from queueworker.worker.broker import RateLimit
from queueworker.worker.cli_common import add_redis_options, connection_error, fail
from queueworker.worker.connection import is_cluster_url
from queueworker.worker.runtime import Worker
from queueworker.worker.schedules import CLUSTER_SCHEDULES, Schedule, ScheduleError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="queueworker worker", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_redis_options(p)
    p.add_argument("--queue", "-q", default=None,
                   help="queues in priority order, comma-separated (env QUEUEWORKER_QUEUES)")
    p.add_argument("--handler", action="append", default=None,
                   help="package.module:function (or a dict of them); repeatable "
                        "(env QUEUEWORKER_HANDLER)")
    p.add_argument("--concurrency", "-c", type=int, default=None,
                   help="jobs run at once (default 10; env QUEUEWORKER_CONCURRENCY)")
    p.add_argument("--prefetch", type=int, default=None,
                   help="jobs taken ahead of free slots (default: adaptive, up to "
                        "concurrency for jobs of a few ms, none for longer ones)")
    p.add_argument("--max-jobs", type=int, default=None, help="stop after N jobs")
    p.add_argument("--max-time", type=float, default=None, help="stop after S seconds")
    p.add_argument("--stop-when-empty", action="store_true",
                   help="stop when no job is ready and none is running")
    p.add_argument("--lease", type=float, default=None,
                   help="lease seconds (default 30; renewed every lease/3)")
    p.add_argument("--timeout", type=float, default=None,
                   help="per-attempt limit for jobs that set none (default 300; 0: none)")
    p.add_argument("--drain-deadline", type=float, default=None,
                   help="seconds after SIGTERM before running jobs are handed back "
                        "(default 30; env QUEUEWORKER_DRAIN_DEADLINE)")
    p.add_argument("--rate-limit", action="append", default=[], metavar="QUEUE=N/SECONDS",
                   help="at most N jobs per SECONDS from QUEUE, all workers together")
    p.add_argument("--heartbeat-interval", type=float, default=None)
    p.add_argument("--reap-interval", type=float, default=None)
    p.add_argument("--poll-interval", type=float, default=None)
    p.add_argument("--result-ttl", type=int, default=None,
                   help="seconds a finished job's hash is kept (default 3600)")
    p.add_argument("--failed-max-age", type=float, default=None,
                   help="seconds a failed job is kept in the failed store (default 7 days)")
    p.add_argument("--failed-max-count", type=int, default=None,
                   help="failed jobs kept at most, oldest dropped first (default 100000)")
    p.add_argument("--max-lost", type=int, default=None,
                   help="lease expiries before a job fails as a poison pill (default 5)")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve /metrics and /healthz (env QUEUEWORKER_METRICS_PORT; 0: off)")
    p.add_argument("--schedules", action="append", default=None, metavar="MODULE:NAME",
                   help="a list of schedules.Schedule to register and tick; repeatable "
                        "(env QUEUEWORKER_SCHEDULES)")
    p.add_argument("--log-level", default=None)
    return p


def settings_from(args: argparse.Namespace) -> config.Settings:
    s = config.from_env()
    if args.redis_url:
        s.redis_url = config.redis_url_from(args.redis_url, os.environ)
    if args.prefix:
        s.prefix = args.prefix
    if args.queue:
        s.queues = config.split_list(args.queue)
    if args.handler:
        s.handlers = [h for spec in args.handler for h in config.split_list(spec)]
    for name in ("concurrency", "prefetch", "max_jobs", "max_time", "lease", "timeout",
                 "drain_deadline", "heartbeat_interval", "reap_interval", "poll_interval",
                 "result_ttl", "failed_max_age", "failed_max_count", "max_lost", "metrics_port",
                 "log_level"):
        value = getattr(args, name)
        if value is not None:
            setattr(s, name, value)
    s.stop_when_empty = args.stop_when_empty
    for spec in args.rate_limit:
        queue, sep, limit = spec.partition("=")
        if not sep:
            raise ValueError(f"bad --rate-limit {spec!r}: use QUEUE=N/SECONDS")
        s.rate_limits[queue] = RateLimit.parse(limit)
    s.validate()
    return s


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except ValueError as exc:
        return fail(str(exc), 2)
    log.setup(settings.log_level)
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # handlers in the app's working directory
    try:
        table = handlers.load(settings.handlers)
        specs = args.schedules or config.split_list(os.environ.get(sidecar.ENV_SCHEDULES, ""))
        schedules = sidecar.load_schedules(specs)
    except (handlers.HandlerError, ScheduleError) as exc:
        return fail(str(exc), 2)
    if schedules and is_cluster_url(settings.redis_url):
        return fail(CLUSTER_SCHEDULES, 2)
    try:
        code = asyncio.run(_run(settings, table, schedules))
    except (redis.RedisError, OSError, ValueError) as exc:
        return fail(connection_error(settings.redis_url, exc), 3)
    if code == 0 and not _stuck_threads():
        return 0
    # Abandoned handler threads would keep the interpreter from exiting.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _stuck_threads() -> bool:
    import threading
    return any(t.name.startswith("queueworker-job") and t.is_alive()
               for t in threading.enumerate())


async def _run(settings: config.Settings, table: handlers.HandlerTable,
               schedules: list[Schedule]) -> int:
    return await sidecar.run_worker(Worker(settings, table), schedules)
